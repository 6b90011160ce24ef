"""Configuration of calls, the builders: each call section read from YAML into its
acd.config_calls dataclass, with references to other sections checked by name.

Owns: call_sections, which builds the call sections in dependency order (numbering before
the blacklists normalized with it, prompts and schedules before the trees and hotlines that
name them) and collects the queue names they refer to. Prompt files are decoded here, once
per load, so a missing or unusable file is a problem at load time rather than a silent call.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import TypedDict

from acd.config_calls import (
    BLACKLIST_ACTIONS,
    CODECS,
    DESTINATION_KINDS,
    E164,
    NAME,
    NAME_RULE,
    NUMBER_FORMATS,
    Blacklist,
    Codec,
    Destination,
    Hotline,
    MediaConfig,
    Numbering,
    OutboundRule,
    PromptsConfig,
    QueueRef,
    Refs,
    VoicemailConfig,
    good_name,
    named,
    queue_name,
)
from acd.config_ivr import ivr_trees
from acd.config_recording import record_policy
from acd.yamlsource import Fields, Node, Unique, shown
from ivr.model import IvrTree
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

__all__ = ["CallSections", "call_sections"]

_DIGITS = re.compile(r"[0-9]+")
_COUNTRY = re.compile(r"[1-9][0-9]{0,2}")
_DIALLED = re.compile(r"\+?[0-9]+")
_PORT_RANGE = re.compile(r"([0-9]{1,5})-([0-9]{1,5})")
_E164_PREFIX = re.compile(r"\+[0-9]{1,15}")


class CallSections(TypedDict):
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


def call_sections(f: Fields, refs: Refs, base_dir: Path) -> CallSections:
    """The call sections, each built after the ones it refers to."""
    media = _media(f.section("media", ("rtp_ports", "bind", "advertise", "codecs",
                                       "telephone_event")))
    n = f.opt_section("numbering", ("country_code", "national_prefix", "international_prefix"))
    refs.numbering = _numbering(n) if n is not None else Numbering()
    prompts = _prompts(f.section("prompts", ("dir", "files")), base_dir)
    refs.prompts = prompts.files.keys()
    schedules = _schedules(f.get("schedules"))
    refs.schedules = schedules.keys()
    v = f.opt_section("voicemail", ("dir", "max_seconds", "silence_seconds", "prompt"))
    refs.voicemail = v is not None
    ivr = ivr_trees(f.get("ivr"), refs)
    refs.ivr = ivr.keys()
    hotlines = _hotlines(f.get("hotlines"), refs)
    return CallSections(
        media=media,
        numbering=refs.numbering,
        prompts=prompts,
        schedules=schedules,
        voicemail=_voicemail(v, refs) if v is not None else None,
        ivr=ivr,
        hotlines=hotlines,
        blacklist=_blacklist(f.section("blacklist", ("numbers", "prefixes", "action",
                                                     "prompt")), refs),
        outbound_rules=_outbound_rules(f.opt_list("outbound_rules"), refs),
        referenced_queues=tuple(dict.fromkeys(q.name for q in refs.queues)),
        queue_refs=tuple(sorted(refs.queues, key=lambda q: q.line)),
    )


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


def _media(f: Fields) -> MediaConfig:
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


def _numbering(f: Fields) -> Numbering:
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


def _prompts(f: Fields, base: Path) -> PromptsConfig:
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


def _schedules(node: Node | None) -> Mapping[str, Schedule]:
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
        if good_name(name, item):
            # A bad timezone is reported already; UTC stands in so that the hotlines and
            # trees naming this schedule are not told it does not exist.
            usable = f.ok("timezone") and f.has("timezone")
            out[name] = Schedule(name, tz if usable else "UTC", weekly, frozenset(holidays))
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


def _blacklist(f: Fields, refs: Refs) -> Blacklist:
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


def _destination(node: Node, refs: Refs) -> Destination | None:
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


def _hotlines(node: Node | None, refs: Refs) -> Mapping[str, Hotline]:
    out: dict[str, Hotline] = {}
    keys = ("destination", "schedule", "out_of_hours", "blacklist", "record")
    for number, item in named(node).items():
        f = item.fields(keys)
        if number not in refs.hotline_numbers:
            item.problem("is not a hotline of any trunk (list it in a trunk's hotlines)")
        dest = f.req("destination", None, lambda n: _destination(n, refs))
        schedule = f.opt("schedule", None, lambda n: n.ref(refs.schedules, "schedule"))
        closed = f.opt("out_of_hours", None, lambda n: _destination(n, refs))
        if f.has("schedule") and not f.has("out_of_hours") and not f.quiet:
            f.missing("out_of_hours")
        elif f.has("out_of_hours") and not f.has("schedule"):
            f.blame("out_of_hours").problem("is only used with schedule")
        b = f.opt_section("blacklist", ("numbers", "prefixes", "action", "prompt"))
        bl = _blacklist(b, refs) if b is not None else None
        record = f.opt("record", None, record_policy)
        if dest is not None and (closed is not None or not f.has("schedule")):
            out[number] = Hotline(number, dest, schedule, closed, bl, record)
    return MappingProxyType(out)


def _outbound_rules(items: list[Node], refs: Refs) -> tuple[OutboundRule, ...]:
    names, prefixes = Unique("rule name"), Unique("prefix")
    keys = ("name", "prefixes", "format", "trunks", "caller_id", "allow", "record")
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
                        frozenset(allow), f.opt_choice("format", "e164", NUMBER_FORMATS),
                        f.opt("record", None, record_policy))


def _voicemail(f: Fields, refs: Refs) -> VoicemailConfig:
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
