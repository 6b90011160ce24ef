"""Tests of the queue sections of acd.yaml (acd.config_queues): the demo's values, every
rule's exact `file:line: key: reason`, queue references from hotlines, IVR trees and
overflows, the announcement prompts, and fuzzing."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import acd.config_queues as cq
from acd.config import (
    AgentSettings,
    Config,
    ConfigError,
    Destination,
    QueueConfig,
    load_config,
    load_config_text,
)
from media.audiofile import read_wav
from queues import settings as qs
from queues.settings import AnnounceSettings, Member, QueueSettings
from queues.strategies import strategy_names

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "acd.yaml"
PROMPTS = ROOT / "config" / "prompts"
ANNOUNCE_FILES = ", ".join(f"{p}: {p}.wav" for p in dict.fromkeys(
    (*cq.POSITION_PROMPTS, *cq.WAIT_PROMPTS)))


def head(prompt_files: str = "welcome: welcome.wav, queue_wait: queue_wait.wav") -> str:
    """Lines 1-7; a snippet appended starts at line 8."""
    return (
        "sip:\n  listen: [udp:127.0.0.1:5060]\n  domain: acd.local\n"
        'accounts: [{user: "1001", password: p1}, {user: "1002", password: p2},'
        ' {user: "1003", password: p3}]\n'
        'trunks: [{name: t1, inbound: {sources: [127.0.0.1]}, hotlines: ["19001000"]}]\n'
        f"prompts: {{dir: {PROMPTS}, files: {{{prompt_files}}}}}\n"
        "voicemail: {prompt: welcome}\n"
    )


def load(snippet: str, prompt_files: str | None = None) -> Config:
    h = head() if prompt_files is None else head(prompt_files)
    return load_config_text(h + textwrap.dedent(snippet), "t.yaml")


def errors(snippet: str, prompt_files: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(snippet, prompt_files)
    return [str(p) for p in info.value.problems]


AGENTS = 'agents: {"1001": {devices: ["1001"]}, "1002": {devices: ["1002"]}}\n'  # line 8


# -- the demo -----------------------------------------------------------------------------


def test_demo_queue_sections() -> None:
    c = load_config(DEMO)
    assert c.agent_statuses == ("lunch", "meeting", "training", "break")
    assert dict(c.feature_codes) == {"*21": "available", "*22": "break"}
    assert dict(c.agents) == {
        f"100{i}": AgentSettings(f"100{i}", (f"100{i}",), None, f"Agent 100{i}")
        for i in range(1, 5)}
    assert dict(c.queues) == {
        "sales": QueueConfig(QueueSettings(
            "sales", strategy="longest_idle", members=(Member("1001"), Member("1002")),
            ring_timeout=15, retry_delay=2, wrapup_time=5, max_wait=120,
            overflow_destination=Destination("voicemail", "sales"),
            announce=AnnounceSettings(interval=30, position=True, estimated_wait=True),
            service_level_seconds=20), music_on_hold="moh"),
        "support": QueueConfig(QueueSettings(
            "support", strategy="ring_all", members=(Member("1003"),), ring_timeout=20,
            wrapup_time=5), music_on_hold="moh"),
    }
    assert c.queues["sales"].name == "sales"
    # every queue the hotlines and the IVR name is defined (else the demo would not load)
    assert set(c.referenced_queues) == {"sales", "support"}


def test_demo_has_every_announcement_prompt() -> None:
    files = load_config(DEMO).prompts.files
    needed = {*cq.POSITION_PROMPTS, *cq.WAIT_PROMPTS, cq.FALLBACK_PROMPT, "status_available",
              "status_break"}
    assert needed <= files.keys()
    for name in needed:
        fmt, data = read_wav(files[name])
        # 8 kHz mono mu-law (format tag 7), like the other demo prompts, and short
        assert (fmt.format_tag, fmt.sample_rate, fmt.channels) == (7, 8000, 1), name
        assert 0.3 < len(data) / 8000 < 4.0, name
    assert not (set(files) & set(cq.BUILTIN_PROMPTS))


def test_no_queue_sections_read_as_empty() -> None:
    c = load("")
    assert c.agent_statuses == () and dict(c.feature_codes) == {}
    assert dict(c.agents) == {} and dict(c.queues) == {}


def test_every_setting_of_a_queue_is_read() -> None:
    c = load(AGENTS + textwrap.dedent("""\
        agent_statuses: [lunch]
        feature_codes: {"*21": available, "#22": lunch, "555": lunch}
        queues:
          q:
            strategy: weighted_random
            members:
              - "1001"
              - {agent: "1002", penalty: 2, weight: 0.5, skills: {vi: 5, en: 1.5}}
            ring_timeout: 10.5
            retry_delay: 0
            wrapup_time: 3
            max_wait: 60
            on_max_wait: {queue: other}
            max_len: 5
            on_full: {extension: "1003"}
            join_empty: unreachable
            leave_empty: logged_out
            on_empty: {play: beep}
            priority: 2
            service_level: 30
            autopause_after: 3
            allow_busy_agents: true
            sticky_timeout: 15
            tier_step: 7
            announce: {interval: 45, position: false, round_to: 30}
            music_on_hold: welcome
            join_prompt: queue_wait
            handle_time_samples: 50
          other: {members: ["1001"], on_max_wait: {ivr: main}, max_wait: 1}
        ivr: {main: {start: a, nodes: {a: {hangup: }}}}
        """), ANNOUNCE_FILES + ", welcome: welcome.wav, "
        "queue_wait: queue_wait.wav")
    assert dict(c.feature_codes) == {"*21": "available", "#22": "lunch", "555": "lunch"}
    assert c.queues["q"] == QueueConfig(QueueSettings(
        "q", "weighted_random", (Member("1001"), Member("1002", 2, 0.5, {"vi": 5, "en": 1.5})),
        10.5, 0, 3, 60, Destination("queue", "other"), 5, Destination("extension", "1003"),
        "unreachable", "logged_out", Destination("play", "beep"), 2, 30, 3, True, 15, 7,
        AnnounceSettings(45, False, True, 30), 50), "welcome", "queue_wait")
    assert c.queues["other"].settings.overflow_destination == Destination("ivr", "main")


@pytest.mark.parametrize("name", strategy_names())
def test_every_registered_strategy_is_accepted(name: str) -> None:
    assert load(AGENTS + f'queues: {{q: {{strategy: {name}, members: ["1001"]}}}}\n'
                ).queues["q"].settings.strategy == name


def test_agent_defaults_and_wrapup_override() -> None:
    c = load('agents: {"a.1": {devices: ["1001", "1002"], wrapup_time: 0}}\n')
    assert c.agents["a.1"] == AgentSettings("a.1", ("1001", "1002"), 0.0, "a.1")


def test_empty_rules_match_the_distributors() -> None:
    assert cq.EMPTY_RULES == qs.EMPTY_RULES


# -- one case per rule: exact `file:line: key: reason` ------------------------------------

RULES = [
    pytest.param("""\
        agent_statuses:
          - lunch
          - bad name
          - available
          - Logged_Out
          - lunch
        """, [
        "t.yaml:10: agent_statuses[1]: must contain only letters, digits, '_' and '-', "
        "got 'bad name'",
        "t.yaml:11: agent_statuses[2]: must not be available or logged_out (built in), "
        "got 'available'",
        "t.yaml:12: agent_statuses[3]: must not be available or logged_out (built in), "
        "got 'Logged_Out'",
        "t.yaml:13: agent_statuses[4]: duplicate status 'lunch', first at agent_statuses[0] "
        "(line 9)"], id="statuses"),
    pytest.param("agent_statuses: lunch\n", [
        "t.yaml:8: agent_statuses: must be a list, got a string"], id="statuses-list"),
    pytest.param("""\
        agent_statuses: [lunch]
        feature_codes:
          "*2x": available
          "1001": available
          "19001000": lunch
          "*23": lunh
          "*24": logged_out
          "*25": [available]
        """, [
        "t.yaml:10: feature_codes.*2x: code must contain only digits, '*' and '#', "
        "got '*2x'",
        "t.yaml:11: feature_codes.1001: code '1001' is also an account user",
        "t.yaml:12: feature_codes.19001000: code '19001000' is also a hotline",
        "t.yaml:13: feature_codes.*23: unknown agent status 'lunh', did you mean 'lunch'?",
        "t.yaml:14: feature_codes.*24: unknown agent status 'logged_out'",
        "t.yaml:15: feature_codes.*25: must be a string, got a list"], id="feature-codes"),
    pytest.param("""\
        agents:
          "bad id!": {devices: ["1001"]}
          a1: {name: A}
          a2: {devices: []}
          a3: {devices: ["1009"], wrapup_time: -1}
          a4:
            devices: ["1002", "1002"]
            device: x
          a5: {devices: ["1001"]}
          a6:
        """, [
        "t.yaml:9: agents.bad id!: name must contain only letters, digits, '.', '_' and '-', "
        "got 'bad id!'",
        "t.yaml:10: agents.a1.devices: is required",
        "t.yaml:11: agents.a2.devices: must have at least one entry",
        "t.yaml:12: agents.a3.devices[0]: unknown account '1009', did you mean '1003'?",
        "t.yaml:12: agents.a3.wrapup_time: must be >= 0, got -1",
        "t.yaml:14: agents.a4.devices[1]: duplicate device '1002', first at "
        "agents.a4.devices[0] (line 14)",
        "t.yaml:15: agents.a4.device: unknown key, did you mean 'devices'?",
        "t.yaml:16: agents.a5.devices[0]: duplicate device '1001', first at "
        "agents.bad id!.devices[0] (line 9)",
        "t.yaml:17: agents.a6: must be a mapping, got null"], id="agents"),
    pytest.param(AGENTS + textwrap.dedent("""\
        queues:
          bad name: {members: ["1001"]}
          q1: {strategy: longest_idel}
          q2: {members: []}
          q3:
            members:
              - "1001"
              - nobody
              - "1001"
              - {penalty: -1, weight: 0, skills: {bad skill: 1, vi: -1}}
              - {agent: "1002", weight: x}
              - {agent: "1002", penalty: 1}
            strategy: 5
        """), [
        "t.yaml:10: queues.bad name: name must contain only letters, digits, '_' and '-', "
        "got 'bad name'",
        "t.yaml:11: queues.q1.strategy: unknown strategy 'longest_idel', did you mean "
        "'longest_idle'?",
        "t.yaml:11: queues.q1.members: is required",
        "t.yaml:12: queues.q2.members: must have at least one entry",
        "t.yaml:16: queues.q3.members[1]: unknown agent 'nobody'",
        "t.yaml:17: queues.q3.members[2]: duplicate member '1001', first at "
        "queues.q3.members[0] (line 15)",
        "t.yaml:18: queues.q3.members[3].agent: is required",
        "t.yaml:18: queues.q3.members[3].penalty: must be >= 0, got -1",
        "t.yaml:18: queues.q3.members[3].weight: must be > 0, got 0",
        "t.yaml:18: queues.q3.members[3].skills.bad skill: name must contain only letters, "
        "digits, '_' and '-', got 'bad skill'",
        "t.yaml:18: queues.q3.members[3].skills.vi: must be >= 0, got -1",
        "t.yaml:19: queues.q3.members[4].weight: must be a number, got a string",
        "t.yaml:20: queues.q3.members[5]: duplicate member '1002', first at "
        "queues.q3.members[4] (line 19)",
        "t.yaml:21: queues.q3.strategy: unknown strategy '5'"], id="members"),
    pytest.param(AGENTS + textwrap.dedent("""\
        queues:
          q:
            members: ["1001"]
            ring_timeout: 0
            retry_delay: -1
            wrapup_time: -1
            max_wait: -1
            max_len: -1
            join_empty: always
            leave_empty: 1
            priority: 0
            service_level: -1
            autopause_after: 1.5
            allow_busy_agents: "yes"
            sticky_timeout: -1
            tier_step: -1
            handle_time_samples: 10001
            announce: {interval: -1, round_to: 0, position: 1, voice: x}
            music_on_hold: mho
            join_prompt: nope
            ringtone: x
        """), [
        "t.yaml:12: queues.q.ring_timeout: must be > 0, got 0",
        "t.yaml:13: queues.q.retry_delay: must be >= 0, got -1",
        "t.yaml:14: queues.q.wrapup_time: must be >= 0, got -1",
        "t.yaml:15: queues.q.max_wait: must be >= 0, got -1",
        "t.yaml:16: queues.q.max_len: must be >= 0, got -1",
        "t.yaml:17: queues.q.join_empty: must be one of never, logged_out, unreachable, "
        "unavailable, got 'always'",
        "t.yaml:18: queues.q.leave_empty: must be a string, got an integer (quote it)",
        "t.yaml:19: queues.q.priority: must be > 0, got 0",
        "t.yaml:20: queues.q.service_level: must be >= 0, got -1",
        "t.yaml:21: queues.q.autopause_after: must be an integer, got a number",
        "t.yaml:22: queues.q.allow_busy_agents: must be true or false, got a string",
        "t.yaml:23: queues.q.sticky_timeout: must be >= 0, got -1",
        "t.yaml:24: queues.q.tier_step: must be >= 0, got -1",
        "t.yaml:25: queues.q.handle_time_samples: must be between 1 and 10000, got 10001",
        "t.yaml:26: queues.q.announce.voice: unknown key (expected one of: interval, "
        "position, estimated_wait, round_to)",
        "t.yaml:26: queues.q.announce.interval: must be >= 0, got -1",
        "t.yaml:26: queues.q.announce.position: must be true or false, got an integer",
        "t.yaml:26: queues.q.announce.round_to: must be > 0, got 0",
        "t.yaml:27: queues.q.music_on_hold: unknown prompt 'mho', did you mean 'moh'?",
        "t.yaml:28: queues.q.join_prompt: unknown prompt 'nope'",
        "t.yaml:29: queues.q.ringtone: unknown key, did you mean 'ring_timeout'?"],
        id="settings"),
    pytest.param(AGENTS + textwrap.dedent("""\
        queues:
          q:
            members: ["1001"]
            on_max_wait: {voicemail: q}
            on_full: {play: beep}
            on_empty: {extension: "1001"}
            join_empty: never
          r:
            members: ["1001"]
            max_wait: 10
            on_max_wait: {queue: r}
            max_len: 2
            on_full: {queue: nope}
            leave_empty: unavailable
            on_empty: {play: mho, queue: q}
          s:
            members: ["1001"]
            max_wait: 10
            on_max_wait: {play: nope}
            max_len: 1
            on_full: {extension: "1009"}
            join_empty: unavailable
            on_empty: {ivr: main}
        """), [
        "t.yaml:12: queues.q.on_max_wait: is only used with max_wait > 0",
        "t.yaml:13: queues.q.on_full: is only used with max_len > 0",
        "t.yaml:14: queues.q.on_empty: is only used with join_empty or leave_empty other "
        "than never",
        "t.yaml:19: queues.r.on_max_wait.queue: a queue may not overflow to itself",
        "t.yaml:21: queues.r.on_full.queue: unknown queue 'nope'",
        "t.yaml:23: queues.r.on_empty: must have exactly one of ivr, queue, extension, "
        "voicemail, play, got queue, play",
        "t.yaml:27: queues.s.on_max_wait.play: unknown prompt 'nope'",
        "t.yaml:29: queues.s.on_full.extension: unknown account '1009', did you mean '1003'?",
        "t.yaml:31: queues.s.on_empty.ivr: unknown ivr tree 'main'"], id="destinations"),
    pytest.param(AGENTS + textwrap.dedent("""\
        queues:
          q:
            members: ["1001"]
            announce:
              interval: 30
              position: false
              estimated_wait: false
          r:
            members: ["1001"]
            announce: {interval: 30}
          s:
            members: ["1001"]
            announce: {position: true}
        """), [
        "t.yaml:13: queues.q.announce.interval: announces nothing: position and "
        "estimated_wait are off",
        "t.yaml:18: queues.r.announce.interval: needs the prompts position_is, n1, n2, n3, "
        "n4, n5, n6, n7, n8, n9, n10, in_queue (in prompts.files)",
        "t.yaml:18: queues.r.announce.interval: needs the prompts wait_is, less_than_a_minute, n1, "
        "n2, n3, n4, n5, n6, n7, n8, n9, n10, minutes (in prompts.files)"], id="announce"),
    pytest.param("""\
        hotlines: {"19001000": {destination: {queue: suport}}}
        ivr:
          main:
            start: a
            nodes:
              a: {queue: nope}
        agents: {"1001": {devices: ["1001"]}}
        queues:
          support: {members: ["1001"], max_wait: 5, on_max_wait: {queue: gone}}
        """, [
        "t.yaml:8: hotlines.19001000.destination.queue: unknown queue 'suport', did you "
        "mean 'support'?",
        "t.yaml:13: ivr.main.nodes.a.queue: unknown queue 'nope'",
        "t.yaml:16: queues.support.on_max_wait.queue: unknown queue 'gone'"],
        id="references"),
    pytest.param("""\
        hotlines: {"19001000": {destination: {queue: sales}}}
        """, [
        "t.yaml:8: hotlines.19001000.destination.queue: unknown queue 'sales'"],
        id="references-without-queues"),
]


@pytest.mark.parametrize(("snippet", "expected"), RULES)
def test_rule(snippet: str, expected: list[str]) -> None:
    assert errors(snippet) == expected


def test_announcements_need_only_the_prompts_of_what_they_say() -> None:
    files = ", ".join(f"{p}: {p}.wav" for p in ("welcome", "queue_wait", *cq.WAIT_PROMPTS))
    c = load(AGENTS + 'queues: {q: {members: ["1001"], announce: {interval: 9, '
             "position: false}}}\n", files)
    assert c.queues["q"].settings.announce == AnnounceSettings(9, False, True)
    assert errors(AGENTS + 'queues: {q: {members: ["1001"], announce: {interval: 9, '
                  "estimated_wait: false}}}\n", files) == [
        "t.yaml:9: queues.q.announce.interval: needs the prompts position_is, in_queue "
        "(in prompts.files)"]
    # said when neither the position nor the wait fits in words
    assert errors(AGENTS + 'queues: {q: {members: ["1001"], announce: {interval: 9, '
                  "position: false}}}\n", files.replace("queue_wait: queue_wait.wav, ", "")
                  ) == ["t.yaml:9: queues.q.announce.interval: needs the prompt queue_wait "
                        "(in prompts.files)"]


def test_a_broken_queue_or_agent_is_still_known_to_those_naming_it() -> None:
    # only the broken setting is reported, not every reference to the name
    assert errors("""\
        hotlines: {"19001000": {destination: {queue: q}}}
        agents: {a: {devices: ["1009"]}}
        queues: {q: {members: [a], ring_timeout: 0}}
        """) == [
        "t.yaml:9: agents.a.devices[0]: unknown account '1009', did you mean '1003'?",
        "t.yaml:10: queues.q.ring_timeout: must be > 0, got 0"]


def test_settings_refusals_are_reported_at_the_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    # The loader checks every rule itself; this is the backstop for a rule the settings
    # gain later: their ValueError becomes a problem instead of a crash.
    def refusing(cls: Any, defaults_args: int | None = None) -> Any:
        def make(*args: Any, **kwargs: Any) -> Any:
            if len(args) == defaults_args and not kwargs:  # the loader's defaults
                return cls(*args)
            raise ValueError(f"{cls.__name__} refused")
        return make

    for cls, defaults_args in ((AgentSettings, None), (Member, None), (QueueSettings, 1),
                               (AnnounceSettings, 0)):
        monkeypatch.setattr(cq, cls.__name__, refusing(cls, defaults_args))
    assert errors(AGENTS + textwrap.dedent("""\
        queues:
          q:
            members:
              - "1001"
              - {agent: "1002"}
            announce: {interval: 0}
        """)) == [
        "t.yaml:8: agents.1001: AgentSettings refused",
        "t.yaml:8: agents.1002: AgentSettings refused",
        "t.yaml:10: queues.q: QueueSettings refused",
        "t.yaml:12: queues.q.members[0]: Member refused",
        "t.yaml:13: queues.q.members[1]: Member refused",
        "t.yaml:14: queues.q.announce: AnnounceSettings refused"]


# -- fuzzing ------------------------------------------------------------------------------

NAMES = st.sampled_from(["1001", "1002", "1009", "q", "r", "sales", "moh", "welcome",
                         "available", "lunch", "*21", "19001000", "main", "bad name"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 20), st.integers(),
                    st.floats(), st.text(max_size=6), NAMES)
QUEUE_KEYS = st.sampled_from([*cq._QUEUE_KEYS, "agent", "penalty", "weight", "skills",
                              "devices", "name", "interval", "position", "round_to",
                              "queue", "play", "voicemail", "extension", "ivr", "<<", "x"])
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(QUEUE_KEYS, inner, max_size=5)),
    max_leaves=20)
SECTIONS = st.fixed_dictionaries({}, optional={
    "agent_statuses": st.one_of(VALUES, st.lists(NAMES, max_size=4)),
    "feature_codes": st.one_of(VALUES, st.dictionaries(NAMES, VALUES, max_size=4)),
    "agents": st.one_of(VALUES, st.dictionaries(NAMES, st.dictionaries(
        QUEUE_KEYS, VALUES, max_size=4), max_size=4)),
    "queues": st.one_of(VALUES, st.dictionaries(NAMES, st.one_of(VALUES, st.dictionaries(
        QUEUE_KEYS, VALUES, max_size=8)), max_size=3)),
    "hotlines": st.just({"19001000": {"destination": {"queue": "q"}}}),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SECTIONS)
def test_random_queue_sections_raise_only_config_error(tree: dict[str, object]) -> None:
    text = head() + yaml.safe_dump(tree)
    try:
        load_config_text(text, "f.yaml")
    except ConfigError as exc:
        assert all(p.file == "f.yaml" and p.key and p.reason for p in exc.problems)
        assert all(1 <= p.line <= len(text.splitlines()) + 1 for p in exc.problems)
