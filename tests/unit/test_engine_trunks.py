"""Trunks seen from the provider's side of the wire: the engine's outbound REGISTER with
digest answered by a real `DigestAuthenticator`, refresh and retry timing on the fake clock,
and OPTIONS health checks."""

from __future__ import annotations

from collections.abc import Sequence

from acd.adapters.store import UpsertTrunkState
from acd.config import load_config_text
from sip.auth import AuthStatus, DigestAuthenticator, Secret
from sip.authparams import parse_auth_value
from sip.builder import make_response
from sip.message import Request
from sip.transaction import Address

from .enginefakes import DEMO_CONFIG, TRUNK_SOURCE, Rig, config_text, demo_text

PROXY: Address = ("udp", "198.51.100.1", 5060)
CONTACT = "<sip:acct@127.0.0.1:5060;transport=udp>"


def trunk_config(*, password: str = "secret", expires: int = 120, options_ping: int = 0,
                 register: bool = True) -> str:
    reg = (f"      register: {{username: acct, password: {password}, expires: {expires}}}\n"
           if register else "")
    return config_text(trunks=(
        "trunks:\n"
        "  - name: prov\n"
        '    inbound: {sources: ["198.51.100.1"]}\n'
        "    outbound:\n"
        "      proxy: 198.51.100.1:5060\n"
        "      transport: udp\n"
        f"{reg}"
        f"    options_ping: {options_ping}\n"
        '    hotlines: ["5550000"]\n'
    ))


class Provider:
    """The far end of the trunk: challenges, verifies and answers what the engine sends."""

    def __init__(self, rig: Rig, password: str = "secret") -> None:
        self.rig = rig
        self.digest = DigestAuthenticator("provider.example", b"p" * 32, 300, ["MD5"])
        self.secrets = {"acct": Secret(password=password)}
        self.inbox: list[Request] = []
        self._seen = 0  # own cursor: Rig.deliver/advance take() from the network too

    def collect(self) -> list[Request]:
        """New requests the engine sent to the proxy address (retransmissions included)."""
        sent = self.rig.net.sent
        got = [s.request for s in sent[self._seen:]
               if s.addr == PROXY and isinstance(s.msg, Request)]
        self._seen = len(sent)
        self.inbox += got
        return got

    def one(self, method: str) -> Request:
        got = [r for r in self.collect() if r.method == method]
        assert len(got) == 1, [r.method for r in got]
        return got[0]

    def reply(self, req: Request, status: int, headers: Sequence[tuple[str, str]] = ()) -> None:
        resp = make_response(req, status, to_tag="prov-tag")
        for name, value in headers:
            resp.headers.insert(len(resp.headers) - 1, name, value)
        self.rig.deliver(resp.serialize(), PROXY)

    def challenge(self, req: Request, *, stale: bool = False) -> None:
        values = self.digest.challenge(self.rig.clock.wall(), stale=stale)
        self.reply(req, 401, [("WWW-Authenticate", v) for v in values])

    def verify(self, req: Request) -> AuthStatus:
        value = req.headers.get("authorization")
        assert value is not None, "REGISTER without Authorization"
        scheme, params = parse_auth_value(value)
        assert scheme == "Digest"
        assert params["uri"] == str(req.uri)
        return self.digest.verify(params, req.method, self.secrets.get,
                                  self.rig.clock.wall()).status

    def ok(self, req: Request, expires: int = 120) -> None:
        self.reply(req, 200, [("Contact", f"{CONTACT};expires={expires}")])


def state(rig: Rig) -> dict[str, object]:
    (snap,) = rig.engine.trunks.snapshot()
    assert snap["name"] == "prov"
    reg = snap["registration"]
    assert isinstance(reg, dict)
    return reg


def health(rig: Rig) -> dict[str, object]:
    (snap,) = rig.engine.trunks.snapshot()
    h = snap["health"]
    assert isinstance(h, dict)
    return h


def registered_metric(rig: Rig) -> float | None:
    return rig.metric("acd_trunk_registered", {"trunk": "prov"})


def register(rig: Rig, prov: Provider, expires: int = 120) -> Request:
    """Drive one full challenge round to 200; the authenticated REGISTER."""
    first = prov.one("REGISTER")
    prov.challenge(first)
    second = prov.one("REGISTER")
    assert prov.verify(second) is AuthStatus.OK
    prov.ok(second, expires)
    return second


# -- outbound registration ------------------------------------------------------------------


def test_engine_registers_to_the_proxy_at_start() -> None:
    rig = Rig(trunk_config())
    prov = Provider(rig)
    req = prov.one("REGISTER")
    assert str(req.uri) == "sip:198.51.100.1"
    assert req.headers.get("to") == "<sip:acct@198.51.100.1>"
    assert req.from_.uri is not None and str(req.from_.uri) == "sip:acct@198.51.100.1"
    assert req.from_.tag
    assert req.headers.get("contact") == CONTACT
    assert req.headers.get("expires") == "120"
    assert req.headers.get("cseq") == "1 REGISTER"
    assert req.headers.get("authorization") is None
    assert req.top_via.host == "127.0.0.1" and req.top_via.port == 5060
    assert state(rig)["state"] == "registering"
    assert registered_metric(rig) == 0


def test_challenge_answer_verifies_and_200_registers() -> None:
    rig = Rig(trunk_config())
    prov = Provider(rig)
    first = prov.one("REGISTER")
    prov.challenge(first)
    second = prov.one("REGISTER")
    assert second.call_id == first.call_id
    assert second.from_.tag == first.from_.tag
    assert second.headers.get("cseq") == "2 REGISTER"
    assert second.top_via.branch != first.top_via.branch
    assert prov.verify(second) is AuthStatus.OK
    prov.ok(second)

    st = state(rig)
    assert st["state"] == "registered"
    assert st["expires_at"] == rig.clock.wall() + 120
    assert registered_metric(rig) == 1
    events = [e.data["state"] for e in rig.events_of("trunk.registration")]
    assert events == ["registering", "registered"]
    ops = [op.row.state for op in rig.ops if isinstance(op, UpsertTrunkState)]
    assert ops == ["registering", "registered"]


def test_refresh_is_sent_30_s_before_expiry() -> None:
    rig = Rig(trunk_config())
    prov = Provider(rig)
    register(rig, prov)
    rig.advance(89.75)
    assert [r for r in prov.collect() if r.method == "REGISTER"] == []
    rig.advance(0.25)
    refresh = prov.one("REGISTER")
    assert refresh.headers.get("cseq") == "3 REGISTER"
    assert refresh.call_id == prov.inbox[0].call_id
    assert refresh.headers.get("expires") == "120"
    # still registered while the refresh is under way
    assert state(rig)["state"] == "registered"
    prov.challenge(refresh)
    again = prov.one("REGISTER")
    assert prov.verify(again) is AuthStatus.OK
    prov.ok(again)
    assert state(rig)["state"] == "registered"
    assert registered_metric(rig) == 1


def test_short_grant_is_refreshed_at_half_time() -> None:
    rig = Rig(trunk_config())
    prov = Provider(rig)
    register(rig, prov, expires=60)  # the provider grants less than asked
    assert state(rig)["expires_at"] == rig.clock.wall() + 60
    rig.advance(29.75)
    assert [r for r in prov.collect() if r.method == "REGISTER"] == []
    rig.advance(0.25)
    prov.one("REGISTER")


def test_403_fails_and_retries_after_30_then_60_seconds() -> None:
    rig = Rig(trunk_config())
    prov = Provider(rig)
    prov.reply(prov.one("REGISTER"), 403)
    st = state(rig)
    assert st["state"] == "failed"
    assert st["detail"] == "403 Forbidden"
    assert registered_metric(rig) == 0

    rig.advance(29.75)
    assert prov.collect() == []
    rig.advance(0.25)
    prov.reply(prov.one("REGISTER"), 403)

    rig.advance(59.75)
    assert prov.collect() == []
    rig.advance(0.25)
    retry = prov.one("REGISTER")
    # the provider lets us in this time
    prov.challenge(retry)
    second = prov.one("REGISTER")
    assert prov.verify(second) is AuthStatus.OK
    prov.ok(second)
    assert state(rig)["state"] == "registered"
    events = [e.data["state"] for e in rig.events_of("trunk.registration")]
    assert events == ["registering", "failed", "registered"]  # repeated failures publish once


def test_success_resets_the_backoff() -> None:
    rig = Rig(trunk_config())
    prov = Provider(rig)
    prov.reply(prov.one("REGISTER"), 403)
    rig.advance(30)
    prov.reply(prov.one("REGISTER"), 403)  # next retry would be after 60 s
    rig.advance(60)
    register(rig, prov)
    rig.advance(90)  # refresh
    prov.reply(prov.one("REGISTER"), 403)
    rig.advance(29.75)
    assert prov.collect() == []
    rig.advance(0.25)
    prov.one("REGISTER")  # 30 s again, not 120


def test_backoff_is_capped_at_300_seconds() -> None:
    rig = Rig(trunk_config())
    prov = Provider(rig)
    waits = []
    prov.reply(prov.one("REGISTER"), 503)
    for _ in range(6):
        waited = 0.0
        got: list[Request] = []
        while not got and waited < 1000:
            rig.advance(5)
            waited += 5
            got = [r for r in prov.collect() if r.method == "REGISTER"]
        waits.append(waited)
        prov.reply(got[0], 503)
    assert waits == [30, 60, 120, 240, 300, 300]


def test_wrong_credentials_fail_after_the_second_401() -> None:
    rig = Rig(trunk_config(password="not-secret"))
    prov = Provider(rig)
    prov.challenge(prov.one("REGISTER"))
    second = prov.one("REGISTER")
    assert prov.verify(second) is AuthStatus.FAILED
    prov.challenge(second)
    st = state(rig)
    assert st["state"] == "failed"
    assert st["detail"] == "401 credentials rejected"
    assert registered_metric(rig) == 0
    assert prov.collect() == []  # no third attempt until the retry timer
    rig.advance(30)
    assert prov.one("REGISTER").headers.get("authorization") is None


def test_stale_second_challenge_is_answered_again() -> None:
    rig = Rig(trunk_config())
    prov = Provider(rig)
    prov.challenge(prov.one("REGISTER"))
    second = prov.one("REGISTER")
    prov.challenge(second, stale=True)
    third = prov.one("REGISTER")
    assert third.headers.get("cseq") == "3 REGISTER"
    assert prov.verify(third) is AuthStatus.OK
    prov.ok(third)
    assert state(rig)["state"] == "registered"


def test_423_retries_with_min_expires() -> None:
    rig = Rig(trunk_config(expires=120))
    prov = Provider(rig)
    prov.reply(prov.one("REGISTER"), 423, [("Min-Expires", "300")])
    retry = prov.one("REGISTER")
    assert retry.headers.get("expires") == "300"


def test_no_answer_fails_on_timer_f() -> None:
    rig = Rig(trunk_config())
    prov = Provider(rig)
    first = prov.one("REGISTER")
    rig.advance(31.75)
    resent = prov.collect()
    assert resent and all(r.top_via.branch == first.top_via.branch for r in resent)
    assert state(rig)["state"] == "registering"
    rig.advance(0.25)  # Timer F = 64 * T1 = 32 s
    st = state(rig)
    assert st["state"] == "failed"
    assert st["detail"] == "timeout"


def test_without_register_section_registration_is_disabled() -> None:
    rig = Rig(trunk_config(register=False))
    prov = Provider(rig)
    assert prov.collect() == []
    assert state(rig)["state"] == "disabled"
    assert registered_metric(rig) == 0


# -- OPTIONS health -----------------------------------------------------------------------------


def up_metric(rig: Rig) -> float | None:
    return rig.metric("acd_trunk_up", {"trunk": "prov"})


def test_options_ping_answered_marks_trunk_up() -> None:
    rig = Rig(trunk_config(register=False, options_ping=30))
    prov = Provider(rig)
    rig.advance(0.25)
    assert prov.collect() == []
    rig.advance(0.25)  # first ping half a second after start
    ping = prov.one("OPTIONS")
    assert str(ping.uri) == "sip:198.51.100.1:5060"
    assert health(rig)["state"] == "unknown"
    rig.clock.advance(0.02)
    prov.reply(ping, 200)
    h = health(rig)
    assert h["state"] == "up"
    assert h["rtt_ms"] == 20.0
    assert up_metric(rig) == 1
    assert [e.data["health"] for e in rig.events_of("trunk.health")] == ["up"]


def test_unanswered_ping_marks_trunk_down_on_timer_f() -> None:
    rig = Rig(trunk_config(register=False, options_ping=30))
    prov = Provider(rig)
    rig.advance(0.5)
    prov.reply(prov.one("OPTIONS"), 200)
    rig.advance(30)  # next ping at 30.5 s
    ping = prov.one("OPTIONS")
    rig.advance(31.75)
    # only retransmissions of that one ping: the 60.5 s ping is skipped while it is pending
    assert {r.top_via.branch for r in prov.collect()} == {ping.top_via.branch}
    assert health(rig)["state"] == "up"
    rig.advance(0.25)
    assert health(rig)["state"] == "down"
    assert up_metric(rig) == 0
    assert [e.data["health"] for e in rig.events_of("trunk.health")] == ["up", "down"]
    # it comes back with the next answered ping (at 90.5 s)
    rig.advance(28)
    prov.reply(prov.one("OPTIONS"), 200)
    assert health(rig)["state"] == "up"
    assert up_metric(rig) == 1


def test_503_to_ping_is_down() -> None:
    rig = Rig(trunk_config(register=False, options_ping=30))
    prov = Provider(rig)
    rig.advance(0.5)
    prov.reply(prov.one("OPTIONS"), 503)
    assert health(rig)["state"] == "down"
    assert up_metric(rig) == 0


def test_any_other_final_answer_to_ping_is_up() -> None:
    # a provider that refuses OPTIONS (405, 404...) is still there
    rig = Rig(trunk_config(register=False, options_ping=30))
    prov = Provider(rig)
    rig.advance(0.5)
    prov.reply(prov.one("OPTIONS"), 405)
    assert health(rig)["state"] == "up"


def test_demo_trunk_is_pinged_at_its_source_address() -> None:
    # the demo turns pings off (its provider is a SIPp peer); switched on, they go here
    rig = Rig(load_config_text(demo_text().replace("options_ping: 0", "options_ping: 30"),
                               base_dir=DEMO_CONFIG.parent))
    pings = [s.request for s in rig.advance(0.5)
             if s.addr == TRUNK_SOURCE and isinstance(s.msg, Request)]
    assert [p.method for p in pings] == ["OPTIONS"]
    assert str(pings[0].uri) == "sip:127.0.0.1:5080"


def test_events_published_at_start_are_counted() -> None:
    rig = Rig(trunk_config())
    assert [e.type for e in rig.events] == ["trunk.registration"]
    assert rig.metric("acd_events_published_total") == 1
