"""Configuration: the typed, frozen model of acd.yaml and the rules that validate it.

Owns: the dataclasses every other package reads its settings from, one small function per
section turning a checked YAML mapping into its dataclass, and load_config. Parsing, line
tracking and problem collection live in acd.yamlsource; this module states the schema of
the platform sections, acd.config_calls and acd.config_ivr that of the call sections
(media, numbering, prompts, schedules, blacklist, hotlines, ivr, outbound_rules, voicemail).

To add a section: write its dataclass and a `_name(f: Fields) -> Name` function, add the
field to Config and one line to `_build`. Lists are indexed from 0 in problem keys
(`accounts[0]` is the first account).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TypedDict

from acd import config_calls as calls
from acd.config_calls import (
    Blacklist,
    Destination,
    Hotline,
    MediaConfig,
    Numbering,
    OutboundRule,
    PromptsConfig,
    QueueRef,
    Refs,
    Schedule,
    VoicemailConfig,
)
from acd.config_ivr import ivr_trees
from acd.yamlsource import (
    FILE,
    ConfigError,
    Fields,
    IPNetwork,
    Node,
    Problem,
    Report,
    Unique,
    parse,
    shown,
)
from ivr.model import IvrTree

__all__ = [
    "Account", "AdminConfig", "AdminToken", "AuthBanConfig", "Blacklist", "Config",
    "ConfigError", "Destination", "EventsConfig", "HostPort", "Hotline", "IvrTree",
    "ListenAddress", "LoggingConfig", "MediaConfig", "Numbering", "OutboundRule", "Problem",
    "PromptsConfig", "QueueRef", "RegistrarConfig", "Schedule", "SecurityConfig", "SipConfig",
    "SipTimers", "StoreConfig", "Trunk", "TrunkInbound", "TrunkInboundAuth", "TrunkOutbound",
    "TrunkRegister", "TrunkSource", "VoicemailConfig", "changed_sections", "load_config",
    "load_config_text",
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
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")  # "300.1.1.1" is a bad IPv4, not a host name
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_USER = re.compile(r"[A-Za-z0-9._-]+")
_DIGITS = re.compile(r"[0-9]+")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


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
class LoggingConfig:
    level: LogLevel = "info"
    format: LogFormat = "json"


@dataclass(frozen=True, slots=True)
class Account:
    """A registering user; exactly one of password and ha1 is set."""

    user: str
    display_name: str
    password: str | None = field(default=None, repr=False)
    ha1: str | None = field(default=None, repr=False)  # lower-case MD5(user:realm:password)
    ha1_sha256: str | None = field(default=None, repr=False)  # only alongside ha1
    max_contacts: int = 5
    allowed_networks: tuple[IPNetwork, ...] = ()  # empty = any source


@dataclass(frozen=True, slots=True)
class TrunkSource:
    network: IPNetwork
    port: int | None = None  # None = any source port


@dataclass(frozen=True, slots=True)
class TrunkInboundAuth:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TrunkInbound:
    sources: tuple[TrunkSource, ...] = ()
    auth: TrunkInboundAuth | None = None


@dataclass(frozen=True, slots=True)
class TrunkRegister:
    username: str
    password: str = field(repr=False)
    expires: int = 600
    realm: str | None = None


@dataclass(frozen=True, slots=True)
class TrunkOutbound:
    proxy: HostPort
    transport: Transport = "udp"
    register: TrunkRegister | None = None
    from_domain: str | None = None


@dataclass(frozen=True, slots=True)
class Trunk:
    name: str
    inbound: TrunkInbound
    outbound: TrunkOutbound | None = None
    options_ping: int = 30  # 0 = off
    hotlines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    sip: SipConfig
    node_id: str = "acd"
    registrar: RegistrarConfig = RegistrarConfig()
    security: SecurityConfig = SecurityConfig()
    admin: AdminConfig = AdminConfig()
    store: StoreConfig = StoreConfig()
    events: EventsConfig = EventsConfig()
    logging: LoggingConfig = LoggingConfig()
    media: MediaConfig = field(default_factory=MediaConfig)
    numbering: Numbering = field(default_factory=Numbering)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    schedules: Mapping[str, Schedule] = field(default_factory=lambda: MappingProxyType({}))
    blacklist: Blacklist = field(default_factory=Blacklist)
    hotlines: Mapping[str, Hotline] = field(default_factory=lambda: MappingProxyType({}))
    ivr: Mapping[str, IvrTree] = field(default_factory=lambda: MappingProxyType({}))
    outbound_rules: tuple[OutboundRule, ...] = ()
    voicemail: VoicemailConfig | None = None
    accounts: tuple[Account, ...] = ()
    trunks: tuple[Trunk, ...] = ()
    # Queues named by hotlines and IVR nodes, to check once queues are configured: the
    # names in file order without repeats, and every place one is named.
    referenced_queues: tuple[str, ...] = ()
    queue_refs: tuple[QueueRef, ...] = ()
    source_path: Path | None = None  # None when loaded from text
    digest: str = ""  # sha256 hex of the file bytes


_SOURCE_FIELDS = ("source_path", "digest", "referenced_queues", "queue_refs")


def changed_sections(old: Config, new: Config) -> tuple[str, ...]:
    """Top-level sections that differ, in file order, for the reload log line."""
    return tuple(f.name for f in fields(Config) if f.name not in _SOURCE_FIELDS
                 and getattr(old, f.name) != getattr(new, f.name))


# -- loading ------------------------------------------------------------------------------


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML file; raises ConfigError listing every problem.

    Relative paths in it (prompts.dir) are taken from the file's directory.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([Problem(str(path), 1, FILE, f"cannot read: {exc.strerror or exc}")]
                          ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError([Problem(str(path), line, FILE, "is not valid UTF-8")]) from None
    return _load(text, str(path), Path(path), hashlib.sha256(data).hexdigest(),
                 Path(path).parent)


def load_config_text(text: str, filename: str = "<text>", *,
                     base_dir: str | Path = ".") -> Config:
    """Validate YAML text as if read from `filename` (which only labels problems).

    base_dir: where relative paths in it (prompts.dir) are taken from.
    """
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return _load(text, filename, None, digest, Path(base_dir))


def _load(text: str, filename: str, source_path: Path | None, digest: str,
          base_dir: Path) -> Config:
    report = Report(filename)
    raw = parse(text, report)
    report.raise_if_any()
    config = _build(Node.root(raw, report), source_path, digest, base_dir)
    report.raise_if_any()
    return config


_CALL_SECTIONS = ("media", "numbering", "prompts", "schedules", "blacklist", "hotlines",
                  "ivr", "outbound_rules", "voicemail")


def _build(root: Node, source_path: Path | None, digest: str, base_dir: Path) -> Config:
    f = root.fields(("node_id", "sip", "registrar", "security", "admin", "store", "events",
                     "logging", *_CALL_SECTIONS, "accounts", "trunks"))
    accounts = _accounts(f.opt_list("accounts"))
    trunks = _trunks(f.opt_list("trunks"))
    refs = Refs(users={a.user for a in accounts},
                hotline_numbers={n for t in trunks for n in t.hotlines},
                trunks={t.name for t in trunks},
                outbound_trunks={t.name for t in trunks if t.outbound is not None})
    return Config(
        **_call_sections(f, refs, base_dir),
        node_id=f.opt_str("node_id", "acd", pattern=_USER,
                          rule="must contain only letters, digits, '.', '_' and '-'"),
        sip=_sip(f.req_section("sip", ("listen", "domain", "realm", "user_agent", "timers",
                                       "max_message_size", "max_headers"))),
        registrar=_registrar(f.section("registrar", ("default_expires", "min_expires",
                                                     "max_expires", "qualify_interval"))),
        security=_security(f.section("security", ("nonce_lifetime", "auth_ban",
                                                  "trusted_networks", "digest_algorithms"))),
        admin=_admin(f.section("admin", ("listen", "tokens"))),
        store=_store(f.section("store", ("url",))),
        events=_events(f.section("events", ("bus", "stream", "maxlen"))),
        logging=_logging(f.section("logging", ("level", "format"))),
        accounts=accounts,
        trunks=trunks,
        source_path=source_path,
        digest=digest,
    )


class _CallSections(TypedDict):
    media: MediaConfig
    numbering: Numbering
    prompts: PromptsConfig
    schedules: Mapping[str, Schedule]
    blacklist: Blacklist
    hotlines: Mapping[str, Hotline]
    ivr: Mapping[str, IvrTree]
    outbound_rules: tuple[OutboundRule, ...]
    voicemail: VoicemailConfig | None
    referenced_queues: tuple[str, ...]
    queue_refs: tuple[QueueRef, ...]


def _call_sections(f: Fields, refs: Refs, base_dir: Path) -> _CallSections:
    """The call sections, each built after the ones it refers to."""
    media = calls.media(f.section("media", ("rtp_ports", "bind", "advertise", "codecs",
                                            "telephone_event")))
    n = f.opt_section("numbering", ("country_code", "national_prefix", "international_prefix"))
    refs.numbering = calls.numbering(n) if n is not None else Numbering()
    prompts = calls.prompts(f.section("prompts", ("dir", "files")), base_dir)
    refs.prompts = prompts.files.keys()
    schedules = calls.schedules(f.get("schedules"))
    refs.schedules = schedules.keys()
    v = f.opt_section("voicemail", ("dir", "max_seconds", "silence_seconds", "prompt"))
    refs.voicemail = v is not None
    ivr = ivr_trees(f.get("ivr"), refs)
    refs.ivr = ivr.keys()
    hotlines = calls.hotlines(f.get("hotlines"), refs)
    return _CallSections(
        media=media,
        numbering=refs.numbering,
        prompts=prompts,
        schedules=schedules,
        voicemail=calls.voicemail(v, refs) if v is not None else None,
        ivr=ivr,
        hotlines=hotlines,
        blacklist=calls.blacklist(f.section("blacklist", ("numbers", "prefixes", "action",
                                                          "prompt")), refs),
        outbound_rules=calls.outbound_rules(f.opt_list("outbound_rules"), refs),
        referenced_queues=tuple(dict.fromkeys(q.name for q in refs.queues)),
        queue_refs=tuple(sorted(refs.queues, key=lambda q: q.line)),
    )


# -- address parsing ----------------------------------------------------------------------


def _port(text: str) -> int:
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= 65535:
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
        if not names or _DOTTED_NUMBERS.fullmatch(host) or not _HOSTNAME.fullmatch(host):
            raise ValueError("host must be an IPv4 address or [IPv6]"
                             + (" or a DNS name" if names else "")) from None
    return host, _port(port) if colon else None


def _host_port(node: Node, *, default_port: int | None) -> HostPort | None:
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


def _trunk_source(node: Node) -> TrunkSource | None:
    text = node.text()
    if text is None:
        return None
    try:
        if "/" in text or (text.count(":") > 1 and not text.startswith("[")):
            return TrunkSource(ipaddress.ip_network(text))  # CIDR or bare IPv6, no port
        host, port = split_host_port(text, names=False)
        return TrunkSource(ipaddress.ip_network(host), port)
    except ValueError as exc:
        reason = "must be IP, IP:port, CIDR, [IPv6] or [IPv6]:port"
        if str(exc).startswith("port"):
            reason = str(exc)
        node.problem(f"{reason}, got {shown(text)}")
        return None


def _networks(items: list[Node]) -> tuple[IPNetwork, ...]:
    return tuple(net for net in (item.network() for item in items) if net is not None)


# -- sections -----------------------------------------------------------------------------


def _sip(f: Fields) -> SipConfig:
    listen: list[ListenAddress] = []
    seen = Unique("listen address")
    for item in f.req_list("listen"):
        address = _listen_address(item)
        if address is not None and seen.first(item, address):
            listen.append(address)
    domain = f.req_str("domain", pattern=_HOSTNAME, rule="must be a host name")
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


def _registrar(f: Fields) -> RegistrarConfig:
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


def _security(f: Fields) -> SecurityConfig:
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
        trusted_networks=_networks(f.opt_list("trusted_networks")),
        digest_algorithms=tuple(algorithms) if items is not None else DIGEST_ALGORITHMS,
    )


def _admin(f: Fields) -> AdminConfig:
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
        listen=f.opt("listen", AdminConfig().listen, lambda n: _host_port(n, default_port=None)),
        tokens=tuple(tokens),
    )


def _store(f: Fields) -> StoreConfig:
    url = f.opt_str("url", StoreConfig().url, secret=True)  # may carry a DB password
    if not url.startswith(STORE_SCHEMES):
        scheme = url.split("://", 1)[0] + "://" if "://" in url else ""
        f.blame("url").problem(f"must start with {' or '.join(STORE_SCHEMES)}"
                               + (f", got {shown(scheme)}" if scheme else ""))
    return StoreConfig(url)


def _events(f: Fields) -> EventsConfig:
    bus = f.opt_str("bus", "inproc", secret=True)  # a redis URL may carry a password
    if bus != "inproc" and not bus.startswith(("redis://", "rediss://")):
        f.blame("bus").problem("must be inproc or a redis:// or rediss:// URL")
    return EventsConfig(
        bus=bus,
        stream=f.opt_str("stream", "acd:events"),
        maxlen=f.opt_int("maxlen", 100000, min=1),
    )


def _logging(f: Fields) -> LoggingConfig:
    return LoggingConfig(level=f.opt_choice("level", "info", LOG_LEVELS),
                         format=f.opt_choice("format", "json", LOG_FORMATS))


def _accounts(items: list[Node]) -> tuple[Account, ...]:
    users = Unique("user")
    keys = ("user", "password", "ha1", "ha1_sha256", "display_name", "max_contacts",
            "allowed_networks")
    return tuple(_account(item.fields(keys), users) for item in items)


def _account(f: Fields, users: Unique) -> Account:
    user = f.req_str("user", numeric=True, pattern=_USER,
                     rule="must contain only letters, digits, '.', '_' and '-'")
    if f.ok("user"):
        users.first(f.blame("user"), user)
    password = f.opt_str("password", None, numeric=True, secret=True)
    ha1 = f.opt_str("ha1", None, numeric=True, secret=True, pattern=_HEX32,
                    rule="must be 32 hex digits (MD5 of user:realm:password)")
    ha1_sha256 = f.opt_str("ha1_sha256", None, numeric=True, secret=True, pattern=_HEX64,
                           rule="must be 64 hex digits (SHA-256 of user:realm:password)")
    if f.has("password") and f.has("ha1"):
        f.blame("ha1").problem("cannot be combined with password; set exactly one")
    elif not f.has("password") and not f.has("ha1") and not f.quiet:
        f.node.problem("needs a password or an ha1")
    if f.has("ha1_sha256") and not f.has("ha1"):
        f.blame("ha1_sha256").problem("is only allowed together with ha1")
    return Account(
        user=user,
        display_name=f.opt_str("display_name", user),
        password=password,
        ha1=ha1.lower() if ha1 else None,
        ha1_sha256=ha1_sha256.lower() if ha1_sha256 else None,
        max_contacts=f.opt_int("max_contacts", 5, min=1),
        allowed_networks=_networks(f.opt_list("allowed_networks")),
    )


def _trunks(items: list[Node]) -> tuple[Trunk, ...]:
    names, hotlines = Unique("trunk name"), Unique("hotline")
    keys = ("name", "inbound", "outbound", "options_ping", "hotlines")
    return tuple(_trunk(item.fields(keys), names, hotlines) for item in items)


def _trunk(f: Fields, names: Unique, hotlines: Unique) -> Trunk:
    name = f.req_str("name", pattern=_NAME,
                     rule="must contain only letters, digits, '_' and '-'")
    if f.ok("name"):
        names.first(f.blame("name"), name)
    numbers: list[str] = []
    for item in f.opt_list("hotlines"):
        number = item.text(numeric=True, pattern=_DIGITS, rule="must contain only digits")
        if number is not None and hotlines.first(item, number):
            numbers.append(number)
    outbound = f.opt_section("outbound", ("proxy", "transport", "register", "from_domain"))
    return Trunk(
        name=name,
        inbound=_inbound(f.section("inbound", ("sources", "auth"))),
        outbound=_outbound(outbound) if outbound is not None else None,
        options_ping=f.opt_int("options_ping", 30, min=0),
        hotlines=tuple(numbers),
    )


def _inbound(f: Fields) -> TrunkInbound:
    items = f.opt_list("sources")
    sources = tuple(s for s in map(_trunk_source, items) if s is not None)
    a = f.opt_section("auth", ("username", "password"))
    auth = None if a is None else TrunkInboundAuth(
        username=a.req_str("username", numeric=True),
        password=a.req_str("password", numeric=True, secret=True),
    )
    if not items and auth is None and f.ok("sources") and not f.quiet:
        f.node.problem("needs sources or auth")
    return TrunkInbound(sources, auth)


def _outbound(f: Fields) -> TrunkOutbound:
    r = f.opt_section("register", ("username", "password", "expires", "realm"))
    register = None if r is None else TrunkRegister(
        username=r.req_str("username", numeric=True),
        password=r.req_str("password", numeric=True, secret=True),
        expires=r.opt_int("expires", 600, min=1),
        realm=r.opt_str("realm", None),
    )
    return TrunkOutbound(
        proxy=f.req("proxy", HostPort("", 0), lambda n: _host_port(n, default_port=5060)),
        transport=f.opt_choice("transport", "udp", TRANSPORTS),
        register=register,
        from_domain=f.opt_str("from_domain", None, pattern=_HOSTNAME,
                              rule="must be a host name"),
    )
