"""Tests of ivr.schedule: range and date parsing, overlaps, and is_open across timezones,
holidays and DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.schedule import (
    DAYS,
    Schedule,
    TimeRange,
    find_overlap,
    parse_date,
    parse_time_range,
    timezone_reason,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
WORKDAY = (parse_time_range("08:00-12:00"), parse_time_range("13:00-17:30"))
OFFICE = Schedule("office", "Asia/Ho_Chi_Minh",
                  weekly=(WORKDAY,) * 5 + ((parse_time_range("08:00-12:00"),), ()),
                  holidays=frozenset({date(2026, 1, 1)}))


def test_parse_time_range() -> None:
    assert parse_time_range("08:00-12:30") == TimeRange(8 * 3600, 12 * 3600 + 1800)
    assert str(parse_time_range("00:00-24:00")) == "00:00-24:00"
    for bad, reason in [("8:00-12:00", "must be HH:MM-HH:MM"),
                        ("08:00 - 12:00", "must be HH:MM-HH:MM"),
                        ("25:00-26:00", "impossible time"),
                        ("08:60-09:00", "impossible time"),
                        ("08:00-24:01", "impossible time"),
                        ("12:00-08:00", "must start before it ends"),
                        ("08:00-08:00", "must start before it ends")]:
        with pytest.raises(ValueError, match=reason):
            parse_time_range(bad)


def test_overlaps() -> None:
    a, b, c = (parse_time_range(t) for t in ("08:00-12:00", "11:00-13:00", "12:00-14:00"))
    assert find_overlap([a, c]) is None  # touching is fine
    assert find_overlap([c, b, a]) == (a, b)


def test_parse_date_and_timezone() -> None:
    assert parse_date("2026-09-02") == date(2026, 9, 2)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_date("2026-9-2")
    with pytest.raises(ValueError, match="not a real date"):
        parse_date("2026-02-30")
    assert timezone_reason("Europe/Paris") is None
    reason = timezone_reason("Asia/Saigonn")
    assert reason is not None and "unknown timezone 'Asia/Saigonn'" in reason
    assert timezone_reason("../etc/passwd") is not None


def hcm(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=HCM)


def test_is_open_in_local_time() -> None:
    assert OFFICE.is_open(hcm(2026, 3, 2, 8, 0))  # Monday
    assert OFFICE.is_open(hcm(2026, 3, 2, 11, 59, 59))
    assert not OFFICE.is_open(hcm(2026, 3, 2, 12, 0))  # lunch
    assert OFFICE.is_open(hcm(2026, 3, 2, 13, 0))
    assert not OFFICE.is_open(hcm(2026, 3, 2, 17, 30))
    assert OFFICE.is_open(hcm(2026, 3, 7, 9, 0))  # Saturday morning
    assert not OFFICE.is_open(hcm(2026, 3, 7, 14, 0))
    assert not OFFICE.is_open(hcm(2026, 3, 8, 9, 0))  # Sunday
    # The same instant written in UTC: 01:30 UTC is 08:30 in Ho Chi Minh City.
    assert OFFICE.is_open(datetime(2026, 3, 2, 1, 30, tzinfo=UTC))
    assert not OFFICE.is_open(datetime(2026, 3, 2, 0, 30, tzinfo=UTC))
    # 10:30 UTC would be open read as wall time, but it is 17:30 local: closed.
    assert not OFFICE.is_open(datetime(2026, 3, 2, 10, 30, tzinfo=UTC))
    # Saturday 00:30 UTC is Saturday 07:30 local and 01:30 UTC is 08:30 local.
    assert not OFFICE.is_open(datetime(2026, 3, 7, 0, 30, tzinfo=UTC))
    assert OFFICE.is_open(datetime(2026, 3, 7, 1, 30, tzinfo=UTC))


def test_holidays_close_all_day() -> None:
    assert not OFFICE.is_open(hcm(2026, 1, 1, 9, 0))  # a Thursday
    assert OFFICE.is_open(hcm(2026, 1, 2, 9, 0))
    assert not OFFICE.is_open(datetime(2026, 1, 1, 2, 0, tzinfo=UTC))  # 09:00 local
    assert OFFICE.is_open(datetime(2026, 1, 2, 2, 0, tzinfo=UTC))


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        OFFICE.is_open(datetime(2026, 3, 2, 9, 0))


PARIS = Schedule("p", "Europe/Paris", weekly=((parse_time_range("01:00-04:00"),),) * 7)


def test_dst_spring_forward_and_fall_back() -> None:
    # 2026-03-29: Paris jumps from 02:00 to 03:00 (01:00 UTC). Wall 01:30 CET is 00:30 UTC.
    assert PARIS.is_open(datetime(2026, 3, 29, 0, 30, tzinfo=UTC))
    assert PARIS.is_open(datetime(2026, 3, 29, 1, 30, tzinfo=UTC))  # 03:30 CEST
    assert not PARIS.is_open(datetime(2026, 3, 29, 2, 0, tzinfo=UTC))  # 04:00 CEST
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET; 03:30 CET (02:30 UTC) still open,
    # 04:00 CET (03:00 UTC) closed: five hours of UTC time for a three-hour range.
    assert PARIS.is_open(datetime(2026, 10, 24, 23, 0, tzinfo=UTC))  # 01:00 CEST
    assert PARIS.is_open(datetime(2026, 10, 25, 2, 30, tzinfo=UTC))
    assert not PARIS.is_open(datetime(2026, 10, 25, 3, 0, tzinfo=UTC))
    assert PARIS.ranges("sun") == PARIS.weekly[6]


def test_open_seconds_per_day_follow_the_wall_clock() -> None:
    """Counting in 15-minute UTC steps, an open range keeps its wall length in hours except
    on DST days, where it gains or loses the hour that was skipped or repeated."""
    def open_quarters(day: date) -> int:
        paris = ZoneInfo("Europe/Paris")
        t = datetime(day.year, day.month, day.day, tzinfo=paris).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), paris)
        count = 0
        while t < end:
            count += PARIS.is_open(t)
            t += timedelta(minutes=15)
        return count
    assert open_quarters(date(2026, 3, 28)) == 12
    assert open_quarters(date(2026, 3, 29)) == 8  # 02:00-03:00 never happens
    assert open_quarters(date(2026, 10, 25)) == 16  # 02:00-03:00 happens twice


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.sampled_from([UTC, HCM, ZoneInfo("Europe/Paris"),
                                               ZoneInfo("America/New_York")])))
def test_is_open_agrees_with_a_plain_local_reading(at: datetime) -> None:
    local = at.astimezone(HCM)
    expected = local.date() not in OFFICE.holidays and any(
        r.start <= local.hour * 3600 + local.minute * 60 + local.second < r.end
        for r in OFFICE.ranges(DAYS[local.weekday()]))
    assert OFFICE.is_open(at) == expected
