"""Qualifying registered contacts: engine.tick() sends them OPTIONS, a 200 marks them
reachable with a round-trip time, silence until Timer F marks them unreachable."""

from __future__ import annotations

import itertools

import pytest

from sip.builder import make_response
from sip.message import Request

from .enginefakes import UA, Rig, Sent, config_text


def pings_to(rig: Rig, ua: UA, sent: list[Sent]) -> list[Request]:
    return [s.request for s in sent if s.addr == ua.addr and isinstance(s.msg, Request)]


def first_ping(rig: Rig, ua: UA, within: int = 30) -> Request:
    """Tick once a second until the contact is pinged (at most `within` ticks)."""
    for _ in range(within):
        rig.clock.advance(1)
        got = pings_to(rig, ua, rig.tick())
        if got:
            assert len(got) == 1
            return got[0]
    raise AssertionError(f"not pinged within {within} ticks")


def answer(rig: Rig, ua: UA, ping: Request, status: int = 200) -> None:
    resp = make_response(ping, status, to_tag="phone")
    assert rig.deliver(resp.serialize(), ua.addr) == []


def binding_state(rig: Rig) -> dict[str, object]:
    (b,) = rig.engine.registrations.snapshot()
    return b


def registered(qualify_interval: int = 30) -> tuple[Rig, UA]:
    rig = Rig(config_text(qualify_interval=qualify_interval))
    ua = UA(rig)
    assert ua.register_authed().status == 200
    return rig, ua


def test_tick_sends_options_to_the_registered_contact() -> None:
    rig, ua = registered()
    ping = first_ping(rig, ua)
    assert ping.method == "OPTIONS"
    assert str(ping.uri) == "sip:1001@127.0.0.1:5062"
    assert ping.headers.get("to") == "<sip:1001@127.0.0.1:5062>"
    assert ping.top_via.branch and ping.top_via.branch.startswith("z9hG4bK")
    assert binding_state(rig)["reachable"] is None


def test_200_marks_reachable_with_rtt() -> None:
    rig, ua = registered()
    ping = first_ping(rig, ua)
    rig.clock.advance(0.04)
    answer(rig, ua, ping)
    b = binding_state(rig)
    assert b["reachable"] is True
    assert b["rtt_ms"] == 40.0
    (ev,) = rig.events_of("registration.reachability")
    assert ev.data == {"aor": "1001", "contact": "sip:1001@127.0.0.1:5062", "reachable": True}


def test_no_answer_marks_unreachable_on_timer_f() -> None:
    rig, ua = registered()
    ping = first_ping(rig, ua)
    resent = pings_to(rig, ua, rig.advance(31.75))
    assert resent and all(p.top_via.branch == ping.top_via.branch for p in resent)
    assert binding_state(rig)["reachable"] is None
    rig.advance(0.25)  # Timer F: 64 * T1
    b = binding_state(rig)
    assert b["reachable"] is False
    assert b["rtt_ms"] is None
    (ev,) = rig.events_of("registration.reachability")
    assert ev.data["reachable"] is False
    rig.tick()
    assert rig.metric("acd_registrations_unreachable") == 1


def test_reachability_event_only_on_change() -> None:
    rig, ua = registered(qualify_interval=1)
    for _ in range(3):
        pings = pings_to(rig, ua, rig.tick())
        assert len(pings) == 1
        answer(rig, ua, pings[0])
        rig.clock.advance(1)
    assert len(rig.events_of("registration.reachability")) == 1


def test_unreachable_contact_that_answers_again_is_reachable() -> None:
    rig, ua = registered()
    first_ping(rig, ua)
    rig.advance(32)
    assert binding_state(rig)["reachable"] is False
    ping = first_ping(rig, ua)
    answer(rig, ua, ping)
    assert binding_state(rig)["reachable"] is True
    assert [e.data["reachable"] for e in rig.events_of("registration.reachability")] == [
        False, True]
    rig.tick()
    assert rig.metric("acd_registrations_unreachable") == 0


def test_a_contact_is_pinged_once_per_interval_not_every_tick() -> None:
    rig, ua = registered(qualify_interval=30)
    times = []
    for second in range(90):
        for ping in pings_to(rig, ua, rig.tick()):
            times.append(second)
            answer(rig, ua, ping)
        rig.clock.advance(1)
        rig.timers.run_due(rig.clock.now())
    assert len(times) == 3, times
    assert [b - a for a, b in itertools.pairwise(times)] == [30, 30]


@pytest.mark.parametrize(("contacts", "interval"), [(20, 10), (5, 10), (7, 3)])
def test_many_contacts_are_spread_over_the_interval(contacts: int, interval: int) -> None:
    rig = Rig(config_text(qualify_interval=interval, max_contacts=contacts))
    phones = [UA(rig, port=6000 + i) for i in range(contacts)]
    for p in phones:
        assert p.register_authed().status == 200
    per_tick = []
    pinged: dict[int, int] = {}
    for _ in range(interval):
        rig.clock.advance(1)
        sent = rig.tick()
        n = 0
        for p in phones:
            for ping in pings_to(rig, p, sent):
                answer(rig, p, ping)
                pinged[p.addr[2]] = pinged.get(p.addr[2], 0) + 1
                n += 1
        per_tick.append(n)
    # each exactly once per interval, and never more than the fair share (rounded up) a tick
    assert sorted(pinged.values()) == [1] * contacts
    assert max(per_tick) == -(-contacts // interval)


def test_qualify_off_sends_nothing() -> None:
    rig, _ = registered(qualify_interval=0)
    for _ in range(5):
        assert rig.tick() == []
        rig.clock.advance(1)


def test_expired_contact_is_not_pinged() -> None:
    rig = Rig(config_text(qualify_interval=1))
    ua = UA(rig)
    ua.register_authed(expires=60)
    rig.clock.advance(61)
    assert pings_to(rig, ua, rig.tick()) == []
    assert rig.engine.registrations.registrar.lookup("1001") == []


def test_ipv6_contact_is_pinged_from_the_ipv6_listener() -> None:
    rig = Rig()  # demo config: listens on [::1]:5060 too, 1001 may register from ::1
    ua = UA(rig, ip="::1", port=5062)
    resp = ua.register_authed()
    assert resp.status == 200
    assert resp.headers.get_all("contact") == ["<sip:1001@[::1]:5062>;expires=3600"]
    (b,) = rig.engine.registrations.registrar.lookup("1001")
    assert b.source == "udp:[::1]:5062"
    ping = first_ping(rig, ua)
    assert str(ping.uri) == "sip:1001@[::1]:5062"
    assert ping.top_via.host == "[::1]" and ping.top_via.port == 5060


def test_tcp_contact_is_pinged_over_tcp() -> None:
    rig = Rig(config_text(qualify_interval=1))
    ua = UA(rig, transport="tcp", port=40001)
    assert ua.register_authed().status == 200
    (b,) = rig.engine.registrations.registrar.lookup("1001")
    assert b.source == "tcp:127.0.0.1:40001"
    ping = first_ping(rig, ua)
    assert ping.top_via.transport == "TCP"
    # no retransmissions over a reliable transport, and Timer F still ends it
    assert pings_to(rig, ua, rig.advance(31.75)) == []
    rig.advance(0.25)
    assert binding_state(rig)["reachable"] is False
