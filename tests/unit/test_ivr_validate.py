"""Tests of ivr.validate: each rule's problem (tree, node, field, reason), and that random
trees never make validation crash."""

from __future__ import annotations

from hypothesis import given, settings

from ivr.model import (
    BackNode,
    CollectNode,
    GotoNode,
    HangupNode,
    IvrTree,
    MenuNode,
    PlayNode,
    QueueNode,
    TimeConditionNode,
    TopNode,
)
from ivr.validate import TreeProblem, validate_tree
from tests.unit.test_ivr_walker import demo_tree, trees

PROMPTS = {"welcome", "invalid", "goodbye", "hello"}


def problems(tree: IvrTree, **kw: object) -> list[tuple[str | None, str | None, str]]:
    return [(p.node, p.field, p.reason)
            for p in validate_tree(tree, **kw)]  # type: ignore[arg-type]


def test_demo_tree_is_valid() -> None:
    assert validate_tree(demo_tree(), prompts=PROMPTS, schedules=()) == []


def test_unknown_references_name_the_field() -> None:
    tree = IvrTree("t", "welcome", {
        "welcome": MenuNode("welcome", {"1": "sale", "2": "q"}, on_timeout="gone"),
        "sales": QueueNode("s"),
        "q": QueueNode("q"),
    })
    assert problems(tree) == [
        ("welcome", "choices.1", "unknown node 'sale', did you mean 'sales'?"),
        ("welcome", "on_timeout", "unknown node 'gone'"),
        ("sales", None, "is unreachable from the start node 'welcome'"),
    ]


def test_unknown_start() -> None:
    tree = IvrTree("t", "wellcome", {"welcome": HangupNode()})
    assert problems(tree) == [(None, "start",
                               "unknown node 'wellcome', did you mean 'welcome'?")]
    assert problems(IvrTree("t", "a", {})) == [(None, "nodes", "must have at least one node")]


def test_prompts_and_schedules_must_be_defined() -> None:
    tree = IvrTree("t", "tc", {
        "tc": TimeConditionNode("ofice", "m", "bye"),
        "m": MenuNode("welcom", {"1": "bye"}, invalid_prompt="", timeout_prompt="nope"),
        "bye": HangupNode("goodby"),
    })
    assert problems(tree, prompts=PROMPTS, schedules={"office"}) == [
        ("tc", "schedule", "unknown schedule 'ofice', did you mean 'office'?"),
        ("m", "prompt", "unknown prompt 'welcom', did you mean 'welcome'?"),
        ("m", "invalid_prompt", "missing prompt name"),
        ("m", "timeout_prompt", "unknown prompt 'nope'"),
        ("bye", "prompt", "unknown prompt 'goodby', did you mean 'goodbye'?"),
    ]
    assert problems(tree) == [("m", "invalid_prompt", "missing prompt name")]  # no lists


def test_unreachable_nodes() -> None:
    tree = IvrTree("t", "a", {"a": PlayNode("hello", "b"), "b": HangupNode(),
                              "c": GotoNode("d"), "d": QueueNode("q")})
    assert problems(tree) == [("c", None, "is unreachable from the start node 'a'"),
                              ("d", None, "is unreachable from the start node 'a'")]


def test_top_and_back_reach_the_start_only() -> None:
    tree = IvrTree("t", "m", {"m": MenuNode("hello", {"1": "b", "2": "t"}),
                              "b": BackNode(), "t": TopNode()})
    assert problems(tree) == []


def test_loops_without_input() -> None:
    tree = IvrTree("t", "a", {
        "a": PlayNode("hello", "b"),
        "b": GotoNode("c"),
        "c": TimeConditionNode("s", "a", "m"),
        "m": MenuNode("hello", {"1": "m"}, on_timeout="m"),  # waits: not a silent loop
    })
    assert problems(tree) == [("a", None, "loops without waiting for input: a -> b -> c -> a")]


def test_self_loop_and_top_loop() -> None:
    tree = IvrTree("t", "a", {"a": GotoNode("a")})
    assert problems(tree) == [("a", None, "loops without waiting for input: a -> a")]
    tree = IvrTree("t", "p", {"p": PlayNode("hello", "t"), "t": TopNode()})
    assert problems(tree) == [("p", None, "loops without waiting for input: p -> t -> p")]
    tree = IvrTree("t", "p", {"p": PlayNode("hello", "b"), "b": BackNode()})
    assert problems(tree) == [("p", None, "loops without waiting for input: p -> b -> p")]


def test_two_separate_loops_are_both_reported() -> None:
    tree = IvrTree("t", "m", {"m": MenuNode("hello", {"1": "a", "2": "c"}),
                              "a": GotoNode("b"), "b": GotoNode("a"),
                              "c": GotoNode("c")})
    assert [r for _, _, r in problems(tree)] == [
        "loops without waiting for input: a -> b -> a",
        "loops without waiting for input: c -> c"]


def test_node_settings() -> None:
    tree = IvrTree("t", "m", {
        "m": MenuNode("hello", {"12": "c", "x": "c"}, timeout=0, max_timeouts=0,
                      max_invalid=0),
        "e": MenuNode("hello", {}),
        "c": CollectNode("hello", "1var", "m", min_digits=3, max_digits=2, terminator="5",
                         timeout=-1, inter_digit_timeout=0),
        "z": CollectNode("hello", "ok", "m", min_digits=0),
    })
    assert [(n, f, r) for n, f, r in problems(tree) if "unreachable" not in r] == [
        ("m", "choices.12", "must be one key of 0123456789*#, got '12'"),
        ("m", "choices.x", "must be one key of 0123456789*#, got 'x'"),
        ("m", "timeout", "must be > 0, got 0"),
        ("m", "max_timeouts", "must be >= 1, got 0"),
        ("m", "max_invalid", "must be >= 1, got 0"),
        ("e", "choices", "must have at least one choice"),
        ("c", "variable", "must be a name (letters, digits, '_'), got '1var'"),
        ("c", "max_digits", "must be >= min_digits (3), got 2"),
        ("c", "terminator", "must be # or *, got '5'"),
        ("c", "timeout", "must be > 0, got -1"),
        ("c", "inter_digit_timeout", "must be > 0, got 0"),
        ("z", "min_digits", "must be >= 1, got 0"),
    ]


def test_problem_text() -> None:
    assert str(TreeProblem("main", "m", "choices.1", "unknown node 'x'")) == (
        "ivr main.m.choices.1: unknown node 'x'")
    assert str(TreeProblem("main", None, "start", "r")) == "ivr main.start: r"


@settings(max_examples=300, deadline=None)
@given(trees())
def test_random_trees_validate_without_crashing(tree: IvrTree) -> None:
    found = validate_tree(tree, prompts={"p1", "p2"}, schedules={"s"})
    assert all(p.tree == "t" and p.reason for p in found)
    assert all(p.node is None or p.node in tree.nodes for p in found)
