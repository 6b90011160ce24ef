"""Configuration of the platform: SIP listeners and timers, registrar, security, admin API,
store, event bus, the CRM consumer's housekeeping and logging, plus the address forms these and the trunks are written in.

Owns: these sections' frozen dataclasses and builders (called from acd.config._build), and
split_host_port, the one reading of "host[:port]" / "[v6][:port]" in the file.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

from acd.yamlsource import Fields, IPNetwork, Node, Unique, shown

__all__ = [
    "DIGEST_ALGORITHMS", "DIGITS", "HOSTNAME", "LOG_FORMATS", "LOG_LEVELS", "NAME", "ROLES",
    "STORE_SCHEMES", "TRANSPORTS", "USER", "AdminConfig", "AdminToken", "AuthBanConfig",
    "CrmSettings", "DigestAlgorithm", "EventsConfig", "HostPort", "ListenAddress", "LogFormat",
    "LogLevel", "LoggingConfig", "RegistrarConfig", "Role", "SecurityConfig", "SipConfig",
    "SipTimers", "StoreConfig", "Transport", "admin", "crm", "events", "host_port", "logging",
    "networks", "registrar", "security", "sip", "split_host_port", "store",
]

Transport = Literal["udp", "tcp"]
Role = Literal["admin", "read"]
DigestAlgorithm = Literal["MD5", "SHA-256"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "console"]

TRANSPORTS: tuple[Transport, ...] = ("udp", "tcp")
ROLES: tuple[Role, ...] = ("admin", "read")
DIGEST_ALGORITHMS: tuple[DigestAlgorithm, ...] = ("MD5", "SHA-256")
LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error")
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "console")
STORE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")  # "300.1.1.1" is a bad IPv4, not a host name
NAME = re.compile(r"[A-Za-z0-9_-]+")
USER = re.compile(r"[A-Za-z0-9._-]+")
DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class ListenAddress:
    transport: Transport
    host: str  # IP literal, IPv6 without brackets
    port: int


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str  # IP literal or DNS name, IPv6 without brackets
    port: int


@dataclass(frozen=True, slots=True)
class SipTimers:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


@dataclass(frozen=True, slots=True)
class SipConfig:
    listen: tuple[ListenAddress, ...]
    domain: str
    realm: str
    user_agent: str = "acd-engine"
    timers: SipTimers = SipTimers()
    max_message_size: int = 65535
    max_headers: int = 256


@dataclass(frozen=True, slots=True)
class RegistrarConfig:
    default_expires: int = 3600
    min_expires: int = 60
    max_expires: int = 7200
    qualify_interval: int = 30  # 0 = off


@dataclass(frozen=True, slots=True)
class AuthBanConfig:
    max_failures: int = 20
    window: float = 60.0
    ban_time: float = 600.0


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    nonce_lifetime: int = 300
    auth_ban: AuthBanConfig = AuthBanConfig()
    trusted_networks: tuple[IPNetwork, ...] = ()
    digest_algorithms: tuple[DigestAlgorithm, ...] = DIGEST_ALGORITHMS


@dataclass(frozen=True, slots=True)
class AdminToken:
    token: str = field(repr=False)
    role: Role


@dataclass(frozen=True, slots=True)
class AdminConfig:
    listen: HostPort = HostPort("127.0.0.1", 8080)
    tokens: tuple[AdminToken, ...] = ()


@dataclass(frozen=True, slots=True)
class StoreConfig:
    url: str = field(default="sqlite+aiosqlite:///acd.sqlite3", repr=False)


@dataclass(frozen=True, slots=True)
class EventsConfig:
    bus: str = field(default="inproc", repr=False)  # "inproc" or a redis(s):// URL
    stream: str = "acd:events"
    maxlen: int = 100000


@dataclass(frozen=True, slots=True)
class CrmSettings:
    """The `crm` section (named apart from acd.crm.CrmConfig, the consumer's own settings).

    event_retention_days: processed_events and call_events rows older than this are pruned
    every hour, and events older than this are ignored when (re)delivered; 0 keeps them for
    ever. It must stay well above any redelivery delay of the event bus.
    """

    event_retention_days: int = 30


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: LogLevel = "info"
    format: LogFormat = "json"


# -- address parsing ----------------------------------------------------------------------


def _port(text: str) -> int:
    if not DIGITS.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise ValueError("port must be 1-65535")
    return int(text)


def split_host_port(text: str, *, names: bool) -> tuple[str, int | None]:
    """Split "host[:port]" or "[v6][:port]" into (host without brackets, port or None).

    names: a DNS name may stand for the host; otherwise it must be an IP literal.
    Raises ValueError with the reason.
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("IPv6 host must be written [address] or [address]:port")
        try:
            host = ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise ValueError("brackets must hold an IPv6 address") from None
        return host, _port(rest[1:]) if rest else None
    host, colon, port = text.rpartition(":") if ":" in text else (text, "", "")
    if ":" in host:
        raise ValueError("IPv6 host must be in brackets: [address]:port")
    try:
        host = str(ipaddress.IPv4Address(host))
    except ValueError:
        if not names or _DOTTED_NUMBERS.fullmatch(host) or not HOSTNAME.fullmatch(host):
            raise ValueError("host must be an IPv4 address or [IPv6]"
                             + (" or a DNS name" if names else "")) from None
    return host, _port(port) if colon else None


def host_port(node: Node, *, default_port: int | None) -> HostPort | None:
    text = node.text()
    if text is None:
        return None
    try:
        host, port = split_host_port(text, names=True)
        if port is None and default_port is None:
            raise ValueError("port is missing")
    except ValueError as exc:
        node.problem(f"{exc}, got {shown(text)}")
        return None
    return HostPort(host, port if port is not None else default_port or 0)


def _listen_address(node: Node) -> ListenAddress | None:
    text = node.text()
    if text is None:
        return None
    transport, _, rest = text.partition(":")
    try:
        if transport not in TRANSPORTS:
            raise ValueError("must be transport:host:port with transport udp or tcp")
        host, port = split_host_port(rest, names=False)
        if port is None:
            raise ValueError("port is missing")
    except ValueError as exc:
        node.problem(f"{exc}, got {shown(text)}")
        return None
    return ListenAddress("udp" if transport == "udp" else "tcp", host, port)


def networks(items: list[Node]) -> tuple[IPNetwork, ...]:
    return tuple(net for net in (item.network() for item in items) if net is not None)


# -- sections -----------------------------------------------------------------------------


def sip(f: Fields) -> SipConfig:
    listen: list[ListenAddress] = []
    seen = Unique("listen address")
    for item in f.req_list("listen"):
        address = _listen_address(item)
        if address is not None and seen.first(item, address):
            listen.append(address)
    domain = f.req_str("domain", pattern=HOSTNAME, rule="must be a host name")
    return SipConfig(
        listen=tuple(listen),
        domain=domain,
        realm=f.opt_str("realm", domain),
        user_agent=f.opt_str("user_agent", "acd-engine"),
        timers=_timers(f.section("timers", ("t1", "t2", "t4"))),
        max_message_size=f.opt_int("max_message_size", 65535, min=1024, max=1048576),
        max_headers=f.opt_int("max_headers", 256, min=16, max=1024),
    )


def _timers(f: Fields) -> SipTimers:
    t1 = f.opt_float("t1", 0.5, gt=0)
    t2 = f.opt_float("t2", 4.0, gt=0)
    if f.ok("t1", "t2") and t1 > t2:
        f.blame("t1", "t2").problem(f"t1 ({t1:g}) must not exceed t2 ({t2:g})")
    return SipTimers(t1, t2, f.opt_float("t4", 5.0, gt=0))


def registrar(f: Fields) -> RegistrarConfig:
    r = RegistrarConfig(
        default_expires=f.opt_int("default_expires", 3600, min=1),
        min_expires=f.opt_int("min_expires", 60, min=1),
        max_expires=f.opt_int("max_expires", 7200, min=1),
        qualify_interval=f.opt_int("qualify_interval", 30, min=0),
    )
    if not f.ok("default_expires", "min_expires", "max_expires"):
        return r
    if r.min_expires > r.max_expires:
        f.blame("min_expires", "max_expires").problem(
            f"min_expires ({r.min_expires}) must not exceed max_expires ({r.max_expires})")
    elif not r.min_expires <= r.default_expires <= r.max_expires:
        f.blame("default_expires", "min_expires", "max_expires").problem(
            f"default_expires ({r.default_expires}) must be between min_expires "
            f"({r.min_expires}) and max_expires ({r.max_expires})")
    return r


def security(f: Fields) -> SecurityConfig:
    ban = f.section("auth_ban", ("max_failures", "window", "ban_time"))
    algorithms: list[DigestAlgorithm] = []
    seen = Unique("algorithm")
    items = f.req_list("digest_algorithms") if f.has("digest_algorithms") else None
    for item in items or ():
        algorithm = item.choice(DIGEST_ALGORITHMS)
        if algorithm is not None and seen.first(item, algorithm):
            algorithms.append(algorithm)
    return SecurityConfig(
        nonce_lifetime=f.opt_int("nonce_lifetime", 300, min=1),
        auth_ban=AuthBanConfig(
            max_failures=ban.opt_int("max_failures", 20, min=1),
            window=ban.opt_float("window", 60.0, gt=0),
            ban_time=ban.opt_float("ban_time", 600.0, gt=0),
        ),
        trusted_networks=networks(f.opt_list("trusted_networks")),
        digest_algorithms=tuple(algorithms) if items is not None else DIGEST_ALGORITHMS,
    )


def admin(f: Fields) -> AdminConfig:
    tokens: list[AdminToken] = []
    seen = Unique("token", secret=True)
    for item in f.opt_list("tokens"):
        t = item.fields(("token", "role"))
        token = t.req_str("token", numeric=True, secret=True)
        role = t.req_choice("role", ROLES)
        if t.ok("token") and len(token) < 8:
            t.blame("token").problem("must be at least 8 characters")
        elif t.ok("token") and seen.first(t.blame("token"), token):
            tokens.append(AdminToken(token, role))
    return AdminConfig(
        listen=f.opt("listen", AdminConfig().listen, lambda n: host_port(n, default_port=None)),
        tokens=tuple(tokens),
    )


def store(f: Fields) -> StoreConfig:
    url = f.opt_str("url", StoreConfig().url, secret=True)  # may carry a DB password
    if not url.startswith(STORE_SCHEMES):
        scheme = url.split("://", 1)[0] + "://" if "://" in url else ""
        f.blame("url").problem(f"must start with {' or '.join(STORE_SCHEMES)}"
                               + (f", got {shown(scheme)}" if scheme else ""))
    return StoreConfig(url)


def events(f: Fields) -> EventsConfig:
    bus = f.opt_str("bus", "inproc", secret=True)  # a redis URL may carry a password
    if bus != "inproc" and not bus.startswith(("redis://", "rediss://")):
        f.blame("bus").problem("must be inproc or a redis:// or rediss:// URL")
    return EventsConfig(
        bus=bus,
        stream=f.opt_str("stream", "acd:events"),
        maxlen=f.opt_int("maxlen", 100000, min=1),
    )


def crm(f: Fields) -> CrmSettings:
    d = CrmSettings()
    return CrmSettings(event_retention_days=f.opt_int(
        "event_retention_days", d.event_retention_days, min=0, max=36500))


def logging(f: Fields) -> LoggingConfig:
    return LoggingConfig(level=f.opt_choice("level", "info", LOG_LEVELS),
                         format=f.opt_choice("format", "json", LOG_FORMATS))
