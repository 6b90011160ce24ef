"""Call routing decisions, pure: where an inbound call to a hotline goes and whether (and
how) an account may call out.

Owns: number normalization as routing applies it (callers and dialled numbers compared in
E.164), the blacklist check (global, then the hotline's), working hours (Schedule.is_open
on the given aware time) and the outbound toll-fraud guard: a call goes out only through the
rule whose prefix matches the normalized number longest, and only for the accounts that
rule allows. Nothing here does I/O or reads a clock; the configuration is acd.config's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from acd.config import Config, Destination, Hotline, Numbering, OutboundRule
from acd.config_calls import E164, NumberFormat
from ivr.schedule import Schedule

__all__ = [
    "InboundRoute", "OutboundRefused", "OutboundRoute", "Play", "Reject", "Schedule",
    "check_blacklist", "format_for_trunk", "normalize", "route_inbound", "route_outbound",
    "to_e164",
]

RouteKind = Literal["ivr", "queue", "extension", "voicemail", "play", "reject"]
Outcome = Literal["open", "out_of_hours", "blacklisted", "no_route"]
_NUMBER = re.compile(r"\+?[0-9]+")

BLACKLIST_STATUS = 603  # Decline: the callee will not take this call, anywhere
NO_ROUTE_STATUS = 404


def normalize(number: str, numbering: Numbering) -> str:
    """E.164 ('+84912345678') when the number names its country, else the number without
    separators. With country code 84: 0912345678, +84912345678, 84912345678 and
    0084912345678 all give +84912345678."""
    return numbering.normalize(number)


def to_e164(number: str, numbering: Numbering) -> str | None:
    return numbering.to_e164(number)


def format_for_trunk(number: str, fmt: NumberFormat, numbering: Numbering,
                     dialled: str | None = None) -> str:
    """A normalized number as a trunk wants it: e164 gives 84912345678 for +84912345678,
    national 0912345678, as_dialled what the user dialled."""
    return numbering.dial_string(number, fmt, dialled)


# -- inbound ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the call (SIP 603)."""

    scope: str  # "global" or the hotline number whose list matched
    entry: str  # the number or prefix that matched
    status: int = BLACKLIST_STATUS


@dataclass(frozen=True, slots=True)
class Play:
    """Answer, play the prompt, hang up."""

    prompt: str
    scope: str
    entry: str


def check_blacklist(config: Config, hotline: str | Hotline | None,
                    caller: str) -> Reject | Play | None:
    """The global blacklist first, then the hotline's; None when the caller may call."""
    normal = normalize(caller, config.numbering)
    if isinstance(hotline, str):
        hotline = config.hotlines.get(hotline)
    lists = [("global", config.blacklist)]
    if hotline is not None and hotline.blacklist is not None:
        lists.append((hotline.number, hotline.blacklist))
    for scope, blacklist in lists:
        entry = blacklist.match(normal)
        if entry is None:
            continue
        if blacklist.action == "play" and blacklist.prompt is not None:
            return Play(blacklist.prompt, scope, entry)
        return Reject(scope, entry)
    return None


@dataclass(frozen=True, slots=True)
class InboundRoute:
    """What to do with a call to `hotline`: `kind`/`target` say where it goes (a tree,
    queue, extension, mailbox or prompt; reject carries a SIP `status`), `outcome` why."""

    hotline: str
    caller: str  # normalized
    outcome: Outcome
    kind: RouteKind
    target: str = ""
    status: int | None = None
    blacklist: Reject | Play | None = None

    @property
    def destination(self) -> Destination | None:
        return None if self.kind == "reject" else Destination(self.kind, self.target)


def route_inbound(config: Config, hotline: str, caller: str, at: datetime) -> InboundRoute:
    """Route a call from `caller` to `hotline` at the aware time `at`."""
    normal = normalize(caller, config.numbering)
    line = config.hotlines.get(hotline)
    if line is None:
        return InboundRoute(hotline, normal, "no_route", "reject", status=NO_ROUTE_STATUS)
    hit = check_blacklist(config, line, normal)
    if isinstance(hit, Play):
        return InboundRoute(hotline, normal, "blacklisted", "play", hit.prompt, blacklist=hit)
    if isinstance(hit, Reject):
        return InboundRoute(hotline, normal, "blacklisted", "reject", status=hit.status,
                            blacklist=hit)
    schedule = config.schedules.get(line.schedule) if line.schedule is not None else None
    if schedule is not None and line.out_of_hours is not None and not schedule.is_open(at):
        closed = line.out_of_hours
        return InboundRoute(hotline, normal, "out_of_hours", closed.kind, closed.target)
    return InboundRoute(hotline, normal, "open", line.destination.kind, line.destination.target)


# -- outbound -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundRoute:
    rule: str
    number: str  # as the trunks want it (the rule's format)
    normalized: str  # E.164 where the number has a country
    trunks: tuple[str, ...]  # try in order: the next on 5xx or timeout
    caller_id: str


@dataclass(frozen=True, slots=True)
class OutboundRefused:
    reason: Literal["no rule", "not allowed"]
    detail: str
    rule: str | None = None


def route_outbound(config: Config, account_user: str,
                   dialled: str) -> OutboundRoute | OutboundRefused:
    """Choose the rule for `dialled` by its longest matching normalized prefix; refuse when
    none matches or the rule does not allow `account_user` (no falling back to a shorter
    prefix's rule: that is how a blocked international call would slip out)."""
    numbering = config.numbering
    normal = normalize(dialled, numbering)
    if not _NUMBER.fullmatch(normal) or (normal.startswith("+") and not E164.fullmatch(normal)):
        return OutboundRefused("no rule", f"{dialled!r} is not a phone number")
    best: tuple[int, OutboundRule] | None = None
    for rule in config.outbound_rules:
        for prefix in rule.match_prefixes:
            if normal.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rule)
    if best is None:
        return OutboundRefused("no rule", f"no outbound rule matches {normal}")
    rule = best[1]
    if account_user not in rule.allow:
        return OutboundRefused("not allowed", f"{account_user} may not use rule {rule.name}",
                               rule.name)
    return OutboundRoute(rule.name, numbering.dial_string(normal, rule.format, dialled),
                         normal, rule.trunks, rule.caller_id)
