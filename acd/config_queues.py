"""Configuration of queues: the `agent_statuses`, `feature_codes`, `agents` and `queues`
sections, read into the frozen values of queues.settings that the distributor consumes.

Owns: QueueConfig (a queue's settings plus what only the engine plays: music on hold and the
join prompt), queue_sections, which builds these sections after the call sections whose Refs
they read, and the check that every queue named anywhere (hotlines, IVR nodes, overflows) is
defined. The built-in prompt names and the prompts announcements are made of live here too.

Every rule is checked here first; the settings' own __post_init__ checks are a backstop
whose ValueError is reported at the entry's line rather than escaping as a crash.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ParamSpec, TypedDict, TypeVar

from yaml.nodes import MappingNode

from acd.config_calls import NAME, NAME_RULE, Destination, QueueRef, Refs, good_name, named

# The hotlines' destination reader, shared so that every destination reads and fails alike.
from acd.config_callsections import _destination
from acd.config_platform import USER
from acd.config_recording import record_policy
from acd.yamlsource import Fields, Node, Report, Unique, shown
from queues.settings import AgentSettings, AnnounceSettings, EmptyRule, Member, QueueSettings
from queues.strategies import strategy_names

__all__ = [
    "BUILTIN_PROMPTS", "EMPTY_RULES", "FALLBACK_PROMPT", "NUMBER_PROMPTS", "POSITION_PROMPTS",
    "RESERVED_STATUSES", "SECTIONS", "WAIT_PROMPTS", "QueueConfig", "QueueSections",
    "queue_sections",
]

SECTIONS = ("agent_statuses", "feature_codes", "agents", "queues")
# Synthesised by the engine, so they need no file; a configured file of the same name wins.
BUILTIN_PROMPTS = ("moh", "ringback", "beep")
RESERVED_STATUSES = ("available", "logged_out")
EMPTY_RULES: tuple[EmptyRule, ...] = ("never", "logged_out", "unreachable", "unavailable")
# What an announcement is spoken from: "You are number" n3 "in the queue", "Your estimated
# waiting time is" n4 "minutes" (or "less than one minute"); the fallback is said when
# neither fits in words (past ten).
FALLBACK_PROMPT = "queue_wait"
NUMBER_PROMPTS = tuple(f"n{i}" for i in range(1, 11))
POSITION_PROMPTS = ("position_is", *NUMBER_PROMPTS, "in_queue")
WAIT_PROMPTS = ("wait_is", "less_than_a_minute", *NUMBER_PROMPTS, "minutes")

_CODE = re.compile(r"[*#0-9]+")
_USER_RULE = "must contain only letters, digits, '.', '_' and '-'"
_QUEUE_KEYS = ("strategy", "members", "ring_timeout", "retry_delay", "wrapup_time", "max_wait",
               "on_max_wait", "max_len", "on_full", "join_empty", "leave_empty", "on_empty",
               "priority", "service_level", "autopause_after", "allow_busy_agents",
               "sticky_timeout", "tier_step", "announce", "music_on_hold", "join_prompt",
               "handle_time_samples", "record")

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One queue: what the distributor reads (settings, whose overflow_destination,
    full_destination and empty_destination hold acd.config_calls.Destination values or None)
    and the prompts the engine plays to its callers."""

    settings: QueueSettings
    music_on_hold: str | None = None  # None: silence while waiting
    join_prompt: str | None = None  # played once, when a caller joins
    record: str | None = None  # always | never | on_demand; None: the hotline's or default

    @property
    def name(self) -> str:
        return self.settings.name


class QueueSections(TypedDict):
    agent_statuses: tuple[str, ...]
    feature_codes: Mapping[str, str]
    agents: Mapping[str, AgentSettings]
    queues: Mapping[str, QueueConfig]


def queue_sections(f: Fields, refs: Refs) -> QueueSections:
    """The queue sections; `refs` must already hold what the call sections define (prompts,
    ivr, voicemail and the queues they name)."""
    statuses = _statuses(f.opt_list("agent_statuses"))
    agent_ids, agents = _agents(f.get("agents"), refs)
    queue_nodes = {name: node for name, node in named(f.get("queues")).items()
                   if good_name(name, node)}
    overflows: list[QueueRef] = []
    queues: dict[str, QueueConfig] = {}
    for name, node in queue_nodes.items():
        queue = _queue(name, node.fields(_QUEUE_KEYS), refs, agent_ids, overflows)
        if queue is not None:
            queues[name] = queue
    _check_queue_refs([*refs.queues, *overflows], queue_nodes.keys(), f.node.report)
    return QueueSections(
        agent_statuses=statuses,
        feature_codes=_feature_codes(f.get("feature_codes"), statuses, refs),
        agents=MappingProxyType(agents),
        queues=MappingProxyType(queues),
    )


def _build(node: Node, make: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    try:
        return make(*args, **kwargs)
    except ValueError as exc:
        node.problem(str(exc))
        return None


# -- statuses and feature codes -----------------------------------------------------------


def _statuses(items: list[Node]) -> tuple[str, ...]:
    out: list[str] = []
    seen = Unique("status")
    for item in items:
        name = item.text(numeric=True, pattern=NAME, rule=NAME_RULE)
        if name is None:
            continue
        if name.lower() in RESERVED_STATUSES:
            item.problem(f"must not be available or logged_out (built in), got {shown(name)}")
        elif seen.first(item, name):
            out.append(name)
    return tuple(out)


def _feature_codes(node: Node | None, statuses: tuple[str, ...],
                   refs: Refs) -> Mapping[str, str]:
    out: dict[str, str] = {}
    targets = ("available", *statuses)
    for code, item in named(node).items():
        status = item.ref(targets, "agent status")
        if not _CODE.fullmatch(code):
            item.problem(f"code must contain only digits, '*' and '#', got {shown(code)}")
        elif code in refs.users:
            item.problem(f"code {shown(code)} is also an account user")
        elif code in refs.hotline_numbers:
            item.problem(f"code {shown(code)} is also a hotline")
        elif status is not None:
            out[code] = status
    return MappingProxyType(out)


# -- agents -------------------------------------------------------------------------------


def _agents(node: Node | None, refs: Refs) -> tuple[set[str], dict[str, AgentSettings]]:
    """Every well-named agent id (members may name one whose settings are bad without being
    told it does not exist) and the agents that built."""
    ids: set[str] = set()
    agents: dict[str, AgentSettings] = {}
    devices = Unique("device")
    for aid, item in named(node).items():
        f = item.fields(("name", "devices", "wrapup_time"))
        found: list[str] = []
        for d in f.req_list("devices"):
            user = d.ref(refs.users, "account")
            if user is not None and devices.first(d, user):
                found.append(user)
        wrapup = f.opt("wrapup_time", None, lambda n: n.number(min=0))
        name = f.opt_str("name", aid)
        if not good_name(aid, item, USER, _USER_RULE):
            continue
        ids.add(aid)
        agent = _build(item, AgentSettings, aid, tuple(found), wrapup_time=wrapup, name=name)
        if agent is not None:
            agents[aid] = agent
    return ids, agents


# -- queues -------------------------------------------------------------------------------


def _queue(name: str, f: Fields, refs: Refs, agents: Collection[str],
           overflows: list[QueueRef]) -> QueueConfig | None:
    d = QueueSettings(name)
    prompts = {*refs.prompts, *BUILTIN_PROMPTS}
    # Queue targets land in this copy's list: checked against this queue's own name here and
    # against every defined queue once all are known.
    own = dataclasses.replace(refs, prompts=prompts, queues=[])

    def seconds(key: str, default: float) -> float:
        return f.opt_float(key, default, min=0)

    def destination(key: str, used: bool, rule: str) -> Destination | None:
        dest = f.opt(key, None, lambda n: _destination(n, own))
        if f.has(key) and not used:
            f.blame(key).problem(f"is only used with {rule}")
        return dest

    strategy = f.opt("strategy", d.strategy, lambda n: n.ref(strategy_names(), "strategy"))
    members = _members(f.req_list("members"), agents)
    max_wait = seconds("max_wait", d.max_wait)
    max_len = f.opt_int("max_len", d.max_len, min=0)
    join_empty = f.opt_choice("join_empty", d.join_empty, EMPTY_RULES)
    leave_empty = f.opt_choice("leave_empty", d.leave_empty, EMPTY_RULES)
    # A bad value was reported already; "is only used with" would only repeat it.
    on_max_wait = destination("on_max_wait", max_wait > 0 or not f.ok("max_wait"),
                              "max_wait > 0")
    on_full = destination("on_full", max_len > 0 or not f.ok("max_len"), "max_len > 0")
    empties = join_empty != "never" or leave_empty != "never"
    on_empty = destination("on_empty", empties or not f.ok("join_empty", "leave_empty"),
                           "join_empty or leave_empty other than never")
    for ref in own.queues:
        if ref.name == name:
            f.node.report.add(ref.line, ref.key, "a queue may not overflow to itself")
        else:
            overflows.append(ref)
    ring_timeout = f.opt_float("ring_timeout", d.ring_timeout, gt=0)
    retry_delay = seconds("retry_delay", d.retry_delay)
    wrapup_time = seconds("wrapup_time", d.wrapup_time)
    priority = f.opt_float("priority", d.priority, gt=0)
    service_level = seconds("service_level", d.service_level_seconds)
    autopause_after = f.opt_int("autopause_after", d.autopause_after, min=0)
    allow_busy = f.opt_bool("allow_busy_agents", d.allow_busy_agents)
    sticky_timeout = seconds("sticky_timeout", d.sticky_timeout)
    tier_step = seconds("tier_step", d.tier_step)
    announce = _announce(f.section("announce", ("interval", "position", "estimated_wait",
                                                "round_to")), refs.prompts)
    # the bound keeps a slip of the keyboard from sizing an absurd sample buffer
    samples = f.opt_int("handle_time_samples", d.handle_time_samples, min=1, max=10000)
    music = f.opt("music_on_hold", None, lambda n: n.ref(prompts, "prompt"))
    join = f.opt("join_prompt", None, lambda n: n.ref(prompts, "prompt"))
    record = f.opt("record", None, record_policy)
    settings = _build(
        f.node, QueueSettings, name=name, strategy=strategy, members=members,
        ring_timeout=ring_timeout, retry_delay=retry_delay, wrapup_time=wrapup_time,
        max_wait=max_wait, overflow_destination=on_max_wait, max_len=max_len,
        full_destination=on_full, join_empty=join_empty, leave_empty=leave_empty,
        empty_destination=on_empty, priority=priority, service_level_seconds=service_level,
        autopause_after=autopause_after, allow_busy_agents=allow_busy,
        sticky_timeout=sticky_timeout, tier_step=tier_step, announce=announce,
        handle_time_samples=samples)
    return QueueConfig(settings, music, join, record) if settings is not None else None


def _members(items: list[Node], agents: Collection[str]) -> tuple[Member, ...]:
    out: list[Member] = []
    seen = Unique("member")
    for item in items:
        if not isinstance(item.raw, MappingNode):
            agent = item.ref(agents, "agent")
            member = None if agent is None else _build(item, Member, agent)
        else:
            member = _member(item, item.fields(("agent", "penalty", "weight", "skills")),
                             agents)
        if member is not None and seen.first(item, member.agent):
            out.append(member)
    return tuple(out)


def _member(item: Node, f: Fields, agents: Collection[str]) -> Member | None:
    agent = f.req("agent", "", lambda n: n.ref(agents, "agent"))
    penalty = f.opt_int("penalty", 0, min=0)
    weight = f.opt_float("weight", 1.0, gt=0)
    skills: dict[str, float] = {}
    for skill, node in named(f.get("skills")).items():
        level = node.number(min=0)
        if good_name(skill, node) and level is not None:
            skills[skill] = level
    if not agent:
        return None
    return _build(item, Member, agent, penalty, weight, skills)


def _announce(f: Fields, prompts: Collection[str]) -> AnnounceSettings:
    d = AnnounceSettings()
    interval = f.opt_float("interval", d.interval, min=0)
    position = f.opt_bool("position", d.position)
    wait = f.opt_bool("estimated_wait", d.estimated_wait)
    if interval > 0 and f.ok("position", "estimated_wait") and not (position or wait):
        f.blame("interval").problem("announces nothing: position and estimated_wait are off")
    if interval > 0 and (position or wait) and FALLBACK_PROMPT not in prompts:
        f.blame("interval").problem(f"needs the prompt {FALLBACK_PROMPT} (in prompts.files)")
    for key, on, needed in (("position", position, POSITION_PROMPTS),
                            ("estimated_wait", wait, WAIT_PROMPTS)):
        missing = [p for p in needed if p not in prompts]
        if interval > 0 and on and missing:
            f.blame(key, "interval").problem(
                f"needs the prompts {', '.join(missing)} (in prompts.files)")
    round_to = f.opt_float("round_to", d.round_to, gt=0)
    return _build(f.node, AnnounceSettings, interval, position, wait, round_to) or d


def _check_queue_refs(refs: list[QueueRef], defined: Collection[str], report: Report) -> None:
    for ref in refs:
        if ref.name not in defined:
            close = difflib.get_close_matches(ref.name, list(defined), n=1)
            report.add(ref.line, ref.key, f"unknown queue {shown(ref.name)}"
                       + (f", did you mean {close[0]!r}?" if close else ""))
