"""REGISTER through the whole engine: digest challenges and their answers, the registrar
bindings, their events and store operations, expiry, and every way authentication can fail
without letting the outside learn which extensions exist."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from acd.adapters.store import DeleteBinding, UpsertBinding
from sip.auth import build_authorization
from sip.authparams import parse_auth_value

from .enginefakes import UA, WALL0, Rig, config_text, mask

REG_URI = "sip:acd.local"


def challenge_params(resp_values: list[str]) -> list[dict[str, str]]:
    out = []
    for v in resp_values:
        scheme, params = parse_auth_value(v)
        assert scheme == "Digest"
        out.append(params)
    return out


# -- challenges and successful registration -------------------------------------------------


def test_first_register_is_challenged_with_md5_from_demo_config() -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.send_one(ua.register())
    assert resp.status == 401
    assert resp.reason == "Unauthorized"
    values = resp.headers.get_all("www-authenticate")
    assert len(values) == 1
    (params,) = challenge_params(values)
    assert params["realm"] == "acd.local"
    assert params["algorithm"] == "MD5"
    assert params["qop"] == "auth"
    assert "stale" not in params
    assert resp.to.tag  # a final response carries a To tag
    assert rig.engine.registrations.registrar.lookup("1001") == []
    assert rig.ops == []


def test_challenges_follow_configured_algorithm_order_with_one_nonce() -> None:
    rig = Rig(config_text(algorithms="SHA-256, MD5"))
    ua = UA(rig)
    resp = ua.send_one(ua.register())
    assert resp.status == 401
    params = challenge_params(resp.headers.get_all("www-authenticate"))
    assert [p["algorithm"] for p in params] == ["SHA-256", "MD5"]
    assert params[0]["nonce"] == params[1]["nonce"]
    assert all(p["realm"] == "acd.local" and p["qop"] == "auth" for p in params)


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_authenticated_register_creates_binding_event_and_store_op(algorithm: str) -> None:
    rig = Rig(config_text(algorithms="SHA-256, MD5"))
    ua = UA(rig, port=5070)
    resp = ua.register_authed(expires=1800, algorithm=algorithm)

    assert resp.status == 200
    assert resp.headers.get_all("contact") == ["<sip:1001@127.0.0.1:5070>;expires=1800"]
    assert resp.headers.get("date") == formatdate(WALL0, usegmt=True)
    assert resp.call_id == ua.call_id

    (b,) = rig.engine.registrations.registrar.lookup("1001")
    assert b.contact == "sip:1001@127.0.0.1:5070"
    assert b.source == "udp:127.0.0.1:5070"
    assert b.expires_at == WALL0 + 1800

    (op,) = rig.ops
    assert isinstance(op, UpsertBinding)
    assert op.row.aor == "1001"
    assert op.row.contact == "sip:1001@127.0.0.1:5070"
    assert op.row.expires_at == WALL0 + 1800

    (ev,) = rig.events_of("registration.added")
    assert ev.call_id == ua.call_id
    assert ev.data["aor"] == "1001"
    assert ev.data["contact"] == "sip:1001@127.0.0.1:5070"
    assert ev.data["source"] == "udp:127.0.0.1:5070"
    rig.tick()  # gauges are refreshed by the housekeeping tick
    assert rig.metric("acd_registrations") == 1


def test_sha256_answer_is_rejected_when_only_md5_is_offered() -> None:
    # the demo config offers MD5 only: an SHA-256 response must not be accepted
    rig = Rig(config_text(algorithms="MD5"))
    ua = UA(rig)
    first = ua.send_one(ua.register())
    (params,) = challenge_params(first.headers.get_all("www-authenticate"))
    forged = build_authorization({**params, "algorithm": "SHA-256"}, "REGISTER", REG_URI,
                                 "1001", "pass1001", "cn", 1)
    resp = ua.send_one(ua.register(authorization=forged))
    assert resp.status == 400
    assert rig.engine.registrations.registrar.lookup("1001") == []


def test_expires_header_defaults_and_max_clamp() -> None:
    rig = Rig(config_text())
    ua = UA(rig)
    # no Expires at all: default_expires (3600)
    resp = ua.register_authed(expires=None)
    assert resp.headers.get_all("contact") == ["<sip:1001@127.0.0.1:5062>;expires=3600"]
    # more than max_expires (7200): clamped
    resp = ua.register_authed(expires=100000)
    assert resp.headers.get_all("contact") == ["<sip:1001@127.0.0.1:5062>;expires=7200"]


def test_refresh_publishes_refreshed_and_upserts_again() -> None:
    rig = Rig()
    ua = UA(rig)
    assert ua.register_authed(expires=600).status == 200
    rig.clock.advance(100)
    resp = ua.register_authed(expires=600)
    assert resp.status == 200
    assert resp.headers.get_all("contact") == ["<sip:1001@127.0.0.1:5062>;expires=600"]
    assert [e.type for e in rig.events if e.type.startswith("registration.")] == [
        "registration.added", "registration.refreshed"]
    assert rig.events_of("registration.refreshed")[0].call_id == ua.call_id
    assert [type(op) for op in rig.ops] == [UpsertBinding, UpsertBinding]
    (b,) = rig.engine.registrations.registrar.lookup("1001")
    assert b.expires_at == WALL0 + 100 + 600
    assert b.registered_at == WALL0  # a refresh keeps the original registration time


def test_expires_zero_removes_binding() -> None:
    rig = Rig()
    ua = UA(rig)
    ua.register_authed(expires=600)
    resp = ua.register_authed(expires=0)
    assert resp.status == 200
    assert resp.headers.get_all("contact") == []
    assert rig.engine.registrations.registrar.lookup("1001") == []
    (ev,) = rig.events_of("registration.removed")
    assert ev.data["reason"] == "unregistered"
    assert ev.call_id == ua.call_id
    assert rig.ops[-1] == DeleteBinding("1001", "sip:1001@127.0.0.1:5062")
    rig.tick()  # gauges are refreshed by the housekeeping tick
    assert rig.metric("acd_registrations") == 0


def test_wildcard_removes_every_binding_of_the_aor() -> None:
    rig = Rig()
    phone = UA(rig, port=5062)
    desk = UA(rig, port=5064)
    phone.register_authed()
    desk.register_authed()
    assert len(rig.engine.registrations.registrar.lookup("1001")) == 2

    resp = phone.register_authed(expires=0, contact="*")
    assert resp.status == 200
    assert rig.engine.registrations.registrar.lookup("1001") == []
    removed = rig.events_of("registration.removed")
    assert sorted(e.data["contact"] for e in removed) == [
        "sip:1001@127.0.0.1:5062", "sip:1001@127.0.0.1:5064"]
    deletes = [op for op in rig.ops if isinstance(op, DeleteBinding)]
    assert len(deletes) == 2


def test_wildcard_without_expires_zero_is_400() -> None:
    rig = Rig()
    ua = UA(rig)
    ua.register_authed()
    resp = ua.register_authed(expires=60, contact="*")
    assert resp.status == 400
    assert len(rig.engine.registrations.registrar.lookup("1001")) == 1


def test_register_without_contact_lists_bindings_and_changes_nothing() -> None:
    rig = Rig()
    ua = UA(rig)
    ua.register_authed(expires=600)
    events_before, ops_before = len(rig.events), len(rig.ops)
    rig.clock.advance(10)
    first = ua.send_one(ua.request("REGISTER", REG_URI))
    auth = ua.answer(first, "REGISTER", REG_URI)
    resp = ua.send_one(ua.request("REGISTER", REG_URI, headers=[("Authorization", auth)]))
    assert resp.status == 200
    assert resp.headers.get_all("contact") == ["<sip:1001@127.0.0.1:5062>;expires=590"]
    assert rig.events[events_before:] == []
    assert rig.ops[ops_before:] == []


def test_binding_expires_on_tick_once_wall_clock_passes_expires_at() -> None:
    rig = Rig()
    ua = UA(rig)
    ua.register_authed(expires=120)
    rig.clock.advance(119.4)
    rig.tick()
    assert rig.events_of("registration.expired") == []
    assert len(rig.engine.registrations.registrar.lookup("1001")) == 1

    rig.clock.advance(0.6)
    rig.tick()
    (ev,) = rig.events_of("registration.expired")
    assert ev.data["aor"] == "1001"
    assert ev.data["contact"] == "sip:1001@127.0.0.1:5062"
    assert ev.call_id is None
    assert rig.engine.registrations.registrar.lookup("1001") == []
    assert rig.ops[-1] == DeleteBinding("1001", "sip:1001@127.0.0.1:5062")
    assert rig.metric("acd_registrations") == 0


def test_refreshed_binding_does_not_expire_at_its_old_time() -> None:
    rig = Rig()
    ua = UA(rig)
    ua.register_authed(expires=120)
    rig.clock.advance(100)
    ua.register_authed(expires=120)
    rig.clock.advance(30)  # past the first expires_at, before the refreshed one
    rig.tick()
    assert rig.events_of("registration.expired") == []
    assert len(rig.engine.registrations.registrar.lookup("1001")) == 1


@pytest.mark.parametrize("expires", [1, 30, 59])
def test_interval_too_brief_is_423_with_min_expires(expires: int) -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.register_authed(expires=expires)
    assert resp.status == 423
    assert resp.headers.get("min-expires") == "60"
    assert rig.engine.registrations.registrar.lookup("1001") == []
    assert rig.ops == []


def test_contact_expires_param_below_min_is_423_too() -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.register_authed(expires=None, contact=f"{ua.contact()};expires=10")
    assert resp.status == 423
    assert resp.headers.get("min-expires") == "60"


def test_to_user_other_than_authenticated_user_is_403() -> None:
    rig = Rig()
    ua = UA(rig)  # 1001's credentials
    resp = ua.register_authed(to="<sip:1002@acd.local>")
    assert resp.status == 403
    assert rig.engine.registrations.registrar.lookup("1002") == []
    assert rig.engine.registrations.registrar.lookup("1001") == []
    assert rig.ops == []


def test_to_without_user_part_is_400() -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.send_one(ua.register(to="<sip:acd.local>"))
    assert resp.status == 400


# -- allowed_networks: checked only after correct credentials --------------------------------


def test_restricted_account_from_inside_its_network_registers() -> None:
    rig = Rig(config_text())
    ua = UA(rig, "2001", "pass2001", ip="10.1.2.3")
    assert ua.register_authed().status == 200


def test_restricted_account_from_outside_gets_403_only_with_right_password() -> None:
    rig = Rig(config_text())
    outsider = UA(rig, "2001", "pass2001", ip="203.0.113.7")
    first = outsider.send_one(outsider.register())
    assert first.status == 401  # no hint yet that the network is wrong

    wrong = outsider.answer(first, "REGISTER", REG_URI, password="guess")
    again = outsider.send_one(outsider.register(authorization=wrong))
    assert again.status == 401
    assert again.headers.get_all("www-authenticate")

    right = outsider.answer(again, "REGISTER", REG_URI)
    resp = outsider.send_one(outsider.register(authorization=right))
    assert resp.status == 403
    assert resp.reason == "Forbidden Network"
    assert resp.headers.get_all("www-authenticate") == []
    assert rig.engine.registrations.registrar.lookup("2001") == []


def test_demo_accounts_are_restricted_to_loopback() -> None:
    rig = Rig()
    ua = UA(rig, ip="198.51.100.20")
    resp = ua.register_authed()
    assert resp.status == 403
    assert resp.reason == "Forbidden Network"


# -- no enumeration ----------------------------------------------------------------------------


def _same_dialog(a: UA, b: UA) -> None:
    b.call_id, b.tag = a.call_id, a.tag


def test_unknown_user_and_wrong_password_look_the_same() -> None:
    rig = Rig(config_text(algorithms="SHA-256, MD5"))
    known = UA(rig, "1001", "wrong")
    unknown = UA(rig, "9999", "whatever")
    _same_dialog(known, unknown)

    # the unauthenticated first REGISTER
    k1 = known.send_one(known.register(cseq=1))
    u1 = unknown.send_one(unknown.register(cseq=1))
    assert k1.status == u1.status == 401
    # the answered challenge
    k2 = known.send_one(known.register(
        cseq=2, authorization=known.answer(k1, "REGISTER", REG_URI)))
    u2 = unknown.send_one(unknown.register(
        cseq=2, authorization=unknown.answer(u1, "REGISTER", REG_URI)))
    assert k2.status == u2.status == 401

    for k, u in ((k1, u1), (k2, u2)):
        kb = mask(k.serialize())
        ub = mask(u.serialize()).replace(b"9999", b"1001")
        assert kb == ub
    # the nonce really is fresh each time, so masking it hid nothing that should be equal
    assert k2.headers.get("www-authenticate") != u2.headers.get("www-authenticate")


def test_unknown_user_with_matching_to_gets_401_not_404_or_403() -> None:
    rig = Rig()
    ua = UA(rig, "5555", "x")
    first = ua.send_one(ua.register())
    resp = ua.send_one(ua.register(authorization=ua.answer(first, "REGISTER", REG_URI)))
    assert resp.status == 401


# -- nonces ----------------------------------------------------------------------------------


def test_stale_nonce_is_rechallenged_with_stale_true() -> None:
    rig = Rig()
    ua = UA(rig)
    first = ua.send_one(ua.register())
    rig.clock.advance(301)  # nonce_lifetime is 300
    resp = ua.send_one(ua.register(authorization=ua.answer(first, "REGISTER", REG_URI)))
    assert resp.status == 401
    (params,) = challenge_params(resp.headers.get_all("www-authenticate"))
    assert params["stale"] == "true"
    assert params["nonce"] != challenge_params(first.headers.get_all("www-authenticate"))[0][
        "nonce"]
    # the right password over a stale nonce is not a failure that counts towards a ban
    assert rig.engine.auth.failures == 0
    # and the fresh nonce works
    ok = ua.send_one(ua.register(authorization=ua.answer(resp, "REGISTER", REG_URI)))
    assert ok.status == 200


def test_nonce_still_fresh_at_lifetime_boundary() -> None:
    rig = Rig()
    ua = UA(rig)
    first = ua.send_one(ua.register())
    rig.clock.advance(299)
    resp = ua.send_one(ua.register(authorization=ua.answer(first, "REGISTER", REG_URI)))
    assert resp.status == 200


def test_replayed_nonce_count_is_rechallenged_without_registering_again() -> None:
    rig = Rig()
    ua = UA(rig)
    first = ua.send_one(ua.register())
    auth = ua.answer(first, "REGISTER", REG_URI)
    assert ua.send_one(ua.register(authorization=auth)).status == 200
    before = (len(rig.events), len(rig.ops))

    replay = ua.send_one(ua.register(authorization=auth))  # new transaction, same nc
    assert replay.status == 401
    (params,) = challenge_params(replay.headers.get_all("www-authenticate"))
    assert "stale" not in params
    assert (len(rig.events), len(rig.ops)) == before

    # the next nonce-count on the same nonce is accepted
    nxt = ua.answer(first, "REGISTER", REG_URI, nc=2)
    assert ua.send_one(ua.register(authorization=nxt)).status == 200


def test_nonce_from_another_secret_is_not_accepted() -> None:
    rig = Rig()
    elsewhere = Rig(secret=b"y" * 32)
    ua = UA(rig)
    foreign = UA(elsewhere).send_one(UA(elsewhere).register())
    resp = ua.send_one(ua.register(authorization=ua.answer(foreign, "REGISTER", REG_URI)))
    assert resp.status == 401
    (params,) = challenge_params(resp.headers.get_all("www-authenticate"))
    assert "stale" not in params
    assert rig.engine.registrations.registrar.lookup("1001") == []


# -- malformed and foreign credentials ----------------------------------------------------------

_GOOD_HEX = "0" * 32


@pytest.mark.parametrize(
    ("value", "reason_part"),
    [
        # qop without nc
        ('Digest username="1001", realm="acd.local", nonce="abc", uri="sip:acd.local", '
         f'response="{_GOOD_HEX}", qop=auth, cnonce="c1"', "qop without nc"),
        # nc that is not 8 hex digits
        ('Digest username="1001", realm="acd.local", nonce="abc", uri="sip:acd.local", '
         f'response="{_GOOD_HEX}", qop=auth, cnonce="c1", nc=1', "nc is not 8 hex digits"),
        # missing response
        ('Digest username="1001", realm="acd.local", nonce="abc", uri="sip:acd.local", '
         'qop=auth, cnonce="c1", nc=00000001', "missing response"),
        # unparseable value
        ('Digest username="1001", realm', "Malformed credentials"),
        ('Digest username="1001", username="1002", realm="acd.local"', "Malformed credentials"),
    ],
)
def test_malformed_authorization_is_400_not_an_exception(value: str, reason_part: str) -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.send_one(ua.register(authorization=value))
    assert resp.status == 400
    assert reason_part in (resp.reason or "")
    assert rig.engine.registrations.registrar.lookup("1001") == []


def test_unknown_auth_scheme_is_ignored_and_challenged() -> None:
    # RFC 4475 §3.3.7 regaut01: credentials in a scheme we do not know are not an error
    rig = Rig()
    ua = UA(rig)
    resp = ua.send_one(ua.register(authorization="NoOneKnowsThisScheme opaque-data=here"))
    assert resp.status == 401
    assert len(resp.headers.get_all("www-authenticate")) == 1


def test_digest_for_another_realm_is_ignored_and_challenged() -> None:
    rig = Rig()
    ua = UA(rig)
    value = ('Digest username="1001", realm="elsewhere", nonce="abc", uri="sip:acd.local", '
             f'response="{_GOOD_HEX}", qop=auth, cnonce="c1", nc=00000001')
    resp = ua.send_one(ua.register(authorization=value))
    assert resp.status == 401


# -- retransmissions ----------------------------------------------------------------------------


def test_retransmitted_register_gets_the_same_bytes_and_no_second_change() -> None:
    rig = Rig()
    ua = UA(rig)
    first = ua.send_one(ua.register())
    data = ua.register(authorization=ua.answer(first, "REGISTER", REG_URI))
    out1 = rig.deliver(data, ua.addr)
    rig.clock.advance(0.5)
    out2 = rig.deliver(data, ua.addr)
    assert len(out1) == len(out2) == 1
    assert out1[0].response.status == 200
    assert out2[0].data == out1[0].data
    assert len(rig.events_of("registration.added")) == 1
    assert len(rig.events_of("registration.refreshed")) == 0
    assert len(rig.ops) == 1
    assert rig.metric("acd_register_requests_total", {"result": "200"}) == 1


def test_register_without_credentials_is_challenged_statelessly() -> None:
    rig = Rig()
    ua = UA(rig)
    data = ua.register()
    (first,) = rig.deliver(data, ua.addr)
    assert first.response.status == 401
    assert rig.engine.layer.servers == {}  # no transaction kept for 64*T1
    rig.clock.advance(0.5)
    (again,) = rig.deliver(data, ua.addr)  # a retransmission is challenged afresh
    assert again.response.status == 401
    assert again.response.to.tag and again.response.call_id == first.response.call_id
    # either challenge is good: the answer to the first registers
    resp = ua.send_one(ua.register(authorization=ua.answer(first.response, "REGISTER",
                                                            REG_URI)))
    assert resp.status == 200
    assert len(rig.engine.layer.servers) == 1  # the authenticated one is stateful
    assert rig.metric("acd_register_requests_total", {"result": "401"}) == 2


def test_contact_beyond_max_contacts_replaces_the_stalest() -> None:
    rig = Rig(config_text(max_contacts=2))
    phones = [UA(rig, port=5100 + i) for i in range(3)]
    for i, p in enumerate(phones):
        rig.clock.advance(i)  # distinct update times
        assert p.register_authed().status == 200
    contacts = sorted(b.contact for b in rig.engine.registrations.registrar.lookup("1001"))
    assert contacts == ["sip:1001@127.0.0.1:5101", "sip:1001@127.0.0.1:5102"]
    (ev,) = rig.events_of("registration.removed")
    assert ev.data["contact"] == "sip:1001@127.0.0.1:5100"
    assert ev.data["reason"] == "max_contacts"
    assert DeleteBinding("1001", "sip:1001@127.0.0.1:5100") in rig.ops
