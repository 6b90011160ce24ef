"""The IVR tree model: one frozen dataclass per node kind and the tree that names them.

Owns: the node kinds and their defaults, which kinds wait for a digit, and the static
successor relation (`successors`) that validation and the walker agree on. References
between nodes are plain names, checked by ivr.validate, so a tree can be built from any
source (YAML in acd, strategies in tests) before it is known to be sound.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "DTMF", "BackNode", "CollectNode", "ExtensionNode", "GotoNode", "HangupNode", "IvrNode",
    "IvrTree", "MenuNode", "PlayNode", "QueueNode", "TimeConditionNode", "TopNode",
    "VoicemailNode", "kind_of", "node_refs", "prompt_refs", "waits_for_input",
]

DTMF = "0123456789*#"


@dataclass(frozen=True, slots=True)
class PlayNode:
    """Play a prompt to the end (digits meanwhile are kept as typeahead), then go on."""

    prompt: str
    next: str


@dataclass(frozen=True, slots=True)
class MenuNode:
    """Play a prompt and wait for one digit; `choices` maps a digit to a node."""

    prompt: str
    choices: Mapping[str, str]
    timeout: float = 5.0  # seconds after the prompt ends
    max_timeouts: int = 3
    max_invalid: int = 3
    invalid_prompt: str | None = None
    timeout_prompt: str | None = None
    on_timeout: str | None = None  # None: hang up
    on_invalid: str | None = None  # None: hang up
    barge_in: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", MappingProxyType(dict(self.choices)))


@dataclass(frozen=True, slots=True)
class CollectNode:
    """Gather up to max_digits digits into a call variable, then go to `next`.

    Ends on the terminator, on max_digits, or when inter_digit_timeout passes after a
    digit; fewer than min_digits, or no digit within `timeout`, goes to on_timeout.
    """

    prompt: str
    variable: str
    next: str
    min_digits: int = 1
    max_digits: int = 15
    terminator: str | None = "#"
    timeout: float = 5.0  # for the first digit, after the prompt ends
    inter_digit_timeout: float = 3.0
    on_timeout: str | None = None  # None: hang up
    barge_in: bool = True


@dataclass(frozen=True, slots=True)
class TimeConditionNode:
    """Go to `match` while the named schedule is open, else to `otherwise`."""

    schedule: str
    match: str
    otherwise: str


@dataclass(frozen=True, slots=True)
class GotoNode:
    node: str


@dataclass(frozen=True, slots=True)
class BackNode:
    """Return to the menu before the caller's current one (the start node at the top)."""


@dataclass(frozen=True, slots=True)
class TopNode:
    """Return to the start node, forgetting the menu history."""


@dataclass(frozen=True, slots=True)
class QueueNode:
    name: str


@dataclass(frozen=True, slots=True)
class ExtensionNode:
    number: str


@dataclass(frozen=True, slots=True)
class VoicemailNode:
    mailbox: str


@dataclass(frozen=True, slots=True)
class HangupNode:
    prompt: str | None = None


IvrNode = (PlayNode | MenuNode | CollectNode | TimeConditionNode | GotoNode | BackNode | TopNode
           | QueueNode | ExtensionNode | VoicemailNode | HangupNode)

_KINDS: dict[type, str] = {
    PlayNode: "play", MenuNode: "menu", CollectNode: "collect",
    TimeConditionNode: "time_condition", GotoNode: "goto", BackNode: "back", TopNode: "top",
    QueueNode: "queue", ExtensionNode: "extension", VoicemailNode: "voicemail",
    HangupNode: "hangup",
}


def kind_of(node: IvrNode) -> str:
    """The node's kind as written in configuration ("menu", "time_condition"...)."""
    return _KINDS[type(node)]


def waits_for_input(node: IvrNode) -> bool:
    """Menus and collects wait for a digit; the routing and hangup kinds end the walk."""
    return isinstance(node, MenuNode | CollectNode)


def node_refs(node: IvrNode) -> Iterator[tuple[str, str]]:
    """(field, node name) for every node this one names directly, in field order.

    Menu choices are reported as field "choices.<digit>". Back and top name no node: their
    targets depend on the walk (see ivr.walker) and the start node.
    """
    if isinstance(node, PlayNode):
        yield "next", node.next
    elif isinstance(node, MenuNode):
        for digit, target in node.choices.items():
            yield f"choices.{digit}", target
        if node.on_timeout is not None:
            yield "on_timeout", node.on_timeout
        if node.on_invalid is not None:
            yield "on_invalid", node.on_invalid
    elif isinstance(node, CollectNode):
        yield "next", node.next
        if node.on_timeout is not None:
            yield "on_timeout", node.on_timeout
    elif isinstance(node, TimeConditionNode):
        yield "match", node.match
        yield "otherwise", node.otherwise
    elif isinstance(node, GotoNode):
        yield "node", node.node


def prompt_refs(node: IvrNode) -> Iterator[tuple[str, str]]:
    """(field, prompt name) for every prompt the node plays."""
    if isinstance(node, PlayNode | MenuNode | CollectNode):
        yield "prompt", node.prompt
    if isinstance(node, MenuNode):
        if node.invalid_prompt is not None:
            yield "invalid_prompt", node.invalid_prompt
        if node.timeout_prompt is not None:
            yield "timeout_prompt", node.timeout_prompt
    if isinstance(node, HangupNode) and node.prompt is not None:
        yield "prompt", node.prompt


@dataclass(frozen=True, slots=True)
class IvrTree:
    """A named tree of nodes entered at `start`."""

    name: str
    start: str
    nodes: Mapping[str, IvrNode] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        # Frozen means frozen: a caller's dict could otherwise change under a running walk.
        object.__setattr__(self, "nodes", MappingProxyType(dict(self.nodes)))
