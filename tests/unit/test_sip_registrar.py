"""sip.registrar: RFC 3261 §10.3 binding rules, RFC 5626 instance matching, exact expiry
times, and a Hypothesis state machine against a plain model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sip.headers import parse_name_addr_list
from sip.parser import parse_message
from sip.registrar import (
    Binding,
    ChangeKind,
    RegisterOutcome,
    Registrar,
    RegistrarPolicy,
    describe_source,
    parse_source,
)
from sip.uri import parse_uri

CORPUS = Path(__file__).resolve().parent.parent / "data" / "conformance" / "rfc4475"
POLICY = RegistrarPolicy(default_expires=3600, min_expires=60, max_expires=7200)
AOR = "1001"
SRC = "udp:192.0.2.10:5062"


def reg(r: Registrar, contact: str, now: float, *, expires: int | None = None,
        call_id: str = "c1", cseq: int = 1, aor: str = AOR, max_contacts: int = 10,
        source: str = SRC) -> RegisterOutcome:
    return r.register(aor, parse_name_addr_list(contact, allow_wildcard=True), expires, call_id,
                      cseq, source, now, user_agent="ua/1", max_contacts=max_contacts)


def contacts_of(r: Registrar, aor: str = AOR) -> list[str]:
    return [b.contact for b in r.lookup(aor)]


# --------------------------------------------------------------------------- add / refresh / remove


def test_add_refresh_remove_with_exact_times() -> None:
    r = Registrar(POLICY)
    out = reg(r, "<sip:1001@192.0.2.10:5062>", 1000.0, expires=120)
    assert out.status == 200
    (ch,) = out.changes
    assert ch.kind is ChangeKind.ADDED
    b = ch.binding
    assert (b.aor, b.contact, b.call_id, b.cseq, b.source, b.user_agent) == (
        AOR, "sip:1001@192.0.2.10:5062", "c1", 1, SRC, "ua/1")
    assert (b.expires_at, b.registered_at, b.updated_at) == (1120.0, 1000.0, 1000.0)
    assert out.bindings == [b] and r.lookup(AOR) == [b] and len(r) == 1
    assert b.contact_header(1000.0) == "<sip:1001@192.0.2.10:5062>;expires=120"
    assert b.remaining(1090.0) == 30

    out = reg(r, "<sip:1001@192.0.2.10:5062>", 1060.0, expires=120, cseq=2)
    (ch,) = out.changes
    assert ch.kind is ChangeKind.REFRESHED and ch.previous is b
    b2 = ch.binding
    assert (b2.expires_at, b2.registered_at, b2.updated_at, b2.cseq) == (1180.0, 1000.0, 1060.0, 2)
    assert r.lookup(AOR) == [b2] and len(r) == 1

    out = reg(r, "<sip:1001@192.0.2.10:5062>", 1070.0, expires=0, cseq=3)
    assert [(c.kind, c.binding) for c in out.changes] == [(ChangeKind.REMOVED, b2)]
    assert out.changes[0].reason == "unregistered"
    assert r.lookup(AOR) == [] and len(r) == 0 and r.aors() == []


def test_removing_an_unknown_contact_is_a_no_op() -> None:
    r = Registrar(POLICY)
    out = reg(r, "<sip:nobody@h>", 0.0, expires=0)
    assert out.status == 200 and out.changes == [] and len(r) == 0


def test_query_without_contacts_changes_nothing() -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:a@h>", 0.0, expires=100)
    out = r.register(AOR, [], None, "q", 1, SRC, 10.0)
    assert out.status == 200 and out.changes == [] and contacts_of(r) == ["sip:a@h"]


def test_expiry_is_exact_and_expire_returns_the_binding() -> None:
    r = Registrar(POLICY)
    b = reg(r, "<sip:a@h>", 100.0, expires=60).changes[0].binding
    assert r.next_expiry() == 160.0
    assert r.expire(159.999) == []
    (ch,) = r.expire(160.0)
    assert (ch.kind, ch.binding) == (ChangeKind.EXPIRED, b)
    assert r.lookup(AOR) == [] and r.next_expiry() is None and len(r) == 0


def test_expire_skips_refreshed_bindings() -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:a@h>", 0.0, expires=100)
    refreshed = reg(r, "<sip:a@h>", 50.0, expires=100, cseq=2).changes[0].binding
    assert r.next_expiry() == 150.0
    assert r.expire(100.0) == []
    assert r.lookup(AOR) == [refreshed]
    assert [c.binding for c in r.expire(150.0)] == [refreshed]


def test_next_expiry_ignores_removed_and_refreshed_bindings() -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:a@h>", 0.0, expires=100, call_id="a")
    reg(r, "<sip:b@h>", 0.0, expires=200, call_id="b")
    assert r.next_expiry() == 100.0
    reg(r, "<sip:a@h>", 10.0, expires=0, call_id="a", cseq=2)
    assert r.next_expiry() == 200.0
    reg(r, "<sip:b@h>", 20.0, expires=300, call_id="b", cseq=2)
    assert r.next_expiry() == 320.0
    assert r.remove(AOR, "sip:b@h") is not None
    assert r.next_expiry() is None


# --------------------------------------------------------------------------- expiry values


def test_contact_expires_param_beats_the_header_and_default_applies() -> None:
    r = Registrar(POLICY)
    out = reg(r, "<sip:a@h>;expires=300, <sip:b@h>, <sip:c@h>;expires=0", 0.0, expires=600)
    assert {c.binding.contact: c.binding.expires_at for c in out.changes} == {
        "sip:a@h": 300.0, "sip:b@h": 600.0}
    out = reg(r, "<sip:d@h>", 0.0, call_id="other")
    assert out.changes[0].binding.expires_at == 3600.0  # policy default


def test_interval_too_brief_is_423_and_changes_nothing() -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:a@h>", 0.0, expires=100)
    out = reg(r, "<sip:b@h>, <sip:a@h>;expires=59", 10.0, expires=3600, cseq=2)
    assert (out.status, out.min_expires) == (423, 60)
    assert out.changes == [] and contacts_of(r) == ["sip:a@h"]
    assert r.lookup(AOR)[0].expires_at == 100.0
    assert reg(r, "<sip:a@h>", 20.0, expires=60, cseq=3).status == 200


def test_long_intervals_are_clamped_to_max_expires() -> None:
    r = Registrar(POLICY)
    b = reg(r, "<sip:a@h>", 5.0, expires=2**32 - 1).changes[0].binding
    assert b.expires_at == 7205.0
    assert b.contact_header(5.0) == "<sip:a@h>;expires=7200"


@pytest.mark.parametrize(
    ("contact", "why"),
    [
        ("<sip:a@h>;expires=abc", "expires"),
        ("<sip:a@h>;expires", "expires"),
        ("<sip:a@h>;expires=280297596632815", "too large"),  # RFC 4475 scalar02
        ("<sip:a@h>;q=1.5", "q value"),
        ("<sip:a@h>;q=x", "q value"),
    ],
)
def test_bad_contact_params_are_400(contact: str, why: str) -> None:
    r = Registrar(POLICY)
    out = reg(r, "<sip:ok@h>, " + contact, 0.0, expires=100)
    assert out.status == 400 and why in (out.reason or "")
    assert len(r) == 0


# --------------------------------------------------------------------------- wildcard


def test_wildcard_removes_everything() -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:a@h>", 0.0, expires=100, call_id="x", cseq=5)
    reg(r, "<sip:b@h>", 0.0, expires=100, call_id="y", cseq=9)
    out = reg(r, "*", 10.0, expires=0, call_id="x", cseq=6)
    assert out.status == 200
    assert sorted(c.binding.contact for c in out.changes) == ["sip:a@h", "sip:b@h"]
    assert all(c.kind is ChangeKind.REMOVED for c in out.changes)
    assert len(r) == 0 and r.next_expiry() is None


@pytest.mark.parametrize(
    ("contact", "expires"),
    [("*", None), ("*", 3600), ("*, <sip:a@h>", 0), ("<sip:a@h>, *", 0)],
)
def test_wildcard_needs_expires_zero_and_to_be_alone(contact: str, expires: int | None) -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:a@h>", 0.0, expires=100, call_id="z")
    out = reg(r, contact, 1.0, expires=expires)
    assert out.status == 400
    assert contacts_of(r) == ["sip:a@h"]


@pytest.mark.parametrize("cseq", [4, 5])
def test_wildcard_with_an_old_cseq_fails_as_a_whole(cseq: int) -> None:
    # §10.3 step 6: same Call-ID and CSeq not higher: "the update MUST be aborted and the
    # request fails" - not just that binding kept and the others removed
    r = Registrar(POLICY)
    reg(r, "<sip:a@h>", 0.0, expires=100, call_id="x", cseq=5)
    reg(r, "<sip:b@h>", 0.0, expires=100, call_id="y", cseq=1)
    out = reg(r, "*", 10.0, expires=0, call_id="x", cseq=cseq)
    assert out.status == 400 and out.changes == []
    assert sorted(contacts_of(r)) == ["sip:a@h", "sip:b@h"]


# --------------------------------------------------------------------------- Call-ID / CSeq


@pytest.mark.parametrize("cseq", [1, 4, 5])
def test_same_call_id_with_lower_or_equal_cseq_is_400_and_atomic(cseq: int) -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:a@h>", 0.0, expires=100, cseq=5)
    out = reg(r, "<sip:new@h>, <sip:a@h>", 10.0, expires=300, cseq=cseq)
    assert out.status == 400 and out.changes == []
    assert contacts_of(r) == ["sip:a@h"] and r.lookup(AOR)[0].expires_at == 100.0


def test_same_call_id_with_higher_cseq_updates() -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:a@h>", 0.0, expires=100, cseq=5)
    out = reg(r, "<sip:a@h>", 10.0, expires=300, cseq=6)
    assert out.status == 200 and out.changes[0].binding.expires_at == 310.0


def test_different_call_id_replaces_whatever_its_cseq() -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:a@h>", 0.0, expires=100, call_id="boot1", cseq=50)
    out = reg(r, "<sip:a@h>", 10.0, expires=300, call_id="boot2", cseq=1)
    (ch,) = out.changes
    assert ch.kind is ChangeKind.REFRESHED
    assert (ch.binding.call_id, ch.binding.cseq, ch.binding.expires_at) == ("boot2", 1, 310.0)
    assert len(r) == 1


def test_refresh_matches_by_uri_equality_and_keeps_the_first_text() -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:alice@HOST.example.com;transport=UDP>", 0.0, expires=100)
    out = reg(r, "<sip:%61lice@host.example.com;transport=udp>", 10.0, expires=100, cseq=2)
    (ch,) = out.changes
    assert ch.kind is ChangeKind.REFRESHED
    assert ch.binding.contact == "sip:alice@HOST.example.com;transport=UDP"
    assert len(r) == 1


# --------------------------------------------------------------------------- several contacts


def test_several_contacts_and_q_ordering() -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:low@h>;q=0.1, <sip:none@h>, <sip:mid@h>;q=0.5", 0.0, expires=100, call_id="a")
    reg(r, "<sip:mid2@h>;q=0.5", 5.0, expires=100, call_id="b")
    reg(r, "<sip:one@h>;q=1.0", 1.0, expires=100, call_id="c")
    # q first (absent counts as 1.0), then the most recently refreshed
    assert contacts_of(r) == ["sip:one@h", "sip:none@h", "sip:mid2@h", "sip:mid@h", "sip:low@h"]
    assert [b.q for b in r.lookup(AOR)] == [1.0, None, 0.5, 0.5, 0.1]


def test_aors_are_independent() -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:a@h>", 0.0, expires=100, aor="1001")
    reg(r, "<sip:a@h>", 0.0, expires=100, aor="1002")
    reg(r, "<sip:a@h>", 1.0, expires=0, aor="1001", cseq=2)
    assert r.aors() == ["1002"] and len(r) == 1


def test_max_contacts_evicts_the_stalest() -> None:
    r = Registrar(POLICY)
    reg(r, "<sip:old@h>", 0.0, expires=3600, call_id="1", max_contacts=2)
    reg(r, "<sip:mid@h>", 10.0, expires=3600, call_id="2", max_contacts=2)
    reg(r, "<sip:old@h>", 20.0, expires=3600, call_id="1", cseq=2, max_contacts=2)  # refreshed
    out = reg(r, "<sip:new@h>", 30.0, expires=3600, call_id="3", max_contacts=2)
    removed = [(c.binding.contact, c.reason) for c in out.changes if c.kind is ChangeKind.REMOVED]
    assert removed == [("sip:mid@h", "max_contacts")]
    assert sorted(contacts_of(r)) == ["sip:new@h", "sip:old@h"]
    assert len(r) == 2


# --------------------------------------------------------------------------- RFC 5626 instances

INST = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"'


def test_instance_and_reg_id_replace_a_binding_whose_uri_changed() -> None:
    r = Registrar(POLICY)
    first = reg(r, f"<sip:1001@192.0.2.10:5062>;{INST};reg-id=1", 0.0, expires=300,
                call_id="boot1").changes[0].binding
    assert (first.instance_id, first.reg_id) == (
        "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>", 1)
    out = reg(r, f"<sip:1001@198.51.100.7:40000>;{INST};reg-id=1", 50.0, expires=300,
              call_id="boot2")
    (ch,) = out.changes
    assert ch.kind is ChangeKind.REFRESHED and ch.previous is first
    assert ch.binding.contact == "sip:1001@198.51.100.7:40000"
    assert ch.binding.registered_at == 0.0 and ch.binding.expires_at == 350.0
    assert contacts_of(r) == ["sip:1001@198.51.100.7:40000"]


def test_another_reg_id_is_another_flow() -> None:
    r = Registrar(POLICY)
    reg(r, f"<sip:1001@192.0.2.10:5062>;{INST};reg-id=1", 0.0, expires=300)
    out = reg(r, f"<sip:1001@192.0.2.10:5064>;{INST};reg-id=2", 1.0, expires=300, call_id="c2")
    assert out.changes[0].kind is ChangeKind.ADDED and len(r) == 2


def test_instance_binding_does_not_capture_another_instance() -> None:
    r = Registrar(POLICY)
    reg(r, f"<sip:1001@192.0.2.10:5062>;{INST}", 0.0, expires=300)
    other = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000000000001>"'
    out = reg(r, f"<sip:1001@192.0.2.10:5062>;{other}", 1.0, expires=300, call_id="c2")
    assert out.changes[0].kind is ChangeKind.ADDED and len(r) == 2
    # a contact without an instance id still refreshes by URI
    out = reg(r, "<sip:1001@192.0.2.10:5062>", 2.0, expires=300, call_id="c3")
    assert out.changes[0].kind is ChangeKind.REFRESHED and len(r) == 2


# --------------------------------------------------------------------------- what the 200 OK shows


def _corpus_contacts(name: str) -> tuple[Registrar, Binding]:
    msg = parse_message((CORPUS / name).read_bytes())
    r = Registrar(POLICY)
    out = r.register(AOR, msg.contacts, None, msg.call_id, msg.cseq.seq, SRC, 0.0)
    assert out.status == 200
    (b,) = r.lookup(AOR)
    return r, b


@pytest.mark.parametrize(
    ("name", "header"),
    [
        # 'unknownparam' stays a contact param, never becomes a URI param
        ("cparam01.dat", "<sip:+19725552222@gw1.example.net>;unknownparam;expires=3600"),
        # ... and stays a URI param when it is one
        ("cparam02.dat", "<sip:+19725552222@gw1.example.net;unknownparam>;expires=3600"),
        # the escaped Route header stays inside the URI, verbatim
        ("regescrt.dat", "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;expires=3600"),
    ],
)
def test_corpus_contacts_come_back_byte_exact(name: str, header: str) -> None:
    _, b = _corpus_contacts(name)
    assert b.contact_header(0.0) == header
    assert str(parse_uri(b.contact)) == b.contact


def test_contact_header_rewrites_expires_and_keeps_other_params() -> None:
    r = Registrar(POLICY)
    reg(r, f'<sip:a@h;transport=tcp>;Expires=300;{INST};reg-id=1;q=0.5', 0.0)
    (b,) = r.lookup(AOR)
    assert b.expires_at == 300.0
    assert b.contact_header(100.4) == f"<sip:a@h;transport=tcp>;{INST};reg-id=1;q=0.5;expires=200"
    assert b.contact_header(1000.0).endswith(";expires=0")


def test_scalar02_contact_expires_is_rejected_by_the_registrar() -> None:
    raw = (CORPUS / "scalar02.dat").read_bytes()
    raw = raw.replace(b"CSeq: 36893488147419103232", b"CSeq: 36")
    raw = raw.replace(b"Max-Forwards: 300", b"Max-Forwards: 70")
    raw = raw.replace(b"Expires: 1" + b"0" * 100, b"Expires: 10")
    msg = parse_message(raw)
    out = Registrar(POLICY).register(AOR, msg.contacts, 10, msg.call_id, msg.cseq.seq, SRC, 0.0)
    assert out.status == 400


# --------------------------------------------------------------------------- store helpers


def test_restore_and_remove() -> None:
    r = Registrar(POLICY)
    b = Binding(AOR, "sip:a@h", parse_uri("sip:a@h"), ";expires=60", "c", 1, 500.0, 0.0, 0.0,
                SRC)
    r.restore(b)
    assert r.lookup(AOR) == [b] and len(r) == 1 and r.next_expiry() == 500.0
    assert r.remove(AOR, "sip:other@h") is None
    assert r.remove(AOR, "sip:a@h") is b
    assert len(r) == 0 and r.expire(1000.0) == []


@pytest.mark.parametrize(
    ("args", "text"),
    [(("udp", "192.0.2.1", 5060), "udp:192.0.2.1:5060"),
     (("tcp", "2001:db8::1", 5061), "tcp:[2001:db8::1]:5061")],
)
def test_source_text_round_trip(args: tuple[str, str, int], text: str) -> None:
    assert describe_source(*args) == text
    assert parse_source(text) == args


# --------------------------------------------------------------------------- state machine


@dataclass
class ModelBinding:
    call_id: str
    cseq: int
    expires_at: float
    updated_at: float


MAX_CONTACTS = 2
URIS = ["sip:a@192.0.2.1", "sip:b@192.0.2.2", "sip:c@192.0.2.3", "sip:d@192.0.2.4"]


class RegistrarMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.r = Registrar(POLICY)
        self.now = 1000.0
        self.model: dict[str, dict[str, ModelBinding]] = {}

    def _apply(self, aor: str, uri: str, expires: int | None, call_id: str, cseq: int) -> int:
        e = POLICY.default_expires if expires is None else expires
        if 0 < e < POLICY.min_expires:
            return 423
        e = min(e, POLICY.max_expires)
        bindings = self.model.setdefault(aor, {})
        old = bindings.get(uri)
        if old is not None and old.call_id == call_id and cseq <= old.cseq:
            return 400
        if e == 0:
            bindings.pop(uri, None)
        else:
            bindings[uri] = ModelBinding(call_id, cseq, self.now + e, self.now)
        while len(bindings) > MAX_CONTACTS:
            stalest = min(bindings, key=lambda k: bindings[k].updated_at)
            del bindings[stalest]
        if not bindings:
            del self.model[aor]
        return 200

    @rule(aor=st.sampled_from(["1001", "1002"]), uri=st.sampled_from(URIS),
          expires=st.sampled_from([None, 0, 30, 60, 61, 600, 3600, 100000]),
          call_id=st.sampled_from(["x", "y"]), cseq=st.integers(1, 6),
          step=st.floats(0.5, 900))
    def register(self, aor: str, uri: str, expires: int | None, call_id: str, cseq: int,
                 step: float) -> None:
        self.now += step  # strictly later: "stalest" is then never a tie
        expected = self._apply(aor, uri, expires, call_id, cseq)
        out = reg(self.r, f"<{uri}>", self.now, expires=expires, call_id=call_id, cseq=cseq,
                  aor=aor, max_contacts=MAX_CONTACTS)
        assert out.status == expected

    @rule(aor=st.sampled_from(["1001", "1002"]), call_id=st.sampled_from(["x", "y"]),
          cseq=st.integers(1, 6), step=st.floats(0.5, 900))
    def unregister_all(self, aor: str, call_id: str, cseq: int, step: float) -> None:
        self.now += step
        bindings = self.model.get(aor, {})
        aborted = any(b.call_id == call_id and cseq <= b.cseq for b in bindings.values())
        out = reg(self.r, "*", self.now, expires=0, call_id=call_id, cseq=cseq, aor=aor)
        if aborted:
            assert out.status == 400
        else:
            assert out.status == 200
            self.model.pop(aor, None)

    @rule(step=st.floats(0, 8000))
    def expire(self, step: float) -> None:
        self.now += step
        expired = {(c.binding.aor, c.binding.contact) for c in self.r.expire(self.now)}
        expected = set()
        for aor, bindings in list(self.model.items()):
            for uri, b in list(bindings.items()):
                if b.expires_at <= self.now:
                    expected.add((aor, uri))
                    del bindings[uri]
            if not bindings:
                del self.model[aor]
        assert expired == expected
        for aor in self.r.aors():
            assert all(b.expires_at > self.now for b in self.r.lookup(aor))

    @invariant()
    def matches_the_model(self) -> None:
        assert len(self.r) == sum(len(bs) for bs in self.model.values())
        assert sorted(self.r.aors()) == sorted(self.model)
        for aor, bindings in self.model.items():
            found = self.r.lookup(aor)
            assert len(found) <= MAX_CONTACTS
            assert {b.contact: (b.call_id, b.cseq, b.expires_at, b.updated_at)
                    for b in found} == {
                uri: (m.call_id, m.cseq, m.expires_at, m.updated_at)
                for uri, m in bindings.items()}
        expected_next = min((m.expires_at for bs in self.model.values() for m in bs.values()),
                            default=None)
        assert self.r.next_expiry() == expected_next


RegistrarMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                              deadline=None)
TestRegistrarMachine = RegistrarMachine.TestCase
