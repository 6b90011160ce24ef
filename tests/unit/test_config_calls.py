"""Tests of the call sections of acd.yaml (acd.config_calls, acd.config_ivr): the demo's
values, every rule's exact `file:line: key: reason`, prompt files, and fuzzing."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.config import (
    Blacklist,
    Config,
    ConfigError,
    Destination,
    MediaConfig,
    Numbering,
    OutboundRule,
    QueueRef,
    VoicemailConfig,
    load_config,
    load_config_text,
)
from ivr.model import CollectNode, HangupNode, MenuNode, QueueNode

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "acd.yaml"
PROMPTS = ROOT / "config" / "prompts"

# Lines 1-8; a snippet appended starts at line 9.
HEAD = (
    "sip:\n  listen: [udp:127.0.0.1:5060]\n  domain: acd.local\n"
    'accounts: [{user: "1001", password: p1}, {user: "1002", password: p2}]\n'
    "trunks:\n"
    "  - {name: t1, inbound: {sources: [127.0.0.1]}, outbound: {proxy: 127.0.0.1},"
    ' hotlines: ["19001000", "19002000"]}\n'
    '  - {name: t2, inbound: {sources: [127.0.0.2]}, hotlines: ["19003000"]}\n'
    f"prompts: {{dir: {PROMPTS}, files: {{welcome: welcome.wav, closed: closed.wav, "
    "blocked: blocked.wav}}\n"
)


def load(snippet: str = "", head: str = HEAD) -> Config:
    return load_config_text(head + textwrap.dedent(snippet), "t.yaml")


def errors(snippet: str, head: str = HEAD) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(snippet, head)
    return [str(p) for p in info.value.problems]


# -- the demo -----------------------------------------------------------------------------


def test_demo_call_sections() -> None:
    c = load_config(DEMO)
    assert c.media == MediaConfig((20000, 29999), "127.0.0.1", "127.0.0.1", ("PCMU", "PCMA"),
                                  101)
    assert c.numbering == Numbering("84", "0", "00")
    assert sorted(c.prompts.files) == sorted([
        "blocked", "closed", "goodbye", "invalid", "not_available", "voicemail", "welcome",
        "queue_wait", "position_is", "in_queue", "wait_is", "less_than_a_minute", "minutes",
        *(f"n{i}" for i in range(1, 11)), "status_available", "status_break"])
    assert c.prompts.files["welcome"] == DEMO.parent / "prompts" / "welcome.wav"
    office = c.schedules["office"]
    assert office.timezone == "Asia/Ho_Chi_Minh"
    assert [str(r) for r in office.ranges("mon")] == ["08:00-12:00", "13:00-17:30"]
    assert office.ranges("sun") == () and len(office.holidays) == 4
    assert c.blacklist == Blacklist(frozenset({"+84999999999"}), ("+84900000",), "reject")
    assert c.hotlines["19001000"].destination == Destination("ivr", "main")
    assert c.hotlines["19002000"].destination == Destination("queue", "sales")
    h = c.hotlines["19003000"]
    assert (h.schedule, h.out_of_hours) == ("office", Destination("play", "closed"))
    assert h.blacklist == Blacklist(frozenset(), ("+8424",), "play", "blocked")
    tree = c.ivr["main"]
    assert tree.start == "welcome"
    menu = tree.nodes["welcome"]
    assert isinstance(menu, MenuNode)
    assert (menu.timeout, menu.max_timeouts, menu.max_invalid) == (5, 2, 3)
    assert dict(menu.choices) == {"1": "sales", "2": "support", "9": "operator"}
    assert tree.nodes["goodbye"] == HangupNode("goodbye")
    assert c.outbound_rules == (OutboundRule(
        "vietnam", ("0", "+84", "84", "0084"), ("+84",), ("demo-trunk",), "19001000",
        frozenset({"1001", "1002", "1003", "1004"}), "e164"),)
    assert c.voicemail == VoicemailConfig(Path("recordings/voicemail"), 120, 10.0, "voicemail")
    assert c.referenced_queues == ("sales", "support")
    assert [(q.name, q.key) for q in c.queue_refs] == [
        ("sales", "hotlines.19002000.destination.queue"),
        ("sales", "ivr.main.nodes.sales.queue"),
        ("support", "ivr.main.nodes.support.queue")]


def test_minimal_config_has_empty_call_sections() -> None:
    c = load_config_text("sip:\n  listen: [udp:127.0.0.1:5060]\n  domain: d\n")
    assert c.media == MediaConfig()
    assert c.media.advertise == c.media.bind == "127.0.0.1"
    assert c.numbering.country_code is None
    assert dict(c.hotlines) == {} and dict(c.ivr) == {} and dict(c.schedules) == {}
    assert c.voicemail is None and c.outbound_rules == () and c.referenced_queues == ()


def test_text_configs_take_prompt_paths_from_base_dir(tmp_path: Path) -> None:
    text = DEMO.read_text()
    assert load_config_text(text, base_dir=DEMO.parent).prompts.dir == DEMO.parent / "prompts"
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "x.yaml", base_dir=tmp_path)
    assert [str(p) for p in info.value.problems] == [
        f"x.yaml:77: prompts.dir: no such directory: {tmp_path / 'prompts'}"]


# -- rules --------------------------------------------------------------------------------

RULES = [
    # media
    pytest.param("media: {rtp_ports: 20001-29999}\n", [
        "t.yaml:9: media.rtp_ports: must start on an even port (RTP even, RTCP odd), "
        "got 20001"], id="rtp-odd"),
    pytest.param("media: {rtp_ports: 80-1000}\n", [
        "t.yaml:9: media.rtp_ports: must lie within 1024-65535, got '80-1000'"],
        id="rtp-low"),
    pytest.param("media: {rtp_ports: 60000-70000}\n", [
        "t.yaml:9: media.rtp_ports: must lie within 1024-65535, got '60000-70000'"],
        id="rtp-high"),
    pytest.param("media: {rtp_ports: 30000-20000}\n", [
        "t.yaml:9: media.rtp_ports: must be A-B with A < B (at least one RTP/RTCP pair), "
        "got '30000-20000'"], id="rtp-reversed"),
    pytest.param("media: {rtp_ports: 20000}\n", [
        "t.yaml:9: media.rtp_ports: must be a port range A-B, got '20000'"], id="rtp-single"),
    pytest.param("media: {bind: 1.2.3}\n", [
        "t.yaml:9: media.bind: must be an IP address, got '1.2.3'"], id="bind-ip"),
    pytest.param("media: {bind: 0.0.0.0}\n", [
        "t.yaml:9: media.bind: needs advertise: 0.0.0.0 is no address peers can send to"],
        id="bind-any-needs-advertise"),
    pytest.param("media: {bind: 0.0.0.0, advertise: '::'}\n", [
        "t.yaml:9: media.advertise: must be an address peers can reach, got ::"],
        id="advertise-any"),
    pytest.param("media: {bind: 10.0.0.1, advertise: '2001:db8::1'}\n", [
        "t.yaml:9: media.advertise: must be IPv4 like bind"], id="advertise-family"),
    pytest.param("media:\n  codecs: [PCMU, G729, PCMU]\n", [
        "t.yaml:10: media.codecs[1]: must be one of PCMU, PCMA, got 'G729'",
        "t.yaml:10: media.codecs[2]: duplicate codec 'PCMU', first at media.codecs[0] "
        "(line 10)"], id="codecs"),
    pytest.param("media: {codecs: []}\n", [
        "t.yaml:9: media.codecs: must have at least one entry"], id="codecs-empty"),
    pytest.param("media: {telephone_event: 95}\n", [
        "t.yaml:9: media.telephone_event: must be between 96 and 127, got 95"], id="te-range"),
    # numbering
    pytest.param("numbering: {national_prefix: '0'}\n", [
        "t.yaml:9: numbering.country_code: is required"], id="cc-required"),
    pytest.param("numbering: {country_code: '084'}\n", [
        "t.yaml:9: numbering.country_code: must be 1-3 digits not starting with 0, "
        "got '084'"], id="cc-pattern"),
    pytest.param("numbering: {country_code: 84, national_prefix: '0', "
                 "international_prefix: '0'}\n", [
        "t.yaml:9: numbering.international_prefix: must differ from national_prefix"],
        id="prefixes-equal"),
    # schedules
    pytest.param("schedules:\n  office:\n    timezone: Asia/Saigonn\n"
                 "hotlines:\n  '19001000':\n    destination: {play: closed}\n"
                 "    schedule: office\n    out_of_hours: {play: closed}\n", [
        "t.yaml:11: schedules.office.timezone: unknown timezone 'Asia/Saigonn' (an IANA "
        "name such as Asia/Ho_Chi_Minh; install tzdata where the system has no zoneinfo)"],
        id="timezone"),
    pytest.param("schedules:\n  office: {weekly: {mon: ['08:00-12:00']}}\n", [
        "t.yaml:10: schedules.office.timezone: is required"], id="timezone-required"),
    pytest.param("schedules:\n  o:\n    timezone: UTC\n    weekly:\n      monday: []\n", [
        "t.yaml:13: schedules.o.weekly.monday: unknown key, did you mean 'mon'?"],
        id="day-key"),
    pytest.param("schedules:\n  o:\n    timezone: UTC\n    weekly:\n"
                 "      tue: ['8-12', '13:00-12:00']\n", [
        "t.yaml:13: schedules.o.weekly.tue[0]: must be HH:MM-HH:MM, got '8-12'",
        "t.yaml:13: schedules.o.weekly.tue[1]: must start before it ends (split a range "
        "over midnight across two days), got '13:00-12:00'"], id="range-bad"),
    pytest.param("schedules:\n  o:\n    timezone: UTC\n    weekly:\n"
                 "      wed: ['13:00-17:00', '08:00-13:30']\n", [
        "t.yaml:13: schedules.o.weekly.wed: ranges 08:00-13:30 and 13:00-17:00 overlap"],
        id="range-overlap"),
    pytest.param("schedules:\n  o:\n    timezone: UTC\n"
                 "    holidays: ['2026-13-01', 2026-01-01, '2026-01-01', x]\n", [
        "t.yaml:12: schedules.o.holidays[0]: is not a real date, got '2026-13-01'",
        "t.yaml:12: schedules.o.holidays[2]: duplicate holiday, first at "
        "schedules.o.holidays[1] (line 12)",
        "t.yaml:12: schedules.o.holidays[3]: must be a date YYYY-MM-DD, got 'x'"],
        id="holidays"),
    pytest.param("schedules:\n  office hours: {timezone: UTC}\n", [
        "t.yaml:10: schedules.office hours: name must contain only letters, digits, '_' "
        "and '-', got 'office hours'"], id="schedule-name"),
    # blacklist
    pytest.param("numbering: {country_code: 84}\n"
                 "blacklist: {numbers: ['0999999999', '+84 999 999 999', '1003'],"
                 " prefixes: ['+', '8']}\n", [
        "t.yaml:10: blacklist.numbers[1]: duplicate entry '+84999999999', first at "
        "blacklist.numbers[0] (line 10)",
        "t.yaml:10: blacklist.numbers[2]: must be a phone number in E.164 (+...), national "
        "or international form, got '1003'",
        "t.yaml:10: blacklist.prefixes[0]: must be a phone number prefix in E.164 (+...), "
        "national or international form, got '+'",
        "t.yaml:10: blacklist.prefixes[1]: must be a phone number prefix in E.164 (+...), "
        "national or international form, got '8'"], id="blacklist-entries"),
    pytest.param("blacklist: {numbers: ['0999999999']}\n", [
        "t.yaml:9: blacklist.numbers[0]: must be a phone number in E.164 (+...), national or "
        "international form, got '0999999999' (national ones need numbering)"],
        id="blacklist-national-without-numbering"),
    pytest.param("blacklist: {action: play}\n", [
        "t.yaml:9: blacklist.prompt: is required"], id="blacklist-play-prompt"),
    pytest.param("blacklist: {action: reject, prompt: blocked}\n", [
        "t.yaml:9: blacklist.prompt: is only used with action: play"],
        id="blacklist-reject-prompt"),
    pytest.param("blacklist: {action: play, prompt: blockd}\n", [
        "t.yaml:9: blacklist.prompt: unknown prompt 'blockd', did you mean 'blocked'?"],
        id="blacklist-prompt-ref"),
    pytest.param("blacklist: {action: drop}\n", [
        "t.yaml:9: blacklist.action: must be one of reject, play, got 'drop'"],
        id="blacklist-action"),
    # hotlines
    pytest.param("hotlines:\n  '19009999': {destination: {play: closed}}\n", [
        "t.yaml:10: hotlines.19009999: is not a hotline of any trunk (list it in a trunk's "
        "hotlines)"], id="hotline-not-on-trunk"),
    pytest.param("hotlines:\n  '19001000': {destination: {play: closed, queue: q}}\n"
                 "  '19002000': {destination: {}}\n"
                 "  '19003000': {}\n", [
        "t.yaml:10: hotlines.19001000.destination: must have exactly one of ivr, queue, "
        "extension, voicemail, play, got queue, play",
        "t.yaml:11: hotlines.19002000.destination: must have exactly one of ivr, queue, "
        "extension, voicemail, play",
        "t.yaml:12: hotlines.19003000.destination: is required"], id="hotline-destination"),
    pytest.param("hotlines:\n  '19001000':\n    destination: {ivr: mian}\n"
                 "  '19002000':\n    destination: {queue: 'sales team'}\n"
                 "  '19003000':\n    destination: {extension: '1009'}\n", [
        "t.yaml:11: hotlines.19001000.destination.ivr: unknown ivr tree 'mian'",
        "t.yaml:13: hotlines.19002000.destination.queue: must contain only letters, digits, "
        "'_' and '-', got 'sales team'",
        "t.yaml:15: hotlines.19003000.destination.extension: unknown account '1009', did "
        "you mean '1002'?"], id="hotline-destination-targets"),
    pytest.param("hotlines:\n  '19001000': {destination: {voicemail: '1001'}}\n", [
        "t.yaml:10: hotlines.19001000.destination.voicemail: needs the voicemail section"],
        id="hotline-voicemail-section"),
    pytest.param("schedules: {o: {timezone: UTC}}\n"
                 "hotlines:\n  '19001000':\n    destination: {play: closed}\n    schedule: o\n"
                 "  '19002000':\n    destination: {play: closed}\n"
                 "    out_of_hours: {play: closed}\n"
                 "  '19003000':\n    destination: {play: closed}\n    schedule: x\n"
                 "    out_of_hours: {play: welcom}\n", [
        "t.yaml:11: hotlines.19001000.out_of_hours: is required",
        "t.yaml:16: hotlines.19002000.out_of_hours: is only used with schedule",
        "t.yaml:19: hotlines.19003000.schedule: unknown schedule 'x'",
        "t.yaml:20: hotlines.19003000.out_of_hours.play: unknown prompt 'welcom', did you "
        "mean 'welcome'?"], id="hotline-schedule"),
    pytest.param("hotlines:\n  '19001000':\n    destination: {play: closed}\n"
                 "    blacklist: {prefixes: ['+1'], action: play}\n", [
        "t.yaml:12: hotlines.19001000.blacklist.prompt: is required"],
        id="hotline-blacklist"),
    # outbound rules
    pytest.param("outbound_rules:\n  - name: r\n    prefixes: ['0']\n    trunks: [t2, t3]\n"
                 "    caller_id: '19009999'\n    allow: ['1001', '2001']\n"
                 "    format: E164\n", [
        "t.yaml:12: outbound_rules[0].trunks[0]: trunk 't2' has no outbound section",
        "t.yaml:12: outbound_rules[0].trunks[1]: unknown trunk 't3'",
        "t.yaml:13: outbound_rules[0].caller_id: unknown hotline '19009999'",
        "t.yaml:14: outbound_rules[0].allow[1]: unknown account '2001', did you mean "
        "'1001'?",
        "t.yaml:15: outbound_rules[0].format: must be one of e164, national, as_dialled, "
        "got 'E164'"], id="outbound-refs"),
    pytest.param("numbering: {country_code: 84}\n"
                 "outbound_rules:\n"
                 "  - {name: a, prefixes: ['0', '+84', x1], trunks: [t1], caller_id: '19001000',"
                 " allow: ['1001']}\n"
                 "  - {name: a, prefixes: ['84'], trunks: [t1], caller_id: '19001000',"
                 " allow: ['1001']}\n"
                 "  - {name: b, prefixes: [], trunks: [], caller_id: '19001000', allow: []}\n", [
        "t.yaml:11: outbound_rules[0].prefixes[2]: must be digits, maybe after +, got 'x1'",
        "t.yaml:12: outbound_rules[1].name: duplicate rule name 'a', first at "
        "outbound_rules[0].name (line 11)",
        "t.yaml:12: outbound_rules[1].prefixes[0]: duplicate prefix '+84', first at "
        "outbound_rules[0].prefixes[0] (line 11)",
        "t.yaml:13: outbound_rules[2].allow: must have at least one entry",
        "t.yaml:13: outbound_rules[2].prefixes: must have at least one entry",
        "t.yaml:13: outbound_rules[2].trunks: must have at least one entry"],
        id="outbound-prefixes"),
    # voicemail
    pytest.param("voicemail: {max_seconds: 30, silence_seconds: 40, prompt: nope}\n", [
        "t.yaml:9: voicemail.prompt: unknown prompt 'nope'",
        "t.yaml:9: voicemail.silence_seconds: must not exceed max_seconds (30), got 40"],
        id="voicemail"),
    pytest.param("voicemail: {max_seconds: 0}\n", [
        "t.yaml:9: voicemail.max_seconds: must be between 1 and 3600, got 0"],
        id="voicemail-max"),
]


@pytest.mark.parametrize(("snippet", "expected"), RULES)
def test_rule(snippet: str, expected: list[str]) -> None:
    assert sorted(errors(snippet)) == sorted(expected)
    assert [int(e.split(":")[1]) for e in errors(snippet)] == sorted(
        int(e.split(":")[1]) for e in expected)


# -- ivr ----------------------------------------------------------------------------------

IVR_RULES = [
    pytest.param("""\
        ivr:
          main:
            start: m
            nodes:
              m:
                menu:
                  prompt: welcome
                  choices: {"1": sale, "2": q}
                  on_timeout: gone
              q: {queue: sales}
              sales: {queue: sales}
        """, [
        "t.yaml:16: ivr.main.nodes.m.menu.choices.1: unknown node 'sale', did you mean "
        "'sales'?",
        "t.yaml:17: ivr.main.nodes.m.menu.on_timeout: unknown node 'gone'",
        "t.yaml:18: ivr.main.nodes.q.queue: unknown queue 'sales'",
        "t.yaml:19: ivr.main.nodes.sales.queue: unknown queue 'sales'",
        "t.yaml:19: ivr.main.nodes.sales: is unreachable from the start node 'm'"],
        id="references"),
    pytest.param("""\
        ivr:
          main:
            start: a
            nodes:
              a: {play: {prompt: welcome, next: b}}
              b: {goto: c}
              c: {top: {}}
        """, [
        "t.yaml:13: ivr.main.nodes.a: loops without waiting for input: a -> b -> c -> a"],
        id="loop"),
    pytest.param("""\
        ivr:
          main:
            start: a
            nodes:
              a: {play: {prompt: welcom, next: b}}
              b: {hangup: {prompt: bye}}
        """, [
        "t.yaml:13: ivr.main.nodes.a.play.prompt: unknown prompt 'welcom', did you mean "
        "'welcome'?",
        "t.yaml:14: ivr.main.nodes.b.hangup.prompt: unknown prompt 'bye'"], id="prompts"),
    pytest.param("""\
        ivr:
          main:
            start: tc
            nodes:
              tc: {time_condition: {schedule: ofice, match: x, otherwise: x}}
              x: {hangup:}
        """, [
        "t.yaml:13: ivr.main.nodes.tc.time_condition.schedule: unknown schedule 'ofice'"],
        id="schedule"),
    pytest.param("""\
        ivr:
          main:
            start: m
            nodes:
              m:
                menu: {prompt: welcome, choices: {"1": q}, timeout: 0, max_invalid: x}
              q: {queue: q}
              z: {unknown: 1}
              y: {menu: {}, queue: q}
              bad name: {queue: q}
              e: {extension: '1009'}
              v: {voicemail: box}
        """, [
        "t.yaml:14: ivr.main.nodes.m.menu.timeout: must be > 0, got 0",
        "t.yaml:14: ivr.main.nodes.m.menu.max_invalid: must be an integer, got a string",
        "t.yaml:15: ivr.main.nodes.q.queue: unknown queue 'q'",
        "t.yaml:16: ivr.main.nodes.z.unknown: unknown key (expected one of: play, menu, "
        "collect, time_condition, goto, back, top, queue, extension, voicemail, hangup)",
        "t.yaml:17: ivr.main.nodes.y: must have exactly one of play, menu, collect, "
        "time_condition, goto, back, top, queue, extension, voicemail, hangup, got menu, "
        "queue",
        "t.yaml:18: ivr.main.nodes.bad name: name must contain only letters, digits, '_' "
        "and '-', got 'bad name'",
        "t.yaml:19: ivr.main.nodes.e.extension: unknown account '1009', did you mean '1002'?",
        "t.yaml:20: ivr.main.nodes.v.voicemail: needs the voicemail section"],
        id="nodes"),
    pytest.param("""\
        ivr:
          main:
            start: c
            nodes:
              c:
                collect:
                  prompt: welcome
                  variable: 1pin
                  min_digits: 4
                  max_digits: 2
                  terminator: "5"
              q: {queue: q}
        """, [
        "t.yaml:14: ivr.main.nodes.c.collect.next: is required",
        "t.yaml:16: ivr.main.nodes.c.collect.variable: must be a name (letters, digits, "
        "'_'), got '1pin'",
        "t.yaml:18: ivr.main.nodes.c.collect.max_digits: must be >= min_digits (4), got 2",
        "t.yaml:19: ivr.main.nodes.c.collect.terminator: must be # or *, got '5'",
        "t.yaml:20: ivr.main.nodes.q.queue: unknown queue 'q'",
        "t.yaml:20: ivr.main.nodes.q: is unreachable from the start node 'c'"],
        id="collect"),
    pytest.param("""\
        ivr:
          main: {start: x}
          other: {start: a, nodes: {}}
        """, [
        "t.yaml:10: ivr.main.nodes: is required",
        "t.yaml:11: ivr.other.nodes: must have at least one node"], id="tree"),
    pytest.param("""\
        ivr:
          main:
            start: wellcome
            nodes:
              welcome: {hangup: }
        """, [
        "t.yaml:11: ivr.main.start: unknown node 'wellcome', did you mean 'welcome'?"],
        id="start"),
]


@pytest.mark.parametrize(("snippet", "expected"), IVR_RULES)
def test_ivr_rule(snippet: str, expected: list[str]) -> None:
    assert sorted(errors(snippet)) == sorted(expected)


def test_ivr_nodes_of_every_kind_load() -> None:
    c = load("""\
        schedules: {office: {timezone: UTC}}
        voicemail: {prompt: closed}
        ivr:
          main:
            start: tc
            nodes:
              tc: {time_condition: {schedule: office, match: m, otherwise: closed}}
              m:
                menu:
                  prompt: welcome
                  choices: {1: c, 2: sub, 0: ext, "*": top, "#": vm}
                  barge_in: false
                  timeout_prompt: closed
              sub: {menu: {prompt: welcome, choices: {"*": back, "9": bye}}}
              c:
                collect:
                  prompt: welcome
                  variable: pin
                  next: q
                  terminator: none
                  inter_digit_timeout: 1.5
              q: {queue: support}
              ext: {extension: "1002"}
              vm: {voicemail: "1001"}
              back: {back: }
              top: {top: {}}
              closed: {play: {prompt: closed, next: bye}}
              bye: {hangup: }
        agents: {"1001": {devices: ["1001"]}}
        queues: {support: {members: ["1001"]}}
        """)
    nodes = c.ivr["main"].nodes
    m = nodes["m"]
    assert isinstance(m, MenuNode) and not m.barge_in and m.timeout_prompt == "closed"
    assert dict(m.choices) == {"1": "c", "2": "sub", "0": "ext", "*": "top", "#": "vm"}
    col = nodes["c"]
    assert isinstance(col, CollectNode)
    assert (col.terminator, col.inter_digit_timeout, col.min_digits, col.max_digits) == (
        None, 1.5, 1, 15)
    assert nodes["q"] == QueueNode("support") and nodes["bye"] == HangupNode(None)
    assert c.referenced_queues == ("support",)
    assert c.queue_refs == (QueueRef("support", "ivr.main.nodes.q.queue", 30),)


# -- prompts ------------------------------------------------------------------------------

PROMPT_HEAD = "sip:\n  listen: [udp:127.0.0.1:5060]\n  domain: acd.local\n"


def test_prompt_files_missing_unreadable_or_silent(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "text.wav").write_text("not a wav")
    (tmp_path / "p" / "empty.wav").write_bytes(  # a valid WAV with no samples
        b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
        + bytes.fromhex("0100 0100 401f0000 803e0000 0200 1000") + b"data" + bytes(4))
    (tmp_path / "p" / "ok.wav").write_bytes((PROMPTS / "welcome.wav").read_bytes())
    text = PROMPT_HEAD + textwrap.dedent("""\
        prompts:
          dir: p
          files:
            missing: nothere.wav
            text: text.wav
            empty: empty.wav
            ok: ok.wav
            "bad name": ok.wav
        """)
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "t.yaml", base_dir=tmp_path)
    p = tmp_path / "p"
    assert [str(x) for x in info.value.problems] == [
        f"t.yaml:7: prompts.files.missing: cannot use {p / 'nothere.wav'}: "
        "No such file or directory",
        f"t.yaml:8: prompts.files.text: cannot use {p / 'text.wav'}: not a RIFF/WAVE file",
        f"t.yaml:9: prompts.files.empty: {p / 'empty.wav'} holds no audio",
        "t.yaml:11: prompts.files.bad name: name must contain only letters, digits, '_' "
        "and '-', got 'bad name'",
    ]
    good = text.replace('    "bad name": ok.wav\n', "").replace(
        "    missing: nothere.wav\n    text: text.wav\n    empty: empty.wav\n", "")
    c = load_config_text(good, base_dir=tmp_path)
    assert dict(c.prompts.files) == {"ok": p / "ok.wav"}


def test_prompt_dir_missing_is_one_problem(tmp_path: Path) -> None:
    text = PROMPT_HEAD + "prompts:\n  dir: nowhere\n  files: {a: a.wav, b: b.wav}\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "t.yaml", base_dir=tmp_path)
    assert [str(x) for x in info.value.problems] == [
        f"t.yaml:5: prompts.dir: no such directory: {tmp_path / 'nowhere'}"]


def test_config_file_resolves_prompts_beside_it(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "w.wav").write_bytes((PROMPTS / "welcome.wav").read_bytes())
    path = tmp_path / "acd.yaml"
    path.write_text(PROMPT_HEAD + "prompts:\n  files: {w: w.wav}\n")
    assert load_config(path).prompts.files["w"] == tmp_path / "prompts" / "w.wav"


# -- values -------------------------------------------------------------------------------


def test_blacklists_and_numbers_are_normalized_at_load() -> None:
    c = load("""\
        numbering: {country_code: 84}
        blacklist:
          numbers: ["0999 999 999", 84888888888, "0084777777777"]
          prefixes: ["0900", "001"]
        hotlines:
          "19001000":
            destination: {play: welcome}
            blacklist: {numbers: ["+1 (555) 010-9999"], action: play, prompt: blocked}
        """)
    assert c.blacklist.numbers == {"+84999999999", "+84888888888", "+84777777777"}
    assert c.blacklist.prefixes == ("+84900", "+1")
    bl = c.hotlines["19001000"].blacklist
    assert bl is not None and bl.numbers == {"+15550109999"} and bl.prompt == "blocked"


def test_schedule_values() -> None:
    c = load("""\
        schedules:
          s:
            timezone: Europe/Paris
            weekly: {sun: ["12:00-24:00", "00:00-06:00"]}
            holidays: [2026-12-25]
        """)
    s = c.schedules["s"]
    assert [str(r) for r in s.ranges("sun")] == ["00:00-06:00", "12:00-24:00"]
    assert s.holidays == {date(2026, 12, 25)}


def test_media_values() -> None:
    c = load("media: {rtp_ports: 10000-10001, bind: '::', advertise: '2001:db8::1',"
             " codecs: [PCMA], telephone_event: 96}\n")
    assert c.media == MediaConfig((10000, 10001), "::", "2001:db8::1", ("PCMA",), 96)
    assert load("media: {bind: 10.0.0.5}\n").media.advertise == "10.0.0.5"


# -- fuzzing ------------------------------------------------------------------------------

FUZZ_HEAD = HEAD.rsplit("prompts:", 1)[0]  # the tree may bring its own prompts section
CALL_KEYS = st.sampled_from([
    "media", "rtp_ports", "codecs", "numbering", "country_code", "prompts", "files",
    "schedules", "office", "timezone", "weekly", "mon", "holidays", "blacklist", "numbers",
    "prefixes", "action", "prompt", "hotlines", "19001000", "destination", "ivr", "queue",
    "play", "schedule", "out_of_hours", "main", "start", "nodes", "menu", "choices", "1",
    "collect", "goto", "back", "top", "hangup", "time_condition", "next", "outbound_rules",
    "name", "trunks", "caller_id", "allow", "voicemail", "max_seconds"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                    st.sampled_from(["welcome", "main", "sales", "office", "UTC", "1001",
                                     "19001000", "08:00-12:00", "demo-trunk", "+84"]))
TREES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(CALL_KEYS, inner, max_size=5)),
    max_leaves=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(CALL_KEYS, TREES, max_size=6))
def test_random_call_sections_raise_only_config_error(tree: dict[str, object]) -> None:
    text = FUZZ_HEAD + yaml.safe_dump(tree)
    try:
        load_config_text(text, "f.yaml", base_dir=DEMO.parent)  # prompts/ is there
    except ConfigError as exc:
        assert all(p.file == "f.yaml" and p.key and p.reason for p in exc.problems)
        assert all(1 <= p.line <= len(text.splitlines()) + 1 for p in exc.problems)
