"""Configuration of calls: media, numbering, prompts, schedules, blacklists, hotlines,
outbound rules and voicemail (the IVR trees are in acd.config_ivr).

Owns: these sections' frozen dataclasses, their builders (called from acd.config._build
with the names other sections define, in `Refs`), and Numbering's normal form of a phone
number, which blacklists are stored in and routing compares against. Prompt files are
decoded once here so a file that is missing or unusable is a problem at load time, not a
silent call.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from acd.yamlsource import Fields, Node, Unique, shown
from ivr.schedule import (
    DAYS,
    Schedule,
    TimeRange,
    find_overlap,
    parse_date,
    parse_time_range,
    timezone_reason,
)
from media.audiofile import AudioFileError
from media.prompt import load_prompt

__all__ = [
    "DESTINATION_KINDS", "NUMBER_FORMATS", "Blacklist", "Destination", "Hotline",
    "MediaConfig", "Numbering", "OutboundRule", "PromptsConfig", "QueueRef", "Refs",
    "Schedule", "VoicemailConfig", "named",
]

Codec = Literal["PCMU", "PCMA"]
NumberFormat = Literal["e164", "national", "as_dialled"]
DestinationKind = Literal["ivr", "queue", "extension", "voicemail", "play"]
BlacklistAction = Literal["reject", "play"]

CODECS: tuple[Codec, ...] = ("PCMU", "PCMA")
NUMBER_FORMATS: tuple[NumberFormat, ...] = ("e164", "national", "as_dialled")
DESTINATION_KINDS: tuple[DestinationKind, ...] = ("ivr", "queue", "extension", "voicemail",
                                                  "play")
BLACKLIST_ACTIONS: tuple[BlacklistAction, ...] = ("reject", "play")

NAME = re.compile(r"[A-Za-z0-9_-]+")
NAME_RULE = "must contain only letters, digits, '_' and '-'"
_DIGITS = re.compile(r"[0-9]+")
_COUNTRY = re.compile(r"[1-9][0-9]{0,2}")
_DIALLED = re.compile(r"\+?[0-9]+")
_PORT_RANGE = re.compile(r"([0-9]{1,5})-([0-9]{1,5})")
_SEPARATORS = re.compile(r"[ ().-]")
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_E164_PREFIX = re.compile(r"\+[0-9]{1,15}")


# -- dataclasses --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaConfig:
    rtp_ports: tuple[int, int] = (20000, 29999)  # inclusive; RTP even, RTCP the next odd
    bind: str = "127.0.0.1"  # loopback unless configured: nothing exposed by default
    advertise: str = "127.0.0.1"  # written in SDP; defaults to bind when that is specific
    codecs: tuple[Codec, ...] = CODECS
    telephone_event: int = 101


@dataclass(frozen=True, slots=True)
class Numbering:
    """How numbers are written locally; normalize() turns them into E.164."""

    country_code: str | None = None  # None: national numbers stay as written
    national_prefix: str = "0"
    international_prefix: str = "00"

    def normalize(self, number: str) -> str:
        """E.164 with '+' when the number says which country it is in; otherwise the number
        as written without separators (extensions, short codes, 'anonymous').

        0912345678, +84912345678, 84912345678 and 0084912345678 all give +84912345678
        with country code 84. Works on prefixes too: "0" gives "+84", "00" gives "+".
        """
        n = _SEPARATORS.sub("", number)
        if n.startswith("+"):
            return n
        if n.startswith(self.international_prefix):
            return "+" + n[len(self.international_prefix):]
        if self.country_code is not None:
            if n.startswith(self.national_prefix):
                return "+" + self.country_code + n[len(self.national_prefix):]
            if n.startswith(self.country_code):
                return "+" + n
        return n

    def to_e164(self, number: str) -> str | None:
        """The E.164 form, or None when the number is not a full international one."""
        n = self.normalize(number)
        return n if E164.fullmatch(n) else None

    def dial_string(self, number: str, fmt: NumberFormat, dialled: str | None = None) -> str:
        """A normalized number as a trunk wants it: e164 drops the '+', national writes
        home numbers with the national prefix and others with the international one,
        as_dialled sends what the user dialled (without separators). A number that is not
        E.164 (a short code) goes as it is."""
        if fmt == "as_dialled":
            return _SEPARATORS.sub("", dialled if dialled is not None else number)
        if not number.startswith("+"):
            return number
        if fmt == "e164":
            return number[1:]
        home = "+" + self.country_code if self.country_code else None
        if home and number.startswith(home):
            return self.national_prefix + number[len(home):]
        return self.international_prefix + number[1:]


@dataclass(frozen=True, slots=True)
class PromptsConfig:
    dir: Path = Path("prompts")  # resolved against the config file's directory
    files: Mapping[str, Path] = field(  # name -> full path
        default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Blacklist:
    """Callers refused: exact numbers and prefixes, both in normalized (E.164) form."""

    numbers: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    action: BlacklistAction = "reject"
    prompt: str | None = None  # set when action is play

    def match(self, caller: str) -> str | None:
        """The entry a normalized caller matches (the number or the longest prefix)."""
        if caller in self.numbers:
            return caller
        hits = [p for p in self.prefixes if caller.startswith(p)]
        return max(hits, key=len) if hits else None


@dataclass(frozen=True, slots=True)
class Destination:
    kind: DestinationKind
    target: str  # tree, queue, extension, mailbox or prompt name


@dataclass(frozen=True, slots=True)
class Hotline:
    number: str
    destination: Destination
    schedule: str | None = None
    out_of_hours: Destination | None = None  # set exactly when schedule is
    blacklist: Blacklist | None = None


@dataclass(frozen=True, slots=True)
class OutboundRule:
    name: str
    prefixes: tuple[str, ...]  # as written
    match_prefixes: tuple[str, ...]  # normalized: compared with the normalized number
    trunks: tuple[str, ...]  # in order of preference
    caller_id: str
    allow: frozenset[str]  # account users
    format: NumberFormat = "e164"


@dataclass(frozen=True, slots=True)
class VoicemailConfig:
    dir: Path = Path("recordings/voicemail")  # relative to the working directory
    max_seconds: int = 120
    silence_seconds: float = 10.0
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class QueueRef:
    """A queue named by a hotline or an IVR node, kept until queues can be checked."""

    name: str
    key: str
    line: int


@dataclass(slots=True)
class Refs:
    """Names defined by sections already built, for the sections that refer to them."""

    users: Collection[str] = ()
    hotline_numbers: Collection[str] = ()  # every trunk's hotlines
    trunks: Collection[str] = ()
    outbound_trunks: Collection[str] = ()
    numbering: Numbering = Numbering()
    prompts: Collection[str] = ()
    schedules: Collection[str] = ()
    ivr: Collection[str] = ()
    voicemail: bool = False
    queues: list[QueueRef] = field(default_factory=list)


# -- helpers ------------------------------------------------------------------------------


class _AnyKey(Collection[str]):
    """Accepts every key: for mappings whose keys are names the user chooses."""

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def named(node: Node | None) -> dict[str, Node]:
    """The entries of a mapping keyed by names (duplicates and merges handled as usual)."""
    return {} if node is None else node.fields(_AnyKey()).children


def good_name(key: str, node: Node, pattern: re.Pattern[str] = NAME,
              rule: str = NAME_RULE) -> bool:
    if pattern.fullmatch(key):
        return True
    node.problem(f"name {rule}, got {shown(key)}")
    return False


def queue_name(node: Node, refs: Refs) -> str | None:
    name = node.text(numeric=True, pattern=NAME, rule=NAME_RULE)
    if name is not None:
        refs.queues.append(QueueRef(name, node.path, node.line))
    return name


def _ip(node: Node) -> str | None:
    """An IP address literal, in its compressed form."""
    text = node.text()
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        node.problem(f"must be an IP address, got {shown(text)}")
        return None


# -- sections -----------------------------------------------------------------------------


def media(f: Fields) -> MediaConfig:
    d = MediaConfig()
    ports = f.opt("rtp_ports", d.rtp_ports, _port_range)
    bind = ipaddress.ip_address(f.opt("bind", d.bind, _ip))
    advertise = ipaddress.ip_address(f.opt("advertise", str(bind), _ip))
    if advertise.is_unspecified and f.has("advertise"):
        f.blame("advertise").problem(f"must be an address peers can reach, got {advertise}")
    elif advertise.is_unspecified and f.ok("bind"):
        f.blame("bind").problem(f"needs advertise: {bind} is no address peers can send to")
    elif not bind.is_unspecified and advertise.version != bind.version:
        f.blame("advertise").problem(f"must be IPv{bind.version} like bind")
    codecs: list[Codec] = []
    seen = Unique("codec")
    for item in f.req_list("codecs") if f.has("codecs") else ():
        codec = item.choice(CODECS)
        if codec is not None and seen.first(item, codec):
            codecs.append(codec)
    return MediaConfig(
        rtp_ports=ports,
        bind=str(bind),
        advertise=str(advertise),
        codecs=tuple(codecs) if f.has("codecs") else d.codecs,
        telephone_event=f.opt_int("telephone_event", d.telephone_event, min=96, max=127),
    )


def _port_range(node: Node) -> tuple[int, int] | None:
    text = node.text(numeric=True)
    if text is None:
        return None
    m = _PORT_RANGE.fullmatch(text)
    if m is None:
        node.problem(f"must be a port range A-B, got {shown(text)}")
        return None
    low, high = int(m[1]), int(m[2])
    if low < 1024 or high > 65535:
        node.problem(f"must lie within 1024-65535, got {shown(text)}")
    elif low % 2:
        node.problem(f"must start on an even port (RTP even, RTCP odd), got {low}")
    elif low >= high:
        node.problem(f"must be A-B with A < B (at least one RTP/RTCP pair), got {shown(text)}")
    else:
        return low, high
    return None


def numbering(f: Fields) -> Numbering:
    def digits(key: str, default: str) -> str:
        return f.opt_str(key, default, numeric=True, pattern=_DIGITS,
                         rule="must contain only digits")

    n = Numbering(
        country_code=f.req_str("country_code", numeric=True, pattern=_COUNTRY,
                               rule="must be 1-3 digits not starting with 0"),
        national_prefix=digits("national_prefix", "0"),
        international_prefix=digits("international_prefix", "00"),
    )
    if f.ok("national_prefix", "international_prefix") and (
            n.national_prefix == n.international_prefix):
        f.blame("international_prefix").problem("must differ from national_prefix")
    return n if f.ok("country_code") else Numbering()


def prompts(f: Fields, base: Path) -> PromptsConfig:
    folder = base / f.opt_str("dir", "prompts")
    entries = named(f.get("files"))
    usable = f.ok("dir")
    if entries and usable and not folder.is_dir():
        f.blame("dir", "files").problem(f"no such directory: {folder}")
        usable = False
    files: dict[str, Path] = {}
    for name, node in entries.items():
        filename = node.text(numeric=True)
        if filename is None or not good_name(name, node):
            continue
        files[name] = folder / filename
        if usable:
            _check_prompt(node, files[name])
    return PromptsConfig(folder, MappingProxyType(files))


def _check_prompt(node: Node, path: Path) -> None:
    try:
        prompt = load_prompt(path)
    except AudioFileError as exc:
        node.problem(f"cannot use {path}: {exc.reason}")
    except (OSError, ValueError) as exc:
        node.problem(f"cannot use {path}: {exc}")
    else:
        if not prompt.frame_count:
            node.problem(f"{path} holds no audio")


def schedules(node: Node | None) -> Mapping[str, Schedule]:
    out: dict[str, Schedule] = {}
    for name, item in named(node).items():
        f = item.fields(("timezone", "weekly", "holidays"))
        tz = f.req_str("timezone")
        if f.ok("timezone") and f.has("timezone"):
            reason = timezone_reason(tz)
            if reason is not None:
                f.blame("timezone").problem(reason)
                f.bad.add("timezone")
        weekly = _weekly(f.opt_section("weekly", DAYS))
        holidays: set[date] = set()
        seen = Unique("holiday")
        for day in f.opt_list("holidays"):
            when = _date(day)
            if when is not None and seen.first(day, when):
                holidays.add(when)
        if good_name(name, item) and f.ok("timezone") and f.has("timezone"):
            out[name] = Schedule(name, tz, weekly, frozenset(holidays))
    return MappingProxyType(out)


def _weekly(f: Fields | None) -> tuple[tuple[TimeRange, ...], ...]:
    if f is None:
        return ((),) * 7
    days: list[tuple[TimeRange, ...]] = []
    for day in DAYS:
        ranges: list[TimeRange] = []
        for item in f.opt_list(day):
            text = item.text()
            try:
                if text is not None:
                    ranges.append(parse_time_range(text))
            except ValueError as exc:
                item.problem(str(exc))
        clash = find_overlap(ranges)
        if clash is not None:
            f.blame(day).problem(f"ranges {clash[0]} and {clash[1]} overlap")
        days.append(tuple(sorted(ranges)))
    return tuple(days)


def _date(node: Node) -> date | None:
    raw = node.raw
    # An unquoted 2026-01-01 is a YAML date; take it as written rather than ask for quotes.
    if getattr(raw, "tag", "").endswith(":timestamp") and isinstance(raw.value, str):
        text: str | None = raw.value
    else:
        text = node.text()
    if text is None:
        return None
    try:
        return parse_date(text)
    except ValueError as exc:
        node.problem(str(exc))
        return None


def blacklist(f: Fields, refs: Refs) -> Blacklist:
    found: dict[str, list[str]] = {"numbers": [], "prefixes": []}
    seen = Unique("entry")
    for key, pattern, what in (("numbers", E164, "number"),
                               ("prefixes", _E164_PREFIX, "number prefix")):
        for item in f.opt_list(key):
            text = item.text(numeric=True)
            if text is None:
                continue
            value = refs.numbering.normalize(text)
            if not pattern.fullmatch(value):
                hint = "" if refs.numbering.country_code else " (national ones need numbering)"
                item.problem(f"must be a phone {what} in E.164 (+...), national or "
                             f"international form, got {shown(text)}{hint}")
            elif seen.first(item, value):
                found[key].append(value)
    action = f.opt_choice("action", "reject", BLACKLIST_ACTIONS)
    prompt = f.opt("prompt", None, lambda n: n.ref(refs.prompts, "prompt"))
    if action == "play" and not f.has("prompt") and not f.quiet:
        f.missing("prompt")
    elif action == "reject" and f.has("prompt"):
        f.blame("prompt").problem("is only used with action: play")
    return Blacklist(frozenset(found["numbers"]), tuple(found["prefixes"]), action, prompt)


def destination(node: Node, refs: Refs) -> Destination | None:
    f = node.fields(DESTINATION_KINDS)
    kinds = [k for k in DESTINATION_KINDS if k in f.children]
    if len(kinds) != 1:
        if not f.quiet:
            node.problem(f"must have exactly one of {', '.join(DESTINATION_KINDS)}"
                         + (f", got {', '.join(kinds)}" if kinds else ""))
        return None
    kind = kinds[0]
    value = f.children[kind]
    target: str | None
    if kind == "ivr":
        target = value.ref(refs.ivr, "ivr tree")
    elif kind == "queue":
        target = queue_name(value, refs)
    elif kind == "extension":
        target = value.ref(refs.users, "account")
    elif kind == "voicemail":
        target = value.text(numeric=True, pattern=NAME, rule=NAME_RULE)
        if target is not None and not refs.voicemail:
            value.problem("needs the voicemail section")
    else:
        target = value.ref(refs.prompts, "prompt")
    return Destination(kind, target) if target is not None else None


def hotlines(node: Node | None, refs: Refs) -> Mapping[str, Hotline]:
    out: dict[str, Hotline] = {}
    keys = ("destination", "schedule", "out_of_hours", "blacklist")
    for number, item in named(node).items():
        f = item.fields(keys)
        if number not in refs.hotline_numbers:
            item.problem("is not a hotline of any trunk (list it in a trunk's hotlines)")
        dest = f.req("destination", None, lambda n: destination(n, refs))
        schedule = f.opt("schedule", None, lambda n: n.ref(refs.schedules, "schedule"))
        closed = f.opt("out_of_hours", None, lambda n: destination(n, refs))
        if f.has("schedule") and not f.has("out_of_hours") and not f.quiet:
            f.missing("out_of_hours")
        elif f.has("out_of_hours") and not f.has("schedule"):
            f.blame("out_of_hours").problem("is only used with schedule")
        b = f.opt_section("blacklist", ("numbers", "prefixes", "action", "prompt"))
        bl = blacklist(b, refs) if b is not None else None
        if dest is not None and (closed is not None or not f.has("schedule")):
            out[number] = Hotline(number, dest, schedule, closed, bl)
    return MappingProxyType(out)


def outbound_rules(items: list[Node], refs: Refs) -> tuple[OutboundRule, ...]:
    names, prefixes = Unique("rule name"), Unique("prefix")
    keys = ("name", "prefixes", "format", "trunks", "caller_id", "allow")
    rules = (_outbound_rule(item.fields(keys), refs, names, prefixes) for item in items)
    return tuple(r for r in rules if r is not None)


def _outbound_rule(f: Fields, refs: Refs, names: Unique,
                   prefixes: Unique) -> OutboundRule | None:
    name = f.req_str("name", pattern=NAME, rule=NAME_RULE)
    if f.ok("name") and f.has("name"):
        names.first(f.blame("name"), name)
    written: list[str] = []
    normal: list[str] = []
    for item in f.req_list("prefixes"):
        text = item.text(numeric=True, pattern=_DIALLED, rule="must be digits, maybe after +")
        if text is None:
            continue
        value = refs.numbering.normalize(text)
        written.append(text)
        if value not in normal and prefixes.first(item, value):
            normal.append(value)
    trunks: list[str] = []
    for item in f.req_list("trunks"):
        trunk = item.ref(refs.trunks, "trunk")
        if trunk is not None and trunk not in refs.outbound_trunks:
            item.problem(f"trunk {shown(trunk)} has no outbound section")
        elif trunk is not None:
            trunks.append(trunk)
    caller_id = f.req("caller_id", "", lambda n: n.ref(refs.hotline_numbers, "hotline"))
    allow = {u for u in (n.ref(refs.users, "account") for n in f.req_list("allow")) if u}
    return OutboundRule(name, tuple(written), tuple(normal), tuple(trunks), caller_id,
                        frozenset(allow), f.opt_choice("format", "e164", NUMBER_FORMATS))


def voicemail(f: Fields, refs: Refs) -> VoicemailConfig:
    d = VoicemailConfig()
    max_seconds = f.opt_int("max_seconds", d.max_seconds, min=1, max=3600)
    silence = f.opt_float("silence_seconds", d.silence_seconds, gt=0)
    if f.ok("max_seconds", "silence_seconds") and silence > max_seconds:
        f.blame("silence_seconds").problem(
            f"must not exceed max_seconds ({max_seconds}), got {silence:g}")
    return VoicemailConfig(
        dir=Path(f.opt_str("dir", str(d.dir))),
        max_seconds=max_seconds,
        silence_seconds=silence,
        prompt=f.opt("prompt", None, lambda n: n.ref(refs.prompts, "prompt")),
    )
