"""Configuration of accounts and trunks: who registers, and the carriers calls come in from
and go out through (with the hotline numbers each one brings).

Owns: these sections' frozen dataclasses and builders (called from acd.config._build).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from acd.config_platform import (
    DIGITS,
    HOSTNAME,
    NAME,
    TRANSPORTS,
    USER,
    HostPort,
    Transport,
    host_port,
    networks,
    split_host_port,
)
from acd.yamlsource import Fields, IPNetwork, Node, Unique, shown

__all__ = [
    "Account", "Trunk", "TrunkInbound", "TrunkInboundAuth", "TrunkOutbound", "TrunkRegister",
    "TrunkSource", "accounts", "trunks",
]

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


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




def accounts(items: list[Node]) -> tuple[Account, ...]:
    users = Unique("user")
    keys = ("user", "password", "ha1", "ha1_sha256", "display_name", "max_contacts",
            "allowed_networks")
    return tuple(_account(item.fields(keys), users) for item in items)


def _account(f: Fields, users: Unique) -> Account:
    user = f.req_str("user", numeric=True, pattern=USER,
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
        allowed_networks=networks(f.opt_list("allowed_networks")),
    )


def trunks(items: list[Node]) -> tuple[Trunk, ...]:
    names, hotlines = Unique("trunk name"), Unique("hotline")
    keys = ("name", "inbound", "outbound", "options_ping", "hotlines")
    return tuple(_trunk(item.fields(keys), names, hotlines) for item in items)


def _trunk(f: Fields, names: Unique, hotlines: Unique) -> Trunk:
    name = f.req_str("name", pattern=NAME,
                     rule="must contain only letters, digits, '_' and '-'")
    if f.ok("name"):
        names.first(f.blame("name"), name)
    numbers: list[str] = []
    for item in f.opt_list("hotlines"):
        number = item.text(numeric=True, pattern=DIGITS, rule="must contain only digits")
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
        proxy=f.req("proxy", HostPort("", 0), lambda n: host_port(n, default_port=5060)),
        transport=f.opt_choice("transport", "udp", TRANSPORTS),
        register=register,
        from_domain=f.opt_str("from_domain", None, pattern=HOSTNAME,
                              rule="must be a host name"),
    )
