"""Each strategy against its definition: direct calls on candidate lists (property-checked
against brute-force definitions), then through the distributor where memory or counters
matter (round_robin, longest_idle, fewest_calls, least_talk_time), and a user strategy."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from queues import Candidate, Context, Member, QueueSettings, Strategy, register, strategy_names
from queues.strategies import make_strategy
from tests.unit.test_queues_fakes import build, offer_of, offered

BUILTIN = {"ring_all", "ring_progressively", "linear", "round_robin", "longest_idle",
           "fewest_calls", "least_talk_time", "random", "weighted_random", "skills"}


def cand(agent: str, order: int, penalty: int = 0, weight: float = 1.0,
         skills: dict[str, float] | None = None, idle: float = 0.0, calls: int = 0,
         talk: float = 0.0) -> Candidate:
    return Candidate(agent, order, penalty, weight, skills or {}, idle, calls, talk)


def ctx(rnd: float = 0.0, wait: float = 0.0, required: tuple[tuple[str, float], ...] = (),
        tier_step: float = 10.0, order: dict[str, int] | None = None) -> Context:
    return Context(QueueSettings("q", tier_step=tier_step), 100.0, wait, required,
                   lambda: rnd, order or {})


def test_registry_holds_every_builtin() -> None:
    assert set(strategy_names()) >= BUILTIN
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("telepathy")


candidates_st = st.lists(
    st.builds(cand, agent=st.just(""), order=st.just(0), penalty=st.integers(0, 3),
              weight=st.floats(0.1, 10), skills=st.dictionaries(st.sampled_from("xyz"),
                                                                st.floats(0, 10), max_size=3),
              idle=st.floats(0, 100), calls=st.integers(0, 5), talk=st.floats(0, 100)),
    min_size=1, max_size=8,
).map(lambda cs: [Candidate(f"a{i}", i, c.penalty, c.weight, c.skills, c.idle_since, c.calls,
                            c.talk_time) for i, c in enumerate(cs)])


def low(cs: Sequence[Candidate]) -> list[Candidate]:
    m = min(c.penalty for c in cs)
    return [c for c in cs if c.penalty == m]


@given(candidates_st, st.permutations(range(8)))
def test_hunt_strategies_match_their_definitions(cs: list[Candidate], perm: list[int]) -> None:
    shuffled = [cs[i] for i in perm if i < len(cs)]  # input order must not matter
    tier = low(cs)
    assert make_strategy("linear").choose(shuffled, ctx()) == [min(tier, key=lambda c: c.order)]
    assert make_strategy("longest_idle").choose(shuffled, ctx()) == [
        min(tier, key=lambda c: (c.idle_since, c.order))]
    assert make_strategy("fewest_calls").choose(shuffled, ctx()) == [
        min(tier, key=lambda c: (c.calls, c.idle_since, c.order))]
    assert make_strategy("least_talk_time").choose(shuffled, ctx()) == [
        min(tier, key=lambda c: (c.talk_time, c.idle_since, c.order))]
    req = (("x", 0.0), ("y", 0.0))
    best = min(tier, key=lambda c: (-(c.skills.get("x", 0) + c.skills.get("y", 0)),
                                    c.idle_since, c.order))
    assert make_strategy("skills").choose(shuffled, ctx(required=req)) == [best]
    assert make_strategy("ring_all").choose(shuffled, ctx()) == sorted(tier,
                                                                        key=lambda c: c.order)


@given(candidates_st, st.floats(0, 0.9999))
def test_random_strategies_pick_in_lowest_tier_by_cumulative_weight(
        cs: list[Candidate], r: float) -> None:
    tier = sorted(low(cs), key=lambda c: c.order)
    assert make_strategy("random").choose(cs, ctx(r)) == [tier[int(r * len(tier))]]
    x = r * sum(c.weight for c in tier)
    expected = tier[-1]
    for c in tier:
        if x < c.weight:
            expected = c
            break
        x -= c.weight
    assert make_strategy("weighted_random").choose(cs, ctx(r)) == [expected]


def test_weighted_random_frequencies_follow_weights() -> None:
    members = (Member("a1", weight=1), Member("a2", weight=3))
    counts: Counter[str] = Counter()
    d = build(("a1", "a2"), members=members, strategy="weighted_random", seed=7)
    for i in range(4000):
        o = offer_of(d.caller_arrived("q", f"c{i}", float(i)).outputs)
        counts[o.agent] += 1
        d.caller_left(f"c{i}", float(i))
    assert 0.22 < counts["a1"] / 4000 < 0.28


def test_random_is_roughly_uniform() -> None:
    counts: Counter[str] = Counter()
    d = build(("a1", "a2", "a3"), strategy="random", seed=3)
    for i in range(3000):
        counts[offer_of(d.caller_arrived("q", f"c{i}", float(i)).outputs).agent] += 1
        d.caller_left(f"c{i}", float(i))
    assert all(900 < n < 1100 for n in counts.values()), counts


def test_ring_progressively_admits_by_wait() -> None:
    s = make_strategy("ring_progressively")
    q = QueueSettings("q", tier_step=10)
    assert [s.admits(p, 15.0, q) for p in (0, 1, 2)] == [True, True, False]
    assert s.next_widening(15.0, q, max_penalty=2) == 20.0
    assert s.next_widening(20.0, q, max_penalty=2) is None
    cs = [cand("a", 0, 0), cand("b", 1, 1), cand("c", 2, 2)]
    assert [c.agent for c in s.choose(cs, ctx(wait=10.0))] == ["a", "b"]
    assert [c.agent for c in s.choose(cs, ctx(wait=5.0, tier_step=0))] == ["a", "b", "c"]


def cycle(strategy: str, n: int, agents: Sequence[str] = ("a1", "a2", "a3"),
          **kw: object) -> list[str]:
    """Offer n callers one after another, each answered and hung up at once (no wrap-up)."""
    d = build(agents, strategy=strategy, **kw)  # type: ignore[arg-type]
    picks = []
    for i in range(n):
        o = offer_of(d.caller_arrived("q", f"c{i}", 10.0 * i).outputs)
        picks.append(o.agent)
        d.offer_answered(o.offer_id, 10.0 * i + 1)
        d.call_ended(o.agent, 10.0 * i + 2)
    return picks


def test_round_robin_remembers_last_agent() -> None:
    assert cycle("round_robin", 7) == ["a1", "a2", "a3", "a1", "a2", "a3", "a1"]


def test_round_robin_skips_busy_and_wraps() -> None:
    d = build(("a1", "a2", "a3"), strategy="round_robin")
    assert offered(d.caller_arrived("q", "c1", 0.0).outputs) == ["a1"]
    assert offered(d.caller_arrived("q", "c2", 0.0).outputs) == ["a2"]
    d.set_availability("a3", "lunch", 0.0)
    d.caller_left("c1", 1.0)
    # after a2 comes a3 (paused), then a1 again
    assert offered(d.caller_arrived("q", "c3", 2.0).outputs) == ["a1"]


def test_linear_always_starts_at_the_top() -> None:
    assert cycle("linear", 4) == ["a1", "a1", "a1", "a1"]


def test_longest_idle_orders_by_last_call_end() -> None:
    # all idle since login at 0; each call's end makes its agent the most recently idle
    assert cycle("longest_idle", 6) == ["a1", "a2", "a3", "a1", "a2", "a3"]
    d = build(("a1", "a2", "a3"), strategy="longest_idle")
    first = [offer_of(d.caller_arrived("q", f"c{i}", 1.0).outputs) for i in range(3)]
    for o in first:
        d.offer_answered(o.offer_id, 2.0)
    for o, end in sorted(zip(first, (30.0, 10.0, 20.0), strict=True), key=lambda x: x[1]):
        d.call_ended(o.agent, end)
    assert offered(d.caller_arrived("q", "x", 40.0).outputs) == ["a2"]
    assert offered(d.caller_arrived("q", "y", 40.0).outputs) == ["a3"]


def test_fewest_calls_and_reset_at_login() -> None:
    d = build(("a1", "a2"), strategy="fewest_calls")
    for i, agent in enumerate(("a1", "a1", "a2")):
        d.set_availability("a2" if agent == "a1" else "a1", "lunch", float(i))
        o = offer_of(d.caller_arrived("q", f"c{i}", float(i)).outputs, agent)
        d.offer_answered(o.offer_id, float(i))
        d.call_ended(agent, float(i))
        d.set_availability("a1", "available", float(i))
        d.set_availability("a2", "available", float(i))
    assert (d.agent("a1").calls, d.agent("a2").calls) == (2, 1)
    assert offered(d.caller_arrived("q", "n1", 10.0).outputs) == ["a2"]
    d.caller_left("n1", 11.0)
    d.set_availability("a1", "logged_out", 12.0)
    d.set_availability("a1", "available", 13.0)  # a new login starts from zero
    assert d.agent("a1").calls == 0
    assert offered(d.caller_arrived("q", "n2", 14.0).outputs) == ["a1"]


def test_least_talk_time() -> None:
    d = build(("a1", "a2"), strategy="least_talk_time")
    o1 = offer_of(d.caller_arrived("q", "c1", 0.0).outputs, "a1")
    o2 = offer_of(d.caller_arrived("q", "c2", 0.0).outputs, "a2")
    d.offer_answered(o1.offer_id, 1.0)
    d.offer_answered(o2.offer_id, 1.0)
    d.call_ended("a2", 100.0)
    d.call_ended("a1", 200.0)  # a1 talked longer, and became idle later
    assert offered(d.caller_arrived("q", "c3", 300.0).outputs) == ["a2"]


def test_skills_prefers_proficiency_then_longest_idle() -> None:
    members = (Member("a1", skills={"fr": 2}), Member("a2", skills={"fr": 9}),
               Member("a3", skills={"fr": 9}))
    d = build(("a1", "a2", "a3"), members=members, strategy="skills", logged_in=False)
    for t, a in ((3.0, "a1"), (2.0, "a3"), (5.0, "a2")):
        d.set_presence(f"dev-{a}", True, t)
        d.set_availability(a, "available", t)
    # a2 and a3 are equally good at French; a3 logged in (became idle) before a2
    assert offered(d.caller_arrived("q", "c1", 10.0, skills=["fr"]).outputs) == ["a3"]
    assert offered(d.caller_arrived("q", "c2", 10.0, skills=["fr"]).outputs) == ["a2"]


def test_user_strategy_by_name() -> None:
    @register
    class LastMember(Strategy):
        name = "test_last_member"

        def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
            return [max(candidates, key=lambda c: c.order)] if candidates else []

    assert "test_last_member" in strategy_names()
    assert cycle("test_last_member", 2) == ["a3", "a3"]
