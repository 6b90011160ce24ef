"""Tests of acd.routing: number normalization and trunk formats, blacklists, working hours,
inbound routes and the outbound toll-fraud guard."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acd.config import Config, Destination, Numbering, load_config, load_config_text
from acd.routing import (
    InboundRoute,
    OutboundRefused,
    OutboundRoute,
    Play,
    Reject,
    check_blacklist,
    format_for_trunk,
    normalize,
    route_inbound,
    route_outbound,
    to_e164,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_config(ROOT / "config" / "acd.yaml")
VN = Numbering("84", "0", "00")
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=HCM)
MONDAY_20 = datetime(2026, 3, 2, 20, 0, tzinfo=HCM)


# -- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["0912345678", "+84912345678", "84912345678",
                                     "0084912345678", "091 234 5678", "+84 (91) 234-5678",
                                     "0912.345.678"])
def test_every_form_of_a_home_number_is_one_e164(written: str) -> None:
    assert normalize(written, VN) == "+84912345678"
    assert to_e164(written, VN) == "+84912345678"


def test_other_numbers() -> None:
    assert normalize("0033123456789", VN) == "+33123456789"
    assert normalize("+33123456789", VN) == "+33123456789"
    assert normalize("1003", VN) == "1003"  # an extension stays as written
    assert normalize("113", VN) == "113"  # a short code too
    assert normalize("anonymous", VN) == "anonymous"
    assert to_e164("1003", VN) is None and to_e164("anonymous", VN) is None
    assert to_e164("+0123", VN) is None  # no country code starts with 0
    # Prefixes normalize the same way.
    assert [normalize(p, VN) for p in ("0", "84", "+84", "0084", "00")] == [
        "+84", "+84", "+84", "+84", "+"]


def test_without_a_country_code_national_numbers_stay() -> None:
    plain = Numbering()
    assert normalize("0912345678", plain) == "0912345678"
    assert normalize("0084912345678", plain) == "+84912345678"
    assert to_e164("0912345678", plain) is None


def test_trunk_formats() -> None:
    n = "+84912345678"
    assert format_for_trunk(n, "e164", VN) == "84912345678"
    assert format_for_trunk(n, "national", VN) == "0912345678"
    assert format_for_trunk("+33123456789", "national", VN) == "0033123456789"
    assert format_for_trunk(n, "as_dialled", VN, "0912 345 678") == "0912345678"
    assert format_for_trunk("113", "e164", VN) == "113"  # not E.164: as it is


NATIONAL = st.from_regex(r"[1-9][0-9]{7,9}", fullmatch=True)


@given(NATIONAL)
def test_home_numbers_round_trip(nsn: str) -> None:
    e164 = "+84" + nsn
    forms = ["0" + nsn, e164, "84" + nsn, "0084" + nsn]
    assert {normalize(f, VN) for f in forms} == {e164}
    assert normalize(normalize(e164, VN), VN) == e164
    for fmt in ("e164", "national"):
        assert normalize(format_for_trunk(e164, fmt, VN), VN) == e164


# A home number whose significant part starts with 0 cannot be written nationally without
# reading as international (0 + 0...): no numbering plan issues such numbers.
@given(st.from_regex(r"\+[1-9][0-9]{6,13}", fullmatch=True).filter(
    lambda n: not n.startswith("+840")))
def test_any_e164_survives_the_national_format(e164: str) -> None:
    assert normalize(format_for_trunk(e164, "national", VN), VN) == e164


@given(st.text(max_size=20))
def test_normalize_never_fails_and_is_idempotent(text: str) -> None:
    once = normalize(text, VN)
    assert normalize(once, VN) == once


# -- blacklists ---------------------------------------------------------------------------


def test_demo_blacklists() -> None:
    assert check_blacklist(DEMO, "19001000", "0999999999") == Reject("global", "+84999999999")
    assert check_blacklist(DEMO, None, "+84 900 000 123") == Reject("global", "+84900000")
    assert check_blacklist(DEMO, "19003000", "0241234567") == Play("blocked", "19003000",
                                                                  "+8424")
    assert check_blacklist(DEMO, "19001000", "0241234567") is None  # only 19003000's list
    assert check_blacklist(DEMO, "19003000", "0912345678") is None
    assert check_blacklist(DEMO, DEMO.hotlines["19003000"], "84241234567") is not None


def config(snippet: str) -> Config:
    head = ("sip:\n  listen: [udp:127.0.0.1:5060]\n  domain: d\n"
            'accounts: [{user: "1001", password: p}, {user: "1002", password: p}]\n'
            "trunks:\n  - {name: t1, inbound: {sources: [127.0.0.1]},"
            ' outbound: {proxy: 127.0.0.1}, hotlines: ["19001000", "19002000"]}\n'
            "  - {name: t2, inbound: {sources: [127.0.0.2]}, outbound: {proxy: 127.0.0.2}}\n"
            "numbering: {country_code: 84}\n"
            "prompts: {files: {closed: closed.wav, blocked: blocked.wav, welcome: welcome.wav}}\n")
    return load_config_text(head + textwrap.dedent(snippet), base_dir=ROOT / "config")


def test_global_list_wins_and_the_longest_prefix_is_reported() -> None:
    c = config("""\
        blacklist: {prefixes: ["+849", "+84912"], action: play, prompt: blocked}
        hotlines:
          "19001000":
            destination: {play: welcome}
            blacklist: {numbers: ["0912345678"]}
        """)
    assert check_blacklist(c, "19001000", "0912345678") == Play("blocked", "global", "+84912")
    route = route_inbound(c, "19001000", "0912345678", MONDAY_10)
    assert (route.outcome, route.kind, route.target) == ("blacklisted", "play", "blocked")


# -- inbound ------------------------------------------------------------------------------


def test_demo_inbound_routes() -> None:
    assert route_inbound(DEMO, "19001000", "0912345678", MONDAY_20) == InboundRoute(
        "19001000", "+84912345678", "open", "ivr", "main")
    assert route_inbound(DEMO, "19002000", "+84912345678", MONDAY_20).destination == (
        Destination("queue", "sales"))
    r = route_inbound(DEMO, "19003000", "0912345678", MONDAY_10)
    assert (r.outcome, r.kind, r.target) == ("open", "ivr", "main")
    r = route_inbound(DEMO, "19003000", "0912345678", MONDAY_20)
    assert (r.outcome, r.kind, r.target) == ("out_of_hours", "play", "closed")


def test_inbound_refusals() -> None:
    r = route_inbound(DEMO, "19001000", "0999999999", MONDAY_10)
    assert (r.outcome, r.kind, r.status, r.destination) == ("blacklisted", "reject", 603, None)
    assert r.blacklist == Reject("global", "+84999999999")
    r = route_inbound(DEMO, "19009999", "0912345678", MONDAY_10)
    assert (r.outcome, r.kind, r.status) == ("no_route", "reject", 404)
    # the hotline's own list plays its prompt even out of hours: blacklists come first
    r = route_inbound(DEMO, "19003000", "0241234567", MONDAY_20)
    assert (r.outcome, r.kind, r.target) == ("blacklisted", "play", "blocked")


def test_working_hours_follow_the_schedule_zone_and_holidays() -> None:
    # 02:30 UTC on Monday is 09:30 in Ho Chi Minh City: open.
    assert route_inbound(DEMO, "19003000", "0912345678",
                         datetime(2026, 3, 2, 2, 30, tzinfo=UTC)).outcome == "open"
    # 12:30 local is the lunch break between two ranges.
    assert route_inbound(DEMO, "19003000", "0912345678",
                         datetime(2026, 3, 2, 12, 30, tzinfo=HCM)).outcome == "out_of_hours"
    # 2026-09-02 is a holiday (a Wednesday): closed all day.
    assert route_inbound(DEMO, "19003000", "0912345678",
                         datetime(2026, 9, 2, 10, 0, tzinfo=HCM)).outcome == "out_of_hours"
    with pytest.raises(ValueError, match="aware"):
        route_inbound(DEMO, "19003000", "0912345678", datetime(2026, 3, 2, 10, 0))


def test_dst_zone_schedule() -> None:
    c = config("""\
        schedules:
          paris: {timezone: Europe/Paris, weekly: {sun: ["09:00-10:00"]}}
        hotlines:
          "19001000":
            destination: {play: welcome}
            schedule: paris
            out_of_hours: {play: closed}
        """)
    # 09:30 Paris is 08:30 UTC in winter (2026-03-22) and 07:30 UTC in summer (03-29).
    for day, utc_hour, outcome in ((22, 8, "open"), (22, 7, "out_of_hours"),
                                   (29, 7, "open"), (29, 8, "out_of_hours")):
        at = datetime(2026, 3, day, utc_hour, 30, tzinfo=UTC)
        assert route_inbound(c, "19001000", "x", at).outcome == outcome, (day, utc_hour)


# -- outbound -----------------------------------------------------------------------------


def refusal(out: OutboundRoute | OutboundRefused) -> str:
    assert isinstance(out, OutboundRefused), out
    return out.reason


def test_demo_outbound() -> None:
    for dialled in ("0912345678", "+84912345678", "84912345678", "0084912345678"):
        assert route_outbound(DEMO, "1001", dialled) == OutboundRoute(
            "vietnam", "84912345678", "+84912345678", ("demo-trunk",), "19001000")


def test_demo_outbound_refuses_what_it_has_no_rule_for() -> None:
    # The vietnam rule's prefix "0" must not let 00 (international) calls out.
    assert route_outbound(DEMO, "1001", "0033123456789") == OutboundRefused(
        "no rule", "no outbound rule matches +33123456789")
    assert refusal(route_outbound(DEMO, "1001", "19001234")) == "no rule"
    assert refusal(route_outbound(DEMO, "1001", "sip:evil")) == "no rule"
    assert refusal(route_outbound(DEMO, "1001", "+84" + "9" * 20)) == "no rule"
    refused = route_outbound(DEMO, "2000", "0912345678")
    assert refused == OutboundRefused("not allowed", "2000 may not use rule vietnam",
                                      "vietnam")


RULES = """\
    outbound_rules:
      - {name: home, prefixes: ["0"], format: national, trunks: [t1, t2],
         caller_id: "19001000", allow: ["1001", "1002"]}
      - {name: world, prefixes: ["00"], trunks: [t2], caller_id: "19002000",
         allow: ["1001"]}
      - {name: premium, prefixes: ["1900"], format: as_dialled, trunks: [t1],
         caller_id: "19001000", allow: ["1001"]}
    """


def test_longest_prefix_chooses_the_rule() -> None:
    c = config(RULES)
    assert route_outbound(c, "1002", "0912345678") == OutboundRoute(
        "home", "0912345678", "+84912345678", ("t1", "t2"), "19001000")
    assert route_outbound(c, "1001", "0033123456789") == OutboundRoute(
        "world", "33123456789", "+33123456789", ("t2",), "19002000")
    assert route_outbound(c, "1001", "1900 1234") == OutboundRoute(
        "premium", "19001234", "19001234", ("t1",), "19001000")


def test_a_disallowed_rule_does_not_fall_back_to_a_shorter_prefix() -> None:
    c = config(RULES)
    # "+" (world) matches +33..., and nothing shorter may take it for 1002.
    assert refusal(route_outbound(c, "1002", "0033123456789")) == "not allowed"
    assert refusal(route_outbound(c, "1002", "19001234")) == "not allowed"
    route = route_outbound(c, "1002", "+84912345678")
    assert isinstance(route, OutboundRoute) and route.rule == "home"


@given(st.text(alphabet="0123456789+ -", max_size=18), st.sampled_from(["1001", "1002",
                                                                          "9999"]))
def test_outbound_only_routes_allowed_users_through_matching_rules(dialled: str,
                                                                   user: str) -> None:
    c = CONFIG_WITH_RULES
    out = route_outbound(c, user, dialled)
    if isinstance(out, OutboundRoute):
        rule = next(r for r in c.outbound_rules if r.name == out.rule)
        assert user in rule.allow
        assert any(out.normalized.startswith(p) for p in rule.match_prefixes)
        longest = max(len(p) for r in c.outbound_rules for p in r.match_prefixes
                      if out.normalized.startswith(p))
        assert any(len(p) == longest for p in rule.match_prefixes)
    else:
        assert out.reason in ("no rule", "not allowed")


CONFIG_WITH_RULES = config(RULES)
