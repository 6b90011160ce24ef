"""Configuration of calls, the model: media, numbering, prompts, schedules, blacklists,
hotlines, outbound rules and voicemail as frozen dataclasses (the IVR trees are ivr.model's).

Owns: these dataclasses, Numbering's normal form of a phone number (which blacklists are
stored in and routing compares against), Refs (the names one section offers the sections
that refer to it) and the small readers the call-section builders share. The builders are
in acd.config_callsections and acd.config_ivr.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from acd.yamlsource import Node, shown
from ivr.schedule import Schedule

__all__ = [
    "BLACKLIST_ACTIONS", "CODECS", "DESTINATION_KINDS", "E164", "NUMBER_FORMATS", "Blacklist",
    "Destination", "Hotline", "MediaConfig", "Numbering", "OutboundRule", "PromptsConfig",
    "QueueRef", "Refs", "Schedule", "VoicemailConfig", "good_name", "named", "queue_name",
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
_SEPARATORS = re.compile(r"[ ().-]")
E164 = re.compile(r"\+[1-9][0-9]{1,14}")


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
    record: str | None = None  # always | never | on_demand; None: recording.default


@dataclass(frozen=True, slots=True)
class OutboundRule:
    name: str
    prefixes: tuple[str, ...]  # as written
    match_prefixes: tuple[str, ...]  # normalized: compared with the normalized number
    trunks: tuple[str, ...]  # in order of preference
    caller_id: str
    allow: frozenset[str]  # account users
    format: NumberFormat = "e164"
    record: str | None = None  # always | never | on_demand; None: recording.default


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
