"""Banning source addresses that keep failing digest authentication, seen from the wire:
a banned address gets silence, everyone else carries on, trusted networks are never banned,
and the ban ends on time."""

from __future__ import annotations

from .enginefakes import UA, Rig, config_text

REG_URI = "sip:acd.local"
ATTACKER = "203.0.113.9"


def fail_once(ua: UA) -> list[int]:
    """One REGISTER with a wrong password answering a fresh challenge; the statuses seen."""
    first = ua.send(ua.register())
    if not first:
        return []
    assert first[0].status == 401
    wrong = ua.answer(first[0], "REGISTER", REG_URI, password="not-the-password")
    return [r.status for r in ua.send(ua.register(authorization=wrong))]


def options(ua: UA) -> bytes:
    return ua.request("OPTIONS", REG_URI)


def test_max_failures_in_window_bans_the_source() -> None:
    rig = Rig(config_text(max_failures=5))
    ua = UA(rig, ip=ATTACKER)
    for _ in range(4):
        assert fail_once(ua) == [401]
    assert rig.events_of("security.banned") == []
    assert rig.metric("acd_auth_bans_total") == 0

    assert fail_once(ua) == [401]  # the fifth failure is still answered, then the ban starts
    (ev,) = rig.events_of("security.banned")
    assert ev.data == {"source": ATTACKER, "until": rig.clock.wall() + 600}
    assert rig.metric("acd_auth_bans_total") == 1

    # from now on: nothing at all goes back, whatever is sent
    for data in (options(ua), ua.register(), ua.invite("1002"), b"garbage\r\n\r\n"):
        assert rig.deliver(data, ua.addr) == []
    # the same address from another port is the same attacker
    other_port = UA(rig, ip=ATTACKER, port=40000)
    assert rig.deliver(options(other_port), other_port.addr) == []
    assert rig.metric("acd_sip_dropped_banned_total") == 5
    rig.tick()
    assert rig.metric("acd_auth_banned_sources") == 1


def test_correct_password_from_banned_source_is_dropped_too() -> None:
    rig = Rig(config_text(max_failures=2))
    ua = UA(rig, ip=ATTACKER)
    fail_once(ua)
    fail_once(ua)
    assert rig.deliver(ua.register(), ua.addr) == []
    assert rig.engine.registrations.registrar.lookup("1001") == []


def test_other_source_is_unaffected_by_a_ban() -> None:
    rig = Rig(config_text(max_failures=3))
    attacker = UA(rig, ip=ATTACKER)
    for _ in range(3):
        fail_once(attacker)
    neighbour = UA(rig, ip="203.0.113.10")
    assert neighbour.send_one(options(neighbour)).status == 200
    assert neighbour.register_authed().status == 200


def test_failures_outside_the_window_do_not_add_up() -> None:
    rig = Rig(config_text(max_failures=3))
    ua = UA(rig, ip=ATTACKER)
    fail_once(ua)
    fail_once(ua)
    rig.clock.advance(60)  # window is 60 s: the first two no longer count
    assert fail_once(ua) == [401]
    assert fail_once(ua) == [401]
    assert rig.events_of("security.banned") == []
    assert fail_once(ua) == [401]
    assert len(rig.events_of("security.banned")) == 1


def test_challenges_without_credentials_are_not_failures() -> None:
    rig = Rig(config_text(max_failures=2))
    ua = UA(rig, ip=ATTACKER)
    for _ in range(10):
        assert ua.send_one(ua.register()).status == 401
    assert rig.events_of("security.banned") == []


def test_trusted_network_is_never_banned() -> None:
    rig = Rig(config_text(max_failures=2, trusted="192.0.2.0/24, 10.9.0.0/16"))
    ua = UA(rig, ip="192.0.2.77")
    for _ in range(10):
        assert fail_once(ua) == [401]
    assert rig.events_of("security.banned") == []
    assert rig.metric("acd_auth_bans_total") == 0
    assert ua.send_one(options(ua)).status == 200


def test_demo_config_trusts_loopback() -> None:
    rig = Rig()  # demo: max_failures 20, trusted 127.0.0.0/8
    ua = UA(rig, ip="127.0.0.5")
    for _ in range(25):
        assert fail_once(ua) == [401]
    assert rig.events_of("security.banned") == []


def test_ban_lifts_after_ban_time() -> None:
    rig = Rig(config_text(max_failures=2))
    ua = UA(rig, ip=ATTACKER)
    fail_once(ua)
    fail_once(ua)
    rig.clock.advance(599.5)
    assert rig.deliver(options(ua), ua.addr) == []
    rig.clock.advance(0.5)  # ban_time is 600
    assert ua.send_one(options(ua)).status == 200
    rig.tick()
    assert rig.metric("acd_auth_banned_sources") == 0
    # the slate is clean: one more failure does not re-ban at once
    assert fail_once(ua) == [401]
    assert len(rig.events_of("security.banned")) == 1
    assert ua.register_authed().status == 200


def test_failed_authentications_are_counted_in_metrics() -> None:
    rig = Rig(config_text(max_failures=10))
    ua = UA(rig, ip=ATTACKER)
    ua.send_one(ua.register())  # a bare challenge is not a failure
    for _ in range(3):
        fail_once(ua)
    assert rig.metric("acd_auth_failures_total") == 3
