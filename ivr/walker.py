"""The IVR walker: one caller's way through a tree, as a sans-IO state machine.

Owns: what happens on each input (the walk starts, a prompt ends, a digit arrives, a timer
fires) as a list of actions for the call leg to carry out in order, including the events to
publish. It reads no clock: `now` is monotonic seconds; `start(now, at)` also takes the aware
wall time once, and later wall times are derived from it for time conditions.

Rules the driver relies on:
- At most one prompt plays at a time: PlayPrompt comes only when none is playing, or after
  a StopPrompt in the same list. A stopped prompt never finishes: do not report it.
- After every call, `next_deadline()` is the one timer that matters (StartTimer announces a
  new one); calling `timer(now)` early, or for a replaced timer, does nothing.
- The walk ends with exactly one RouteToQueue, RouteToExtension, RouteToVoicemail or
  Hangup, followed by the `ivr.exit` event; afterwards every input is ignored.

Typeahead: a digit pressed while no input is expected (during a play node's prompt) is kept
and handed to the next menu or collect, which takes it at once, as if pressed during its
prompt, only if that node allows barge-in; otherwise the kept digits are dropped and its
prompt plays. During a menu or collect prompt without barge-in, digits are ignored.
Back returns to the menu before the caller's current one; with no such menu it acts as top.
A walk that comes back to a node (with the same menu history) without any digit in between
would circle for ever for a silent caller: it ends with Hangup, reason "loop".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from ivr.actions import (
    Action,
    Final,
    Hangup,
    PlayPrompt,
    Publish,
    RouteToExtension,
    RouteToQueue,
    RouteToVoicemail,
    SetVariable,
    StartTimer,
    StopPrompt,
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
    kind_of,
)

__all__ = [  # the actions are re-exported: a driver needs only this module
    "TYPEAHEAD_LIMIT", "Action", "Final", "Hangup", "IvrWalker", "PlayPrompt", "Publish",
    "RouteToExtension", "RouteToQueue", "RouteToVoicemail", "ScheduleLike", "SetVariable",
    "StartTimer", "StopPrompt",
]

TYPEAHEAD_LIMIT = 32  # a DTMF flood must not grow memory without bound


class ScheduleLike(Protocol):
    def is_open(self, at: datetime) -> bool: ...


class IvrWalker:
    """Walks `tree` from `start_node` (default: the tree's start). `schedules` answers the
    time_condition nodes; a tree with none needs neither schedules nor a wall time."""

    def __init__(self, tree: IvrTree, start_node: str | None = None, *,
                 schedules: Mapping[str, ScheduleLike] | None = None) -> None:
        self.tree = tree
        self.start_node = start_node if start_node is not None else tree.start
        self.schedules: Mapping[str, ScheduleLike] = schedules or {}
        self.variables: dict[str, str] = {}
        self.result: Final | None = None
        self.exit_reason: str | None = None
        self.node: str | None = None
        self.playing: str | None = None
        self._started = False
        self._programme: list[str] = []  # prompts queued behind the one playing
        self._deadline: float | None = None
        self._timeouts = 0
        self._invalid = 0
        self._digits = ""
        self._typeahead: list[str] = []
        self._history: list[str] = []  # menus entered, oldest first, each once
        self._silent: set[tuple[str, tuple[str, ...]]] = set()
        self._wall0: datetime | None = None
        self._now0 = 0.0

    # -- state ---------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def waiting_for_input(self) -> bool:
        """A menu or collect is listening for a digit (its prompt over, its timer set)."""
        return not self.done and self._deadline is not None

    @property
    def collected(self) -> str:
        """Digits a collect node has gathered so far."""
        return self._digits

    def next_deadline(self) -> float | None:
        return None if self.done else self._deadline

    # -- inputs --------------------------------------------------------------------------

    def start(self, now: float, at: datetime | None = None) -> list[Action]:
        """Enter the start node. `at`: the aware wall time at `now`, needed by a tree with
        time_condition nodes."""
        if self._started:
            raise RuntimeError("the walk has already started")
        if at is not None and at.utcoffset() is None:
            raise ValueError("at must be an aware datetime")
        if at is None and any(isinstance(n, TimeConditionNode)
                              for n in self.tree.nodes.values()):
            raise ValueError("this tree has time conditions: start() needs the wall time")
        self._started = True
        self._wall0, self._now0 = at, now
        return self._run(now, lambda out: self._goto(self.start_node, now, out))

    def prompt_finished(self, now: float) -> list[Action]:
        """The prompt last asked for has played to its end."""
        if self.done or self.playing is None:
            return []
        self.playing = None
        return self._run(now, lambda out: self._after_prompt(now, out))

    def digit(self, digit: str, now: float) -> list[Action]:
        if len(digit) != 1 or digit not in DTMF:
            raise ValueError(f"not a DTMF key: {digit!r}")
        if self.done or not self._started or self.node is None:
            return []
        return self._run(now, lambda out: self._digit(digit, now, out))

    def timer(self, now: float) -> list[Action]:
        if self.done or self._deadline is None or now < self._deadline:
            return []
        self._deadline = None
        return self._run(now, lambda out: self._timeout(now, out))

    # -- machinery -----------------------------------------------------------------------

    def _run(self, now: float, step: Callable[[list[Action]], None]) -> list[Action]:
        out: list[Action] = []
        before = self._deadline
        step(out)
        if not self.done and self._deadline is not None and self._deadline != before:
            out.append(StartTimer(self._deadline))
        return out

    def _goto(self, name: str | None, now: float, out: list[Action]) -> None:
        while name is not None and not self.done:
            node = self.tree.nodes.get(name)
            if node is None:
                self._exit(out, Hangup(), "error", detail=f"unknown node {name!r}")
                return
            if isinstance(node, MenuNode):
                if name in self._history:
                    del self._history[self._history.index(name) + 1:]
                else:
                    self._history.append(name)
            key = (name, tuple(self._history))
            if key in self._silent:
                self._exit(out, Hangup(), "loop", detail=name)
                return
            self._silent.add(key)
            self.node = name
            self._timeouts = self._invalid = 0
            self._digits = ""
            self._deadline = None
            out.append(Publish("ivr.entered", {"tree": self.tree.name, "node": name,
                                               "kind": kind_of(node)}))
            name = self._enter(node, now, out)

    def _enter(self, node: IvrNode, now: float, out: list[Action]) -> str | None:
        """Start a node; the name to go on to at once, or None to wait (or when done)."""
        if isinstance(node, PlayNode):
            if not self._play([node.prompt], False, out):
                return node.next
        elif isinstance(node, MenuNode):
            if node.barge_in and self._typeahead:
                return self._menu_digit(node, self._typeahead.pop(0), now, out)
            self._typeahead.clear()
            self._listen(node, [node.prompt], now, out)
        elif isinstance(node, CollectNode):
            return self._enter_collect(node, now, out)
        elif isinstance(node, TimeConditionNode):
            return self._time_condition(node, now, out)
        elif isinstance(node, GotoNode):
            return node.node
        elif isinstance(node, BackNode):
            if len(self._history) >= 2:
                return self._history[-2]
            self._history.clear()
            return self.start_node
        elif isinstance(node, TopNode):
            self._history.clear()
            return self.start_node
        elif isinstance(node, QueueNode):
            self._exit(out, RouteToQueue(node.name), "queue", node.name)
        elif isinstance(node, ExtensionNode):
            self._exit(out, RouteToExtension(node.number), "extension", node.number)
        elif isinstance(node, VoicemailNode):
            self._exit(out, RouteToVoicemail(node.mailbox), "voicemail", node.mailbox)
        elif isinstance(node, HangupNode):
            self._exit(out, Hangup(node.prompt), "hangup")
        return None

    def _enter_collect(self, node: CollectNode, now: float, out: list[Action]) -> str | None:
        if not node.barge_in:
            self._typeahead.clear()
        while node.barge_in and self._typeahead:
            nxt = self._collect_digit(node, self._typeahead.pop(0), now, out)
            if nxt is not None or self.done:
                return nxt
        if not self._digits:
            self._listen(node, [node.prompt], now, out)
        return None

    def _time_condition(self, node: TimeConditionNode, now: float,
                        out: list[Action]) -> str | None:
        schedule = self.schedules.get(node.schedule)
        if schedule is None or self._wall0 is None:
            self._exit(out, Hangup(), "error", detail=f"no schedule {node.schedule!r}")
            return None
        wall = self._wall0 + timedelta(seconds=now - self._now0)
        return node.match if schedule.is_open(wall) else node.otherwise

    def _play(self, prompts: list[str | None], barge_in: bool, out: list[Action]) -> bool:
        """Start playing the named prompts one after the other; False if there are none."""
        names = [p for p in prompts if p]
        if not names:
            return False
        self._programme = names[1:]
        self.playing = names[0]
        out.append(PlayPrompt(names[0], barge_in))
        return True

    def _listen(self, node: MenuNode | CollectNode, prompts: list[str | None], now: float,
                out: list[Action]) -> None:
        """Play a menu's or collect's prompts; wait for a digit right away if there are none."""
        if not self._play(prompts, node.barge_in, out):
            self._deadline = now + node.timeout

    def _stop(self, out: list[Action]) -> None:
        if self.playing is not None:
            out.append(StopPrompt())
            self.playing = None
        self._programme = []

    def _current(self) -> IvrNode | None:
        return self.tree.nodes.get(self.node) if self.node is not None else None

    def _after_prompt(self, now: float, out: list[Action]) -> None:
        node = self._current()
        if self._programme and isinstance(node, MenuNode | CollectNode):
            self._play(list(self._programme), node.barge_in, out)
        elif isinstance(node, PlayNode):
            self._goto(node.next, now, out)
        elif isinstance(node, MenuNode | CollectNode):
            self._deadline = now + node.timeout

    def _digit(self, digit: str, now: float, out: list[Action]) -> None:
        node = self._current()
        out.append(Publish("ivr.digit", {"tree": self.tree.name, "node": self.node,
                                         "digit": digit}))
        if not isinstance(node, MenuNode | CollectNode):
            if len(self._typeahead) < TYPEAHEAD_LIMIT:
                self._typeahead.append(digit)
            return
        if self.playing is not None:
            if not node.barge_in:
                return
            self._stop(out)
        self._deadline = None
        if isinstance(node, MenuNode):
            nxt = self._menu_digit(node, digit, now, out)
        else:
            nxt = self._collect_digit(node, digit, now, out)
        self._goto(nxt, now, out)

    def _timeout(self, now: float, out: list[Action]) -> None:
        node = self._current()
        nxt: str | None = None
        if isinstance(node, MenuNode):
            self._timeouts += 1
            if self._timeouts >= node.max_timeouts:
                nxt = self._leave(node.on_timeout, "timeout", out)
            else:
                self._listen(node, [node.timeout_prompt, node.prompt], now, out)
        elif isinstance(node, CollectNode):
            if self._digits:
                nxt = self._collect_done(node, out)
            else:
                nxt = self._leave(node.on_timeout, "timeout", out)
        self._goto(nxt, now, out)

    def _menu_digit(self, node: MenuNode, digit: str, now: float,
                    out: list[Action]) -> str | None:
        self._silent.clear()  # the caller is there: revisiting a node is no longer a loop
        target = node.choices.get(digit)
        if target is not None:
            return target
        self._invalid += 1
        if self._invalid >= node.max_invalid:
            return self._leave(node.on_invalid, "invalid", out)
        self._typeahead.clear()  # keys typed past a mistake were aimed at the old prompt
        self._listen(node, [node.invalid_prompt, node.prompt], now, out)
        return None

    def _collect_digit(self, node: CollectNode, digit: str, now: float,
                       out: list[Action]) -> str | None:
        self._silent.clear()
        if digit == node.terminator:
            return self._collect_done(node, out)
        self._digits += digit
        if len(self._digits) >= node.max_digits:
            return self._collect_done(node, out)
        self._deadline = now + node.inter_digit_timeout
        return None

    def _collect_done(self, node: CollectNode, out: list[Action]) -> str | None:
        digits, self._digits = self._digits, ""
        self._deadline = None
        if len(digits) < node.min_digits:
            return self._leave(node.on_timeout, "timeout", out)
        self.variables[node.variable] = digits
        out.append(SetVariable(node.variable, digits))
        return node.next

    def _leave(self, target: str | None, reason: str, out: list[Action]) -> str | None:
        """Go to `target`, or hang up for `reason` when the node names none."""
        if target is None:
            self._exit(out, Hangup(), reason)
        return target

    def _exit(self, out: list[Action], action: Final, reason: str,
              destination: str | None = None, *, detail: str | None = None) -> None:
        self._stop(out)
        self._deadline = None
        self._typeahead.clear()
        self.result, self.exit_reason = action, reason
        data: dict[str, Any] = {"tree": self.tree.name, "node": self.node, "reason": reason,
                                "destination": destination}
        if detail is not None:
            data["detail"] = detail
        out.append(action)
        out.append(Publish("ivr.exit", data))
