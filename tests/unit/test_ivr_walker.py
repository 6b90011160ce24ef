"""Tests of ivr.walker: menu, collect and routing semantics on fake time, and a Hypothesis
state machine over random trees, digits, prompt ends and timeouts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ivr.model import (
    DTMF,
    BackNode,
    CollectNode,
    ExtensionNode,
    GotoNode,
    HangupNode,
    IvrNode,
    IvrTree,
    MenuNode,
    PlayNode,
    QueueNode,
    TimeConditionNode,
    TopNode,
    VoicemailNode,
)
from ivr.validate import validate_tree
from ivr.walker import (
    Action,
    Hangup,
    IvrWalker,
    PlayPrompt,
    Publish,
    RouteToExtension,
    RouteToQueue,
    RouteToVoicemail,
    SetVariable,
    StartTimer,
    StopPrompt,
)

FINALS = (RouteToQueue, RouteToExtension, RouteToVoicemail, Hangup)


def demo_tree() -> IvrTree:
    """The demo configuration's main tree."""
    return IvrTree("main", "welcome", {
        "welcome": MenuNode("welcome", {"1": "sales", "2": "support", "9": "operator"},
                            timeout=5, max_timeouts=2, max_invalid=3, invalid_prompt="invalid",
                            on_timeout="sales", on_invalid="goodbye"),
        "sales": QueueNode("sales"),
        "support": QueueNode("support"),
        "operator": ExtensionNode("1003"),
        "goodbye": HangupNode("goodbye"),
    })


def plain(actions: list[Action]) -> list[Action]:
    """The actions without the published events."""
    return [a for a in actions if not isinstance(a, Publish)]


def events(actions: list[Action]) -> list[tuple[str, dict[str, object]]]:
    return [(a.type, a.data) for a in actions if isinstance(a, Publish)]


# -- menus --------------------------------------------------------------------------------


def test_menu_plays_then_waits_and_a_choice_routes() -> None:
    w = IvrWalker(demo_tree())
    out = w.start(100.0)
    assert events(out) == [("ivr.entered", {"tree": "main", "node": "welcome",
                                            "kind": "menu"})]
    assert plain(out) == [PlayPrompt("welcome", True)]
    assert w.next_deadline() is None and not w.waiting_for_input
    assert w.prompt_finished(103.0) == [StartTimer(108.0)]
    assert w.waiting_for_input
    out = w.digit("2", 104.0)
    assert plain(out) == [RouteToQueue("support")]
    assert events(out) == [
        ("ivr.digit", {"tree": "main", "node": "welcome", "digit": "2"}),
        ("ivr.entered", {"tree": "main", "node": "support", "kind": "queue"}),
        ("ivr.exit", {"tree": "main", "node": "support", "reason": "queue",
                      "destination": "support"}),
    ]
    assert w.done and w.result == RouteToQueue("support") and w.exit_reason == "queue"
    assert w.digit("1", 105.0) == [] and w.timer(200.0) == [] and w.next_deadline() is None


def test_digit_during_prompt_barges_in() -> None:
    w = IvrWalker(demo_tree())
    w.start(0.0)
    assert plain(w.digit("9", 1.0)) == [StopPrompt(), RouteToExtension("1003")]


def test_timeouts_replay_then_take_on_timeout() -> None:
    w = IvrWalker(demo_tree())
    w.start(0.0)
    w.prompt_finished(2.0)
    assert w.timer(6.9) == []  # early: nothing happens
    assert plain(w.timer(7.0)) == [PlayPrompt("welcome", True)]  # timeout 1 of 2
    assert w.next_deadline() is None
    assert w.prompt_finished(9.0) == [StartTimer(14.0)]
    assert plain(w.timer(14.0)) == [RouteToQueue("sales")]  # max_timeouts reached
    assert w.exit_reason == "queue"


def test_timeout_prompt_plays_before_the_replay() -> None:
    tree = IvrTree("t", "m", {"m": MenuNode("menu", {"1": "q"}, timeout=1, max_timeouts=2,
                                            timeout_prompt="hello?"),
                              "q": QueueNode("q")})
    w = IvrWalker(tree)
    w.start(0.0)
    w.prompt_finished(1.0)
    assert plain(w.timer(2.0)) == [PlayPrompt("hello?", True)]
    assert plain(w.prompt_finished(3.0)) == [PlayPrompt("menu", True)]
    assert w.prompt_finished(4.0) == [StartTimer(5.0)]
    out = w.timer(5.0)
    assert plain(out) == [Hangup(None)]  # no on_timeout: hang up
    assert events(out)[-1] == ("ivr.exit", {"tree": "t", "node": "m", "reason": "timeout",
                                            "destination": None})


def test_invalid_digits_play_the_invalid_prompt_then_take_on_invalid() -> None:
    w = IvrWalker(demo_tree())
    w.start(0.0)
    w.prompt_finished(1.0)
    assert plain(w.digit("5", 2.0)) == [PlayPrompt("invalid", True)]
    assert plain(w.prompt_finished(3.0)) == [PlayPrompt("welcome", True)]
    # a wrong key barges into the replay: invalid number 2
    assert plain(w.digit("7", 4.0)) == [StopPrompt(), PlayPrompt("invalid", True)]
    assert plain(w.digit("#", 4.5)) == [StopPrompt(), Hangup("goodbye")]  # 3 of 3
    assert w.exit_reason == "hangup"


def test_invalid_and_timeout_counts_are_separate() -> None:
    w = IvrWalker(demo_tree())
    w.start(0.0)
    w.prompt_finished(0.0)
    w.digit("5", 1.0)  # invalid 1
    w.prompt_finished(2.0)
    w.prompt_finished(3.0)
    w.timer(8.0)  # timeout 1
    w.prompt_finished(9.0)
    assert plain(w.digit("5", 10.0)) == [PlayPrompt("invalid", True)]  # invalid 2, not 3
    assert not w.done


def test_without_barge_in_digits_during_the_prompt_are_ignored() -> None:
    tree = IvrTree("t", "m", {"m": MenuNode("menu", {"1": "q"}, barge_in=False),
                              "q": QueueNode("q")})
    w = IvrWalker(tree)
    assert plain(w.start(0.0)) == [PlayPrompt("menu", False)]
    assert plain(w.digit("1", 1.0)) == []
    assert events(w.digit("1", 1.0))[0][0] == "ivr.digit"
    w.prompt_finished(2.0)
    assert plain(w.digit("1", 3.0)) == [RouteToQueue("q")]


# -- typeahead ----------------------------------------------------------------------------


def typeahead_tree(barge_in: bool) -> IvrTree:
    return IvrTree("t", "hello", {
        "hello": PlayNode("recorded", "m"),
        "m": MenuNode("menu", {"1": "q1", "2": "q2"}, barge_in=barge_in),
        "q1": QueueNode("one"), "q2": QueueNode("two"),
    })


def test_digits_during_a_play_node_are_typeahead_for_a_barge_in_menu() -> None:
    w = IvrWalker(typeahead_tree(barge_in=True))
    assert plain(w.start(0.0)) == [PlayPrompt("recorded", False)]
    assert plain(w.digit("2", 1.0)) == []  # the announcement goes on
    assert w.playing == "recorded"
    out = w.prompt_finished(3.0)
    assert plain(out) == [RouteToQueue("two")]  # the menu never played its prompt
    assert [d["node"] for t, d in events(out) if t == "ivr.entered"] == ["m", "q2"]


def test_typeahead_is_dropped_for_a_menu_without_barge_in() -> None:
    w = IvrWalker(typeahead_tree(barge_in=False))
    w.start(0.0)
    w.digit("2", 1.0)
    assert plain(w.prompt_finished(3.0)) == [PlayPrompt("menu", False)]
    w.prompt_finished(4.0)
    assert plain(w.digit("1", 5.0)) == [RouteToQueue("one")]


def test_typeahead_feeds_one_menu_after_another() -> None:
    tree = IvrTree("t", "hello", {
        "hello": PlayNode("recorded", "m1"),
        "m1": MenuNode("one", {"3": "m2"}),
        "m2": MenuNode("two", {"4": "q"}),
        "q": QueueNode("q"),
    })
    w = IvrWalker(tree)
    w.start(0.0)
    w.digit("3", 0.5)
    w.digit("4", 0.6)
    assert plain(w.prompt_finished(1.0)) == [RouteToQueue("q")]


def test_typeahead_past_an_invalid_key_is_dropped() -> None:
    w = IvrWalker(typeahead_tree(barge_in=True))
    w.start(0.0)
    w.digit("7", 0.5)
    w.digit("1", 0.6)
    assert plain(w.prompt_finished(1.0)) == [PlayPrompt("menu", True)]
    w.prompt_finished(2.0)
    assert w.waiting_for_input and not w.done


# -- collect ------------------------------------------------------------------------------


def collect_tree(**kw: object) -> IvrTree:
    settings_ = {"min_digits": 2, "max_digits": 4, "timeout": 5.0,
                 "inter_digit_timeout": 2.0, "on_timeout": "bye", **kw}
    return IvrTree("t", "c", {
        "c": CollectNode("enter", "account", "q", **settings_),  # type: ignore[arg-type]
        "q": QueueNode("q"), "bye": HangupNode("goodbye"),
    })


def test_collect_ends_on_the_terminator_and_stores_the_variable() -> None:
    w = IvrWalker(collect_tree())
    w.start(0.0)
    assert w.prompt_finished(1.0) == [StartTimer(6.0)]
    assert plain(w.digit("4", 2.0)) == [StartTimer(4.0)]
    assert w.next_deadline() == 4.0 and w.collected == "4"
    w.digit("2", 3.0)
    assert plain(w.digit("#", 3.5)) == [SetVariable("account", "42"), RouteToQueue("q")]
    assert w.variables == {"account": "42"}


def test_collect_ends_at_max_digits_and_barges_in() -> None:
    w = IvrWalker(collect_tree())
    w.start(0.0)
    assert plain(w.digit("1", 0.5)) == [StopPrompt(), StartTimer(2.5)]
    for d in "23":
        w.digit(d, 1.0)
    assert plain(w.digit("4", 1.5)) == [SetVariable("account", "1234"), RouteToQueue("q")]


def test_collect_inter_digit_timeout_completes_or_fails() -> None:
    w = IvrWalker(collect_tree())
    w.start(0.0)
    w.prompt_finished(1.0)
    w.digit("1", 2.0)
    w.digit("2", 3.0)
    assert plain(w.timer(5.0)) == [SetVariable("account", "12"), RouteToQueue("q")]

    w = IvrWalker(collect_tree())
    w.start(0.0)
    w.prompt_finished(1.0)
    w.digit("1", 2.0)
    out = w.timer(4.0)  # one digit is fewer than min_digits
    assert plain(out) == [Hangup("goodbye")] and w.variables == {}


def test_collect_first_digit_timeout_takes_on_timeout() -> None:
    w = IvrWalker(collect_tree())
    w.start(0.0)
    w.prompt_finished(1.0)
    assert plain(w.timer(6.0)) == [Hangup("goodbye")]


def test_collect_takes_typeahead_and_keeps_the_rest() -> None:
    tree = IvrTree("t", "p", {
        "p": PlayNode("recorded", "c"),
        "c": CollectNode("enter", "pin", "m", min_digits=2, max_digits=2),
        "m": MenuNode("menu", {"9": "q"}),
        "q": QueueNode("q"),
    })
    w = IvrWalker(tree)
    w.start(0.0)
    for d in "129":
        w.digit(d, 0.5)
    assert plain(w.prompt_finished(1.0)) == [SetVariable("pin", "12"), RouteToQueue("q")]


# -- moving around ------------------------------------------------------------------------


def nav_tree() -> IvrTree:
    return IvrTree("t", "main", {
        "main": MenuNode("main", {"1": "sub", "0": "q"}),
        "sub": MenuNode("sub", {"1": "subsub", "*": "back", "0": "top"}),
        "subsub": MenuNode("subsub", {"*": "back", "0": "top", "5": "info"}),
        "info": PlayNode("info", "back"),
        "back": BackNode(),
        "top": TopNode(),
        "q": QueueNode("q"),
    })


def entered(out: list[Action]) -> list[object]:
    return [d["node"] for t, d in events(out) if t == "ivr.entered"]


def test_back_returns_to_the_previous_menu_and_top_to_the_start() -> None:
    w = IvrWalker(nav_tree())
    w.start(0.0)
    assert entered(w.digit("1", 1.0)) == ["sub"]
    assert entered(w.digit("1", 2.0)) == ["subsub"]
    assert entered(w.digit("*", 3.0)) == ["back", "sub"]
    assert entered(w.digit("*", 4.0)) == ["back", "main"]
    w.digit("1", 5.0)
    w.digit("1", 6.0)
    assert entered(w.digit("0", 7.0)) == ["top", "main"]
    assert entered(w.digit("1", 8.0)) == ["sub"]
    assert entered(w.digit("*", 9.0)) == ["back", "main"]


def test_back_after_a_play_returns_to_the_menu_before_the_current_one() -> None:
    w = IvrWalker(nav_tree())
    w.start(0.0)
    w.digit("1", 1.0)
    w.digit("1", 2.0)
    w.digit("5", 3.0)  # subsub -> info (play) -> back
    assert entered(w.prompt_finished(4.0)) == ["back", "sub"]


def test_back_at_the_first_menu_goes_to_the_start() -> None:
    w = IvrWalker(nav_tree(), start_node="sub")
    w.start(0.0)
    assert entered(w.digit("*", 1.0)) == ["back", "sub"]


def test_start_node_can_be_chosen() -> None:
    w = IvrWalker(nav_tree(), start_node="q")
    assert plain(w.start(0.0)) == [RouteToQueue("q")]


class Clock:
    """Open during even minutes (UTC)."""

    def is_open(self, at: datetime) -> bool:
        assert at.tzinfo is not None
        return at.minute % 2 == 0


def time_tree() -> IvrTree:
    return IvrTree("t", "tc", {
        "tc": TimeConditionNode("office", "m", "closed"),
        "m": MenuNode("menu", {"1": "tc2"}),
        "tc2": TimeConditionNode("office", "q", "closed"),
        "q": QueueNode("q"),
        "closed": HangupNode("closed"),
    })


def test_time_condition_uses_wall_time_derived_from_now() -> None:
    at = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)  # an even minute: open
    w = IvrWalker(time_tree(), schedules={"office": Clock()})
    assert entered(w.start(1000.0, at)) == ["tc", "m"]
    w.prompt_finished(1010.0)
    # 60 s later on the monotonic clock is 09:01:30: closed
    assert plain(w.digit("1", 1060.0)) == [Hangup("closed")]


def test_time_condition_needs_a_wall_time_and_the_schedule() -> None:
    with pytest.raises(ValueError, match="wall time"):
        IvrWalker(time_tree(), schedules={"office": Clock()}).start(0.0)
    with pytest.raises(ValueError, match="aware"):
        IvrWalker(time_tree()).start(0.0, datetime(2026, 1, 1))
    w = IvrWalker(time_tree())
    out = w.start(0.0, datetime(2026, 1, 1, tzinfo=UTC))
    assert plain(out) == [Hangup(None)] and w.exit_reason == "error"


def test_voicemail_extension_and_hangup_end_the_walk() -> None:
    for node, action in ((VoicemailNode("100"), RouteToVoicemail("100")),
                         (ExtensionNode("1003"), RouteToExtension("1003")),
                         (HangupNode(), Hangup(None))):
        w = IvrWalker(IvrTree("t", "n", {"n": node}))
        assert plain(w.start(0.0)) == [action]
        assert w.result == action


def test_unknown_node_hangs_up_with_reason_error() -> None:
    w = IvrWalker(IvrTree("t", "g", {"g": GotoNode("nowhere")}))
    out = w.start(0.0)
    assert plain(out) == [Hangup(None)]
    assert events(out)[-1][1]["reason"] == "error"


def test_a_loop_a_silent_caller_cannot_leave_ends_with_reason_loop() -> None:
    tree = IvrTree("t", "m", {"m": MenuNode("menu", {"1": "q"}, max_timeouts=1,
                                            on_timeout="again"),
                              "again": GotoNode("m"), "q": QueueNode("q")})
    w = IvrWalker(tree)
    w.start(0.0)
    w.prompt_finished(1.0)
    out = w.timer(6.0)
    assert plain(out) == [Hangup(None)] and w.exit_reason == "loop"

    w = IvrWalker(tree)  # a digit in between shows someone is there: no loop
    w.start(0.0)
    w.prompt_finished(1.0)
    w.digit("5", 2.0)
    w.prompt_finished(3.0)
    assert entered(w.timer(8.0)) == ["again", "m"] and not w.done


def test_a_silent_cycle_without_prompts_ends_at_once() -> None:
    w = IvrWalker(IvrTree("t", "a", {"a": GotoNode("b"), "b": TopNode()}))
    assert plain(w.start(0.0)) == [Hangup(None)] and w.exit_reason == "loop"


def test_bad_inputs() -> None:
    w = IvrWalker(demo_tree())
    assert w.digit("1", 0.0) == [] and w.prompt_finished(0.0) == []  # before start
    w.start(0.0)
    with pytest.raises(ValueError, match="DTMF"):
        w.digit("x", 1.0)
    with pytest.raises(RuntimeError):
        w.start(1.0)
    assert w.prompt_finished(1.0) != [] and w.prompt_finished(1.5) == []  # none playing


# -- the state machine --------------------------------------------------------------------

NAMES = [f"n{i}" for i in range(6)]
REFS = st.sampled_from([*NAMES, "n0", "n1", "zz"])  # zz is never defined
OPT_REFS = st.none() | REFS
PROMPTS = st.sampled_from(["p1", "p2", "p3", ""])
OPT_PROMPTS = st.none() | PROMPTS
TIMES = st.sampled_from([0.5, 1.0, 3.0])
SCHEDULES = {"s": Clock()}

NODES: st.SearchStrategy[IvrNode] = st.one_of(
    st.builds(PlayNode, PROMPTS, REFS),
    st.builds(MenuNode, PROMPTS, st.dictionaries(st.sampled_from(DTMF), REFS, max_size=4),
              timeout=TIMES, max_timeouts=st.integers(0, 3), max_invalid=st.integers(0, 3),
              invalid_prompt=OPT_PROMPTS, timeout_prompt=OPT_PROMPTS, on_timeout=OPT_REFS,
              on_invalid=OPT_REFS, barge_in=st.booleans()),
    st.builds(CollectNode, PROMPTS, st.just("v"), REFS, min_digits=st.integers(0, 3),
              max_digits=st.integers(0, 4), terminator=st.sampled_from(["#", "*", None]),
              timeout=TIMES, inter_digit_timeout=TIMES, on_timeout=OPT_REFS,
              barge_in=st.booleans()),
    st.builds(TimeConditionNode, st.sampled_from(["s", "s", "gone"]), REFS, REFS),
    st.builds(GotoNode, REFS),
    st.just(BackNode()), st.just(TopNode()),
    st.builds(QueueNode, st.just("q")), st.builds(ExtensionNode, st.just("1003")),
    st.builds(VoicemailNode, st.just("mb")), st.builds(HangupNode, OPT_PROMPTS),
)


@st.composite
def trees(draw: st.DrawFn) -> IvrTree:
    names = NAMES[: draw(st.integers(1, len(NAMES)))]
    return IvrTree("t", draw(st.sampled_from([*names, "n0"])),
                   {n: draw(NODES) for n in names})


class WalkerMachine(RuleBasedStateMachine):
    """The walker never crashes, never plays two prompts at once, ends with one final
    action (then only its exit event) or keeps waiting, and a caller who presses nothing is
    eventually released."""

    @initialize(tree=trees())
    def begin(self, tree: IvrTree) -> None:
        self.now = 0.0
        self.walker = IvrWalker(tree, schedules=SCHEDULES)
        self.valid = not validate_tree(tree, schedules=SCHEDULES)
        self.playing: str | None = None
        self.finals: list[Action] = []
        self.variables: dict[str, str] = {}
        self.apply(self.walker.start(self.now, datetime(2026, 1, 1, tzinfo=UTC)))

    def apply(self, actions: list[Action]) -> None:
        for a in actions:
            if self.finals:
                assert isinstance(a, Publish) and a.type == "ivr.exit", actions
                assert a.data["reason"] != "error" or not self.valid, a
                continue
            if isinstance(a, PlayPrompt):
                assert self.playing is None, f"{a} while {self.playing} plays"
                assert a.name
                self.playing = a.name
            elif isinstance(a, StopPrompt):
                assert self.playing is not None
                self.playing = None
            elif isinstance(a, StartTimer):
                assert a.deadline >= self.now
            elif isinstance(a, SetVariable):
                self.variables[a.name] = a.value
            elif isinstance(a, FINALS):
                self.finals.append(a)

    @rule(digit=st.sampled_from(DTMF))
    def press(self, digit: str) -> None:
        was_done, node = self.walker.done, self.walker.node
        out = self.walker.digit(digit, self.now)
        assert (out == []) == was_done
        if not was_done:
            assert out[0] == Publish("ivr.digit", {"tree": "t", "node": node, "digit": digit})
        self.apply(out)

    @precondition(lambda self: self.playing is not None)
    @rule()
    def prompt_ends(self) -> None:
        self.playing = None
        self.apply(self.walker.prompt_finished(self.now))

    @precondition(lambda self: not self.walker.done and self.walker.next_deadline() is not None)
    @rule()
    def timer_fires(self) -> None:
        deadline = self.walker.next_deadline()
        assert deadline is not None
        self.now = max(self.now, deadline)
        self.apply(self.walker.timer(self.now))

    @rule(dt=st.sampled_from([0.1, 1.0, 30.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        deadline = self.walker.next_deadline()
        if deadline is None or self.now < deadline:
            assert self.walker.timer(self.now) == []

    @rule()
    def caller_stays_silent(self) -> None:
        for _ in range(10_000):
            if self.playing is not None:
                self.prompt_ends()
            elif self.walker.next_deadline() is not None:
                self.timer_fires()
            else:
                break
        assert self.walker.done

    @invariant()
    def ends_or_waits(self) -> None:
        w = self.walker
        assert w.playing == self.playing
        if w.done:
            assert self.finals == [w.result] and self.playing is None
            assert w.next_deadline() is None
        else:
            assert not self.finals
            assert (self.playing is None) != (w.next_deadline() is None), \
                "waits for exactly one thing: a prompt's end or a timer"
        assert w.variables == self.variables


WalkerMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_walker_state_machine = WalkerMachine.TestCase


def test_wall_time_offset_example() -> None:
    """The derived wall time is start time plus elapsed monotonic time (no clock read)."""
    seen: list[datetime] = []

    class Spy:
        def is_open(self, at: datetime) -> bool:
            seen.append(at)
            return True

    tree = IvrTree("t", "m", {"m": MenuNode("menu", {"1": "tc"}),
                              "tc": TimeConditionNode("s", "q", "q"), "q": QueueNode("q")})
    w = IvrWalker(tree, schedules={"s": Spy()})
    t0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
    w.start(50.0, t0)
    w.digit("1", 95.5)
    assert seen == [t0 + timedelta(seconds=45.5)]
