"""FrameClock with a fake clock: absolute deadlines, catch-up bursts and resync."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.pacing import FrameClock


def test_absolute_deadlines_and_due() -> None:
    c = FrameClock(start=100.0)
    assert c.due(99.99) == 0
    assert c.due(100.0) == 1  # frame 0 is due at start
    assert c.take(100.0) == 1
    assert c.deadline() == pytest.approx(100.02)
    assert c.wait(100.005) == pytest.approx(0.015)
    assert c.take(100.019) == 0
    assert c.late(100.025) == pytest.approx(0.005)
    assert c.take(100.025) == 1
    assert c.deadline(10) == pytest.approx(100.2)


def test_exact_multiples_are_due_despite_float_rounding() -> None:
    c = FrameClock(start=0.0)
    # 0.06 / 0.02 == 2.9999999999999996 in binary floating point
    assert c.deadline(3) <= 0.06
    assert c.due(0.06) == 4


def test_late_ticks_do_not_drift() -> None:
    # Wake-ups are always 3 ms late: the schedule stays on the 20 ms grid.
    c = FrameClock(start=0.0)
    sent = 0
    now = 0.0
    for _ in range(1000):
        sent += c.take(now)
        now = c.deadline() + 0.003
    assert sent == 1000
    assert c.deadline() == pytest.approx(20.0)


def test_short_hiccup_catches_up_in_a_burst() -> None:
    c = FrameClock(start=0.0, max_burst=5)
    c.take(0.0)
    assert c.take(0.081) == 4  # frames 1..4 due
    assert c.resyncs == 0


def test_long_stall_resyncs_instead_of_bursting() -> None:
    c = FrameClock(start=0.0, max_burst=5)
    c.take(0.0)
    assert c.take(1.0) == 1  # 50 frames were due: send one, re-anchor at now
    assert c.resyncs == 1 and c.skipped_frames == 49
    assert c.deadline() == pytest.approx(1.02)
    assert c.take(1.01) == 0 and c.take(1.02) == 1


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        FrameClock(0.0, ptime=0)
    with pytest.raises(ValueError):
        FrameClock(0.0, max_burst=0)


@given(
    st.floats(-1e6, 1e6),
    st.lists(st.floats(0.0, 0.2), min_size=1, max_size=200),
)
def test_never_sends_ahead_or_more_than_due(start: float, steps: list[float]) -> None:
    c = FrameClock(start=start, max_burst=5)
    now = start
    for step in steps:
        now += step
        before = c.due(now)
        k = c.take(now)
        assert k == (1 if before > 5 else before)
        assert 0 <= k <= 5
        assert c.due(now) == 0  # everything due was taken (or the schedule moved)
        if k:
            assert c.deadline(c.frames_taken - 1) <= now + 1e-9
