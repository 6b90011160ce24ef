"""Reloading the configuration in memory: `Engine.apply_config` changes what the next request
sees, and keeps what is already running (bindings, nonces, bans, trunk registrations) unless
the section it depends on changed."""

from __future__ import annotations

from acd.config import load_config_text
from sip.authparams import parse_auth_value
from sip.builder import make_response
from sip.message import Request

from .enginefakes import UA, Rig, Sent, config_text

REG_URI = "sip:acd.local"


def with_min_expires(n: int, *, max_failures: int = 5) -> str:
    return config_text(max_failures=max_failures).replace("min_expires: 60", f"min_expires: {n}")


def test_raised_min_expires_applies_to_next_register_and_bindings_stay() -> None:
    rig = Rig(config_text())
    agent = UA(rig, "1001", "pass1001")
    other = UA(rig, "1002", "pass1002", port=5064)
    assert agent.register_authed(expires=120).status == 200
    events, ops = len(rig.events), len(rig.ops)

    rig.engine.apply_config(load_config_text(with_min_expires(300)))
    assert rig.events[events:] == []  # a reload publishes nothing about bindings
    assert rig.ops[ops:] == []
    assert len(rig.engine.registrations.registrar.lookup("1001")) == 1

    resp = other.register_authed(expires=120)
    assert resp.status == 423
    assert resp.headers.get("min-expires") == "300"
    assert other.register_authed(expires=300).status == 200
    # the existing binding keeps its old lifetime and expires on its own schedule
    (b,) = rig.engine.registrations.registrar.lookup("1001")
    assert b.expires_at == rig.clock.wall() + 120


def test_lowered_min_expires_accepts_shorter_registrations() -> None:
    rig = Rig(config_text())
    ua = UA(rig)
    assert ua.register_authed(expires=30).status == 423
    rig.engine.apply_config(load_config_text(with_min_expires(20)))
    resp = ua.register_authed(expires=30)
    assert resp.status == 200
    assert resp.headers.get_all("contact") == ["<sip:1001@127.0.0.1:5062>;expires=30"]


def test_nonce_survives_a_reload_that_does_not_touch_security() -> None:
    rig = Rig(config_text())
    ua = UA(rig)
    challenge = ua.send_one(ua.register())
    rig.engine.apply_config(load_config_text(with_min_expires(120)))
    resp = ua.send_one(ua.register(authorization=ua.answer(challenge, "REGISTER", REG_URI)))
    assert resp.status == 200


def test_nonce_from_before_a_security_change_is_stale_not_failed() -> None:
    rig = Rig(config_text(algorithms="MD5"))
    ua = UA(rig)
    challenge = ua.send_one(ua.register())
    rig.clock.advance(1)
    rig.engine.apply_config(load_config_text(config_text(algorithms="MD5, SHA-256")))
    resp = ua.send_one(ua.register(authorization=ua.answer(challenge, "REGISTER", REG_URI)))
    assert resp.status == 401
    values = resp.headers.get_all("www-authenticate")
    params = [parse_auth_value(v)[1] for v in values]
    assert [p["algorithm"] for p in params] == ["MD5", "SHA-256"]
    assert all(p["stale"] == "true" for p in params)
    assert rig.engine.auth.failures == 0
    ok = ua.send_one(ua.register(authorization=ua.answer(resp, "REGISTER", REG_URI)))
    assert ok.status == 200


def test_removed_account_can_no_longer_register_but_its_binding_stays() -> None:
    rig = Rig(config_text())
    ua = UA(rig, "1002", "pass1002")
    assert ua.register_authed().status == 200
    text = config_text().replace('  - {user: "1002", password: pass1002}\n', "")
    new = load_config_text(text)
    assert "1002" not in {a.user for a in new.accounts}
    rig.engine.apply_config(new)
    assert ua.register_authed().status == 401
    assert len(rig.engine.registrations.registrar.lookup("1002")) == 1


def test_changed_password_takes_effect() -> None:
    rig = Rig(config_text())
    rig.engine.apply_config(load_config_text(
        config_text().replace("password: pass1002", "password: newpass")))
    assert UA(rig, "1002", "pass1002").register_authed().status == 401
    assert UA(rig, "1002", "newpass", port=5070).register_authed().status == 200


def test_active_ban_survives_an_unrelated_reload() -> None:
    rig = Rig(config_text(max_failures=2))
    ua = UA(rig, ip="203.0.113.9")
    for _ in range(2):
        first = ua.send_one(ua.register())
        ua.send(ua.register(authorization=ua.answer(first, "REGISTER", REG_URI,
                                                    password="bad")))
    assert rig.deliver(ua.request("OPTIONS", REG_URI), ua.addr) == []
    rig.engine.apply_config(load_config_text(with_min_expires(120, max_failures=2)))
    assert rig.deliver(ua.request("OPTIONS", REG_URI), ua.addr) == []


def test_trusting_a_network_by_reload_lifts_its_ban() -> None:
    rig = Rig(config_text(max_failures=2))
    ua = UA(rig, ip="203.0.113.9")
    for _ in range(2):
        first = ua.send_one(ua.register())
        ua.send(ua.register(authorization=ua.answer(first, "REGISTER", REG_URI,
                                                    password="bad")))
    assert rig.deliver(ua.request("OPTIONS", REG_URI), ua.addr) == []
    rig.engine.apply_config(load_config_text(config_text(max_failures=2,
                                                         trusted="203.0.113.0/24")))
    assert ua.send_one(ua.request("OPTIONS", REG_URI)).status == 200


# -- trunks across a reload ---------------------------------------------------------------------

PROXY = ("udp", "198.51.100.1", 5060)


def trunk_text(password: str = "secret") -> str:
    return config_text(trunks=(
        "trunks:\n"
        "  - name: prov\n"
        '    inbound: {sources: ["198.51.100.1"]}\n'
        "    outbound:\n"
        "      proxy: 198.51.100.1:5060\n"
        f"      register: {{username: acct, password: {password}, expires: 120}}\n"
        "    options_ping: 0\n"
    ))


def registers(rig: Rig, sent: list[Sent] | None = None) -> list[Request]:
    out = rig.net.take() if sent is None else sent
    return [s.request for s in out if s.addr == PROXY and isinstance(s.msg, Request)
            and s.msg.method == "REGISTER"]


def test_unchanged_trunk_is_not_re_registered_on_reload() -> None:
    rig = Rig(trunk_text())
    assert len(registers(rig)) == 1
    rig.engine.apply_config(load_config_text(trunk_text()))
    assert registers(rig) == []


def test_changed_trunk_credentials_restart_registration() -> None:
    rig = Rig(trunk_text())
    (first,) = registers(rig)
    rig.engine.apply_config(load_config_text(trunk_text(password="rotated")))
    (again,) = registers(rig)
    assert again.call_id != first.call_id  # a fresh registration, not a refresh
    assert "rotated" not in again.serialize().decode()


def test_answer_to_a_register_from_before_the_reload_is_ignored() -> None:
    rig = Rig(trunk_text())
    (old,) = registers(rig)
    rig.engine.apply_config(load_config_text(trunk_text(password="rotated")))
    (new,) = registers(rig)
    # the provider answers the old attempt late: it says nothing about the new credentials
    rig.deliver(make_response(old, 403, to_tag="p").serialize(), PROXY)
    (snap,) = rig.engine.trunks.snapshot()
    assert snap["registration"]["state"] == "registering"
    rig.deliver(make_response(new, 200, to_tag="p").serialize(), PROXY)
    (snap,) = rig.engine.trunks.snapshot()
    assert snap["registration"]["state"] == "registered"
    # and no retry timer of the old failure fires: the next REGISTER is the refresh at 90 s
    sent = [(round(rig.clock.now(), 2), r) for r in registers(rig, rig.advance(89.75))]
    assert sent == []
    assert len(registers(rig, rig.advance(0.25))) == 1


def test_removed_trunk_stops_its_timers() -> None:
    rig = Rig(trunk_text())
    rig.net.take()
    rig.engine.apply_config(load_config_text(config_text()))
    assert rig.engine.trunks.snapshot() == []
    # the pending REGISTER times out (Timer F) without resurrecting the trunk or retrying
    later = rig.advance(400)
    assert [r for r in registers(rig, later) if r.headers.get("cseq") != "1 REGISTER"] == []
    assert rig.engine.trunks.snapshot() == []


def ping_text(options_ping: int) -> str:
    return config_text(trunks=(
        "trunks:\n"
        "  - name: prov\n"
        '    inbound: {sources: ["198.51.100.1"]}\n'
        "    outbound: {proxy: 198.51.100.1:5060}\n"
        f"    options_ping: {options_ping}\n"
    ))


def pings(sent: list[Sent]) -> list[Request]:
    return [s.request for s in sent if s.addr == PROXY and isinstance(s.msg, Request)
            and s.msg.method == "OPTIONS"]


def test_changed_ping_interval_pings_at_once_even_with_an_old_ping_pending() -> None:
    rig = Rig(ping_text(30))
    (old,) = pings(rig.advance(0.5))
    rig.engine.apply_config(load_config_text(ping_text(10)))
    new = [p for p in pings(rig.advance(0.5)) if p.top_via.branch != old.top_via.branch]
    assert len(new) == 1
    # the late answer to the old ping does not count; the new one does
    rig.deliver(make_response(old, 503, to_tag="p").serialize(), PROXY)
    (snap,) = rig.engine.trunks.snapshot()
    assert snap["health"]["state"] == "unknown"
    rig.deliver(make_response(new[0], 200, to_tag="p").serialize(), PROXY)
    (snap,) = rig.engine.trunks.snapshot()
    assert snap["health"]["state"] == "up"


def test_answer_for_a_removed_trunk_leaves_no_gauge_behind() -> None:
    rig = Rig(ping_text(30))
    (ping,) = pings(rig.advance(0.5))
    rig.engine.apply_config(load_config_text(config_text()))
    rig.deliver(make_response(ping, 200, to_tag="p").serialize(), PROXY)
    assert rig.metric("acd_trunk_up", {"trunk": "prov"}) is None
    assert rig.events_of("trunk.health") == []
