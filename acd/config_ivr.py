"""The `ivr` configuration section: YAML trees read into ivr.model, checked by ivr.validate.

Owns: each node kind's keys and defaults as written in acd.yaml, and the mapping of
ivr.validate's TreeProblems (tree, node, field) back to the file lines they came from.
A node is one mapping with exactly one kind key, e.g. `sales: {queue: sales}` or
`welcome: {menu: {prompt: welcome, choices: {"1": sales}}}`; `back:` and `top:` take no
settings and `hangup:` an optional prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from yaml.nodes import MappingNode

from acd.config_calls import NAME, NAME_RULE, Refs, good_name, named, queue_name
from acd.yamlsource import Fields, Node
from ivr.model import (
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
from ivr.validate import TreeProblem, validate_tree

__all__ = ["KINDS", "ivr_trees"]

KINDS = ("play", "menu", "collect", "time_condition", "goto", "back", "top", "queue",
         "extension", "voicemail", "hangup")
_KEYS = {
    "play": ("prompt", "next"),
    "menu": ("prompt", "timeout", "max_timeouts", "max_invalid", "invalid_prompt",
             "timeout_prompt", "choices", "on_timeout", "on_invalid", "barge_in"),
    "collect": ("prompt", "min_digits", "max_digits", "terminator", "timeout",
                "inter_digit_timeout", "variable", "next", "on_timeout", "barge_in"),
    "time_condition": ("schedule", "match", "otherwise"),
    "hangup": ("prompt",),
    "back": (), "top": (),
}


class _Tree:
    """Where each node and setting of one tree was read, and which were already reported."""

    def __init__(self, node: Node, fields: Fields) -> None:
        self.node = node
        self.fields = fields
        self.nodes: dict[str, Node] = {}
        self.settings: dict[tuple[str, str], Node] = {}
        self.reported: set[tuple[str, str]] = set()
        self.broken: set[str] = set()

    def record(self, name: str, f: Fields, prefix: str = "") -> None:
        for key, child in f.children.items():
            self.settings[name, prefix + key] = child
        self.reported.update((name, prefix + key) for key in f.bad)

    def report(self, p: TreeProblem) -> None:
        if p.node is None:
            if p.field is not None and not self.fields.ok(p.field):
                return
            self.fields.blame(p.field or "").problem(p.reason)
        elif self.broken and p.field is None and "unreachable" in p.reason:
            return  # a node that could not be read leads nowhere: reachability is moot
        elif p.node not in self.broken and (p.node, p.field or "") not in self.reported:
            where = self.settings.get((p.node, p.field or "")) or self.nodes[p.node]
            where.problem(p.reason)


def ivr_trees(node: Node | None, refs: Refs) -> Mapping[str, IvrTree]:
    out: dict[str, IvrTree] = {}
    for name, item in named(node).items():
        f = item.fields(("start", "nodes"))
        start = f.req_str("start", numeric=True)
        tree = _Tree(item, f)
        nodes: dict[str, IvrNode] = {}
        if not f.has("nodes"):
            f.missing("nodes")
        for node_name, n in named(f.get("nodes")).items():
            if not good_name(node_name, n):
                continue
            tree.nodes[node_name] = n
            built = _node(n, node_name, refs, tree)
            if built is None:
                tree.broken.add(node_name)  # reported: stand in as an end, check the rest
            nodes[node_name] = built or HangupNode()
        ivr = IvrTree(name, start, nodes)
        for p in validate_tree(ivr, prompts=refs.prompts, schedules=refs.schedules):
            tree.report(p)
        if good_name(name, item):
            out[name] = ivr
    return MappingProxyType(out)


def _node(n: Node, name: str, refs: Refs, tree: _Tree) -> IvrNode | None:
    f = n.fields(KINDS)
    kinds = [k for k in KINDS if k in f.children]
    if len(kinds) != 1:
        if not f.quiet and (kinds or not isinstance(n.raw, MappingNode) or not n.raw.value):
            # (a mapping with keys but no kind got "unknown key" already)
            n.problem(f"must have exactly one of {', '.join(KINDS)}"
                      + (f", got {', '.join(kinds)}" if kinds else ""))
        return None
    kind = kinds[0]
    body = f.children[kind]
    if kind in _KEYS:
        if body.is_null:  # `back:` / `hangup:` with nothing under it
            b = Fields(body, {})
        else:
            b = body.fields(_KEYS[kind])
        built = _settings(kind, b, refs, tree, name)
        tree.record(name, b)
        return built
    tree.settings[name, "node" if kind == "goto" else kind] = body
    if kind == "goto":
        target = body.text(numeric=True)
        return GotoNode(target) if target is not None else None
    if kind == "queue":
        queue = queue_name(body, refs)
        return QueueNode(queue) if queue is not None else None
    if kind == "extension":
        ext = body.ref(refs.users, "account")
        return ExtensionNode(ext) if ext is not None else None
    mailbox = body.text(numeric=True, pattern=NAME, rule=NAME_RULE)
    if mailbox is not None and not refs.voicemail:
        body.problem("needs the voicemail section")
    return VoicemailNode(mailbox) if mailbox is not None else None


def _ref(f: Fields, key: str) -> str:
    return f.req_str(key, numeric=True)


def _opt_ref(f: Fields, key: str) -> str | None:
    return f.opt_str(key, None, numeric=True)


def _settings(kind: str, f: Fields, refs: Refs, tree: _Tree, name: str) -> IvrNode:
    if kind == "play":
        return PlayNode(_ref(f, "prompt"), _ref(f, "next"))
    if kind == "menu":
        choices: dict[str, str] = {}
        for digit, target in named(f.get("choices")).items():
            tree.settings[name, f"choices.{digit}"] = target
            value = target.text(numeric=True)
            if value is None:
                tree.reported.add((name, f"choices.{digit}"))
            choices[digit] = value or ""
        return MenuNode(
            prompt=_ref(f, "prompt"),
            choices=choices,
            timeout=f.opt_float("timeout", 5.0, gt=0),
            max_timeouts=f.opt_int("max_timeouts", 3, min=1, max=100),
            max_invalid=f.opt_int("max_invalid", 3, min=1, max=100),
            invalid_prompt=_opt_ref(f, "invalid_prompt"),
            timeout_prompt=_opt_ref(f, "timeout_prompt"),
            on_timeout=_opt_ref(f, "on_timeout"),
            on_invalid=_opt_ref(f, "on_invalid"),
            barge_in=f.opt_bool("barge_in", True),
        )
    if kind == "collect":
        terminator = f.opt_str("terminator", "#")
        return CollectNode(
            prompt=_ref(f, "prompt"),
            variable=_ref(f, "variable"),
            next=_ref(f, "next"),
            min_digits=f.opt_int("min_digits", 1, min=1, max=64),
            max_digits=f.opt_int("max_digits", 15, min=1, max=64),
            terminator=None if terminator == "none" else terminator,
            timeout=f.opt_float("timeout", 5.0, gt=0),
            inter_digit_timeout=f.opt_float("inter_digit_timeout", 3.0, gt=0),
            on_timeout=_opt_ref(f, "on_timeout"),
            barge_in=f.opt_bool("barge_in", True),
        )
    if kind == "time_condition":
        return TimeConditionNode(_ref(f, "schedule"), _ref(f, "match"), _ref(f, "otherwise"))
    if kind == "hangup":
        return HangupNode(_opt_ref(f, "prompt"))
    return BackNode() if kind == "back" else TopNode()
