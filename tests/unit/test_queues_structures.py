"""The orders callers are kept in (Bucket heaps with lazy removal, the Line's Fenwick-indexed
positions) against a sorted-list model, and settings validation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from queues import AgentSettings, Member, QueueSettings
from queues.callers import Bucket, Caller, Line
from queues.deadlines import Deadlines


class LineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.line = Line()
        self.bucket = Bucket()
        self.present: list[Caller] = []  # in the line
        self.in_bucket: set[str] = set()
        self.seq = 0

    def order(self) -> list[Caller]:
        return sorted(self.present, key=lambda c: (-c.priority, c.seq))

    @rule(priority=st.integers(0, 3), n=st.integers(1, 40))
    def arrive(self, priority: int, n: int) -> None:
        for _ in range(n):
            c = Caller(f"c{self.seq}", "q", priority, (), None, float(self.seq), self.seq)
            self.seq += 1
            self.line.add(c)
            self.bucket.push(c)
            self.present.append(c)
            self.in_bucket.add(c.id)

    @precondition(lambda self: self.present)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from(self.present))
        self.present.remove(c)
        self.line.remove(c)
        self.bucket.remove(c)
        self.in_bucket.discard(c.id)

    @precondition(lambda self: self.in_bucket)
    @rule()
    def take_head(self) -> None:
        head = self.bucket.peek()
        assert head is not None
        self.bucket.remove(head)
        self.in_bucket.discard(head.id)

    @precondition(lambda self: self.present)
    @rule(data=st.data())
    def back_to_bucket(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from(self.present))
        if c.id not in self.in_bucket:
            self.bucket.push(c)
            self.in_bucket.add(c.id)

    @invariant()
    def positions_match(self) -> None:
        assert len(self.line) == len(self.present)
        for i, c in enumerate(self.order(), 1):
            assert self.line.position(c) == i

    @invariant()
    def bucket_head_is_first_waiting(self) -> None:
        waiting = [c for c in self.order() if c.id in self.in_bucket]
        assert len(self.bucket) == len(waiting)
        assert self.bucket.peek() is (waiting[0] if waiting else None)


TestLine = LineMachine.TestCase
TestLine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


@given(st.lists(st.integers(0, 2), min_size=1, max_size=300))
def test_positions_after_many_appends_and_removals(prios: list[int]) -> None:
    line = Line()
    cs = [Caller(f"c{i}", "q", p, (), None, 0.0, i) for i, p in enumerate(prios)]
    for c in cs:
        line.add(c)
    kept = cs[::3]
    for c in cs:
        if c not in kept:
            line.remove(c)
    order = sorted(kept, key=lambda c: (-c.priority, c.seq))
    assert [line.position(c) for c in order] == list(range(1, len(order) + 1))


@pytest.mark.parametrize("kw", [
    {"ring_timeout": 0}, {"retry_delay": -1}, {"priority": 0}, {"max_len": -1},
    {"join_empty": "sometimes"}, {"members": (Member("a"), Member("a"))},
    {"handle_time_samples": 0}, {"name": ""},
])
def test_queue_settings_refuse_bad_values(kw: dict[str, object]) -> None:
    args: dict[str, object] = {"name": "q", **kw}
    with pytest.raises(ValueError):
        QueueSettings(**args)  # type: ignore[arg-type]


def test_member_and_agent_settings_validation_and_immutability() -> None:
    with pytest.raises(ValueError):
        Member("a", penalty=-1)
    with pytest.raises(ValueError):
        Member("a", weight=0)
    with pytest.raises(ValueError):
        Member("a", skills={"x": -1})
    with pytest.raises(ValueError):
        AgentSettings("a", wrapup_time=-1)
    skills = {"en": 5.0}
    m = Member("a", skills=skills)
    skills["en"] = 0.0
    assert m.skills["en"] == 5.0
    with pytest.raises(TypeError):
        m.skills["en"] = 1.0  # type: ignore[index]
    assert AgentSettings("a", ("d1", "d2", "d1")).devices == ("d1", "d2")


@given(st.lists(st.tuples(st.integers(0, 20), st.booleans()), max_size=3000))
def test_deadlines_run_in_order_and_skip_cancelled(plan: list[tuple[int, bool]]) -> None:
    dl = Deadlines()
    ran: list[tuple[int, int]] = []
    entries = [dl.call_at(float(when), ran.append, (when, i)) for i, (when, _) in enumerate(plan)]
    for entry, (_, cancel) in zip(entries, plan, strict=True):
        if cancel:
            dl.cancel(entry)
    kept = [(when, i) for i, (when, cancel) in enumerate(plan) if not cancel]
    assert len(dl) == len(kept)
    assert dl.next_deadline() == (min(kept)[0] if kept else None)
    assert dl.run_due(10.0) == sum(1 for w, _ in kept if w <= 10)
    assert dl.run_due(100.0) == sum(1 for w, _ in kept if w > 10)
    assert ran == sorted(kept)  # deadline order, scheduling order among equals
    for entry in entries:
        dl.cancel(entry)  # cancelling what already fired or was cancelled changes nothing
    assert len(dl) == 0 and dl.next_deadline() is None
