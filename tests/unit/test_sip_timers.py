"""sip.timers: the deadline heap the shell drives, checked against a plain-list model."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sip.timers import Timers
from tests.unit.sipfakes import FakeClock


def test_run_due_runs_only_due_callbacks_in_deadline_order() -> None:
    t = Timers()
    ran: list[str] = []
    t.call_at(3.0, ran.append, "c")
    t.call_at(1.0, ran.append, "a")
    t.call_at(2.0, ran.append, "b")
    assert t.run_due(0.99) == 0
    assert ran == []
    assert t.run_due(2.0) == 2
    assert ran == ["a", "b"]
    assert t.next_deadline() == 3.0
    assert len(t) == 1


def test_cancelled_timer_never_runs_and_is_skipped_by_next_deadline() -> None:
    t = Timers()
    ran: list[int] = []
    h1 = t.call_at(1.0, ran.append, 1)
    t.call_at(2.0, ran.append, 2)
    h1.cancel()
    assert t.next_deadline() == 2.0
    assert len(t) == 1
    assert t.run_due(10.0) == 1
    assert ran == [2]
    assert t.next_deadline() is None


def test_cancel_after_firing_is_harmless() -> None:
    t = Timers()
    ran: list[int] = []
    h = t.call_at(1.0, ran.append, 1)
    t.run_due(1.0)
    h.cancel()
    assert ran == [1]
    assert len(t) == 0


def test_callback_scheduling_an_already_due_timer_runs_it_in_the_same_pass() -> None:
    t = Timers()
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        t.call_at(0.5, ran.append, "second")  # due already: now is 1.0

    t.call_at(1.0, first)
    assert t.run_due(1.0) == 2
    assert ran == ["first", "second"]


def test_on_earlier_reports_only_a_new_earliest_deadline() -> None:
    t = Timers()
    seen: list[float] = []
    t.on_earlier = seen.append
    t.call_at(5.0, lambda: None)
    t.call_at(7.0, lambda: None)
    t.call_at(3.0, lambda: None)
    t.call_at(3.0, lambda: None)  # not earlier than 3.0
    assert seen == [5.0, 3.0]


def test_fake_clock_stops_at_each_deadline() -> None:
    t = Timers()
    clock = FakeClock(t)
    at: list[float] = []

    def tick() -> None:
        at.append(clock.now)
        if clock.now < 4:
            t.call_at(clock.now + 1.5, tick)

    t.call_at(1.0, tick)
    clock.advance_to(10.0)
    assert at == [1.0, 2.5, 4.0]
    assert clock.now == 10.0


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 20), st.booleans()), max_size=40),
       st.lists(st.integers(0, 25), max_size=10))
def test_run_due_matches_a_sorted_list_model(
    entries: list[tuple[int, bool]], checkpoints: list[int]
) -> None:
    """Every live callback runs exactly once, when due, in (deadline, scheduling) order."""
    t = Timers()
    ran: list[int] = []
    handles = [t.call_at(float(when), ran.append, i) for i, (when, _) in enumerate(entries)]
    for h, (_, cancel) in zip(handles, entries, strict=True):
        if cancel:
            h.cancel()
    live = sorted(
        (when, i) for i, (when, cancel) in enumerate(entries) if not cancel
    )
    done = 0
    for now in [*sorted(checkpoints), 100]:
        count = t.run_due(float(now))
        expected = [i for when, i in live if when <= now][done:]
        assert ran[done:] == expected
        assert count == len(expected)
        done += count
    assert len(t) == 0


class TimersMachine(RuleBasedStateMachine):
    """Interleaved scheduling, cancelling and running against a model."""

    def __init__(self) -> None:
        super().__init__()
        self.t = Timers()
        self.now = 0.0
        self.model: dict[int, tuple[float, int]] = {}  # live id -> (when, seq)
        self.handles: dict[int, Any] = {}
        self.ran: list[int] = []
        self.seq = 0

    @rule(delay=st.integers(0, 10))
    def schedule(self, delay: int) -> None:
        self.seq += 1
        when = self.now + delay
        self.handles[self.seq] = self.t.call_at(when, self.ran.append, self.seq)
        self.model[self.seq] = (when, self.seq)

    @precondition(lambda self: bool(self.handles))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.handles)))
        self.handles[key].cancel()
        self.model.pop(key, None)

    @rule(step=st.integers(0, 6))
    def run(self, step: int) -> None:
        self.now += step
        due = sorted(v for v in self.model.values() if v[0] <= self.now)
        before = len(self.ran)
        self.t.run_due(self.now)
        assert self.ran[before:] == [seq for _, seq in due]
        for _, seq in due:
            del self.model[seq]

    @invariant()
    def next_deadline_is_the_earliest_live_one(self) -> None:
        expected = min((w for w, _ in self.model.values()), default=None)
        assert self.t.next_deadline() == expected
        assert len(self.t) == len(self.model)


TestTimersMachine = TimersMachine.TestCase
