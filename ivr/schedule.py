"""Working-hours schedules: weekly opening ranges in an IANA timezone, minus holidays.

Owns: the Schedule value, parsing of "HH:MM-HH:MM" ranges and "YYYY-MM-DD" dates with
reasons fit for a configuration problem, the overlap rule, and `Schedule.is_open`, the one
calendar question the IVR (time_condition) and inbound routing ask. Time comes in as an
aware datetime; nothing here reads a clock.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DAYS", "Schedule", "TimeRange", "find_overlap", "parse_date", "parse_time_range",
           "timezone_reason"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
_RANGE = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True, slots=True, order=True)
class TimeRange:
    """[start, end) in seconds after local midnight; end may be 24:00."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"

    def __contains__(self, second: object) -> bool:
        return isinstance(second, int | float) and self.start <= second < self.end


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def parse_time_range(text: str) -> TimeRange:
    """"08:00-12:00" -> TimeRange. ValueError with the reason when malformed or empty.

    A range cannot cross midnight: "22:00-06:00" is written as two ranges on two days.
    """
    m = _RANGE.fullmatch(text)
    if m is None:
        raise ValueError(f"must be HH:MM-HH:MM, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"has an impossible time, got {text!r}")
    r = TimeRange(h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60)
    if r.start >= r.end:
        raise ValueError(f"must start before it ends (split a range over midnight "
                         f"across two days), got {text!r}")
    return r


def find_overlap(ranges: Sequence[TimeRange]) -> tuple[TimeRange, TimeRange] | None:
    """The first pair of ranges that share some time, in start order; touching is fine."""
    ordered = sorted(ranges)
    for a, b in itertools.pairwise(ordered):
        if b.start < a.end:
            return a, b
    return None


def parse_date(text: str) -> date:
    """"2026-01-01" -> date. ValueError with the reason otherwise."""
    if not _DATE.fullmatch(text):
        raise ValueError(f"must be a date YYYY-MM-DD, got {text!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"is not a real date, got {text!r}") from None


def timezone_reason(name: str) -> str | None:
    """Why `name` is not a usable IANA timezone, or None when it is."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return (f"unknown timezone {name!r} (an IANA name such as Asia/Ho_Chi_Minh; "
                f"install tzdata where the system has no zoneinfo)")
    return None


@dataclass(frozen=True, slots=True)
class Schedule:
    """Open during `weekly[weekday]` ranges, local time in `timezone`; closed all day on
    a holiday. `weekly` has seven entries, Monday first."""

    name: str
    timezone: str
    weekly: tuple[tuple[TimeRange, ...], ...] = ((),) * 7
    holidays: frozenset[date] = field(default_factory=frozenset)

    def is_open(self, at: datetime) -> bool:
        """Whether the schedule is open at the instant `at` (which must be aware).

        The instant is converted to local wall time, so a range means the same clock
        reading in summer and winter; a wall time skipped by a DST jump never occurs, and
        one repeated by a DST fall-back is open (or closed) both times.
        """
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("is_open needs an aware datetime (naive time has no zone)")
        local = at.astimezone(ZoneInfo(self.timezone))
        if local.date() in self.holidays:
            return False
        second = local.hour * 3600 + local.minute * 60 + local.second
        return any(second in r for r in self.weekly[local.weekday()])

    def ranges(self, day: str) -> tuple[TimeRange, ...]:
        """The opening ranges of a weekday named as in DAYS."""
        return self.weekly[DAYS.index(day)]

