"""Static checks of an IVR tree, before any call walks it.

Owns: the rules a tree must pass (known node, prompt and schedule names; every node
reachable from the start; no cycle through nodes that never wait for a digit; node settings
the walker relies on) and TreeProblem, which names the tree, node and field so a loader can
point at the line it read them from.
"""

from __future__ import annotations

import difflib
import re
from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from ivr.model import (
    DTMF,
    BackNode,
    CollectNode,
    IvrNode,
    IvrTree,
    MenuNode,
    TimeConditionNode,
    TopNode,
    node_refs,
    prompt_refs,
    waits_for_input,
)

__all__ = ["TreeProblem", "successors", "validate_tree"]

VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TERMINATORS = "#*"


@dataclass(frozen=True, slots=True)
class TreeProblem:
    """node None: the tree itself (its start); field None: the node as a whole."""

    tree: str
    node: str | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = ".".join(p for p in (self.tree, self.node, self.field) if p)
        return f"ivr {where}: {self.reason}"


def successors(tree: IvrTree, node: IvrNode) -> Iterator[str]:
    """Names a node may lead to. Back and top may lead to the start node (back otherwise
    returns to a menu already visited, which adds nothing to reachability)."""
    for _, target in node_refs(node):
        yield target
    if isinstance(node, BackNode | TopNode):
        yield tree.start


def _unknown(what: str, name: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"unknown {what} {name!r}" + (f", did you mean {close[0]!r}?" if close else "")


def validate_tree(tree: IvrTree, *, prompts: Collection[str] | None = None,
                  schedules: Collection[str] | None = None) -> list[TreeProblem]:
    """Every problem in `tree`, in node order. prompts / schedules: the names defined
    elsewhere; None skips that check."""
    out: list[TreeProblem] = []

    def add(node: str | None, fld: str | None, reason: str) -> None:
        out.append(TreeProblem(tree.name, node, fld, reason))

    if not tree.nodes:
        add(None, "nodes", "must have at least one node")
    elif tree.start not in tree.nodes:
        add(None, "start", _unknown("node", tree.start, tree.nodes))
    for name, node in tree.nodes.items():
        for fld, target in node_refs(node):
            if target not in tree.nodes:
                add(name, fld, _unknown("node", target, tree.nodes))
        for fld, prompt in prompt_refs(node):
            if not prompt:
                add(name, fld, "missing prompt name")
            elif prompts is not None and prompt not in prompts:
                add(name, fld, _unknown("prompt", prompt, prompts))
        if (isinstance(node, TimeConditionNode) and schedules is not None
                and node.schedule not in schedules):
            add(name, "schedule", _unknown("schedule", node.schedule, schedules))
        for setting, reason in _settings(node):
            add(name, setting, reason)
    if tree.start in tree.nodes:
        reached = _reachable(tree)
        for name in tree.nodes:
            if name not in reached:
                add(name, None, f"is unreachable from the start node {tree.start!r}")
    for cycle in _silent_cycles(tree):
        add(cycle[0], None, "loops without waiting for input: " + " -> ".join(cycle))
    return out


def _settings(node: IvrNode) -> Iterator[tuple[str | None, str]]:
    if isinstance(node, MenuNode):
        if not node.choices:
            yield "choices", "must have at least one choice"
        for digit in node.choices:
            if len(digit) != 1 or digit not in DTMF:
                yield f"choices.{digit}", f"must be one key of {DTMF}, got {digit!r}"
        if not node.timeout > 0:
            yield "timeout", f"must be > 0, got {node.timeout:g}"
        if node.max_timeouts < 1:
            yield "max_timeouts", f"must be >= 1, got {node.max_timeouts}"
        if node.max_invalid < 1:
            yield "max_invalid", f"must be >= 1, got {node.max_invalid}"
    elif isinstance(node, CollectNode):
        if not VARIABLE.fullmatch(node.variable):
            yield "variable", f"must be a name (letters, digits, '_'), got {node.variable!r}"
        if node.min_digits < 1:
            yield "min_digits", f"must be >= 1, got {node.min_digits}"
        elif node.max_digits < node.min_digits:
            yield "max_digits", (f"must be >= min_digits ({node.min_digits}), "
                                 f"got {node.max_digits}")
        if node.terminator is not None and node.terminator not in TERMINATORS:
            yield "terminator", f"must be # or *, got {node.terminator!r}"
        for fld, value in (("timeout", node.timeout),
                           ("inter_digit_timeout", node.inter_digit_timeout)):
            if not value > 0:
                yield fld, f"must be > 0, got {value:g}"


def _reachable(tree: IvrTree) -> set[str]:
    seen = {tree.start}
    todo = deque([tree.start])
    while todo:
        node = tree.nodes.get(todo.popleft())
        if node is None:
            continue
        for target in successors(tree, node):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _silent_cycles(tree: IvrTree) -> list[list[str]]:
    """Cycles through nodes that never wait for a digit, each reported once, starting at
    its first node in tree order (e.g. ["a", "b", "a"])."""
    silent = {name for name, node in tree.nodes.items()
              if not waits_for_input(node) and any(True for _ in successors(tree, node))}
    found: list[list[str]] = []
    covered: set[str] = set()
    for name in tree.nodes:
        if name not in silent or name in covered:
            continue
        path = _path_back(tree, name, silent)
        if path is not None:
            found.append(path)
            covered.update(path)
    return found


def _path_back(tree: IvrTree, origin: str, silent: set[str]) -> list[str] | None:
    """The shortest path origin -> ... -> origin through silent nodes, if any."""
    parent: dict[str, str] = {}
    todo = deque([origin])
    while todo:
        current = todo.popleft()
        for target in successors(tree, tree.nodes[current]):
            if target == origin:
                path = [current]
                while path[-1] != origin:
                    path.append(parent[path[-1]])
                return [*reversed(path), origin]
            if target in silent and target not in parent:
                parent[target] = current
                todo.append(target)
    return None
