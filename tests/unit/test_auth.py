"""Digest authentication: header value syntax, digest arithmetic against the
RFC 7616 example, server verification outcomes and the client side."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip.auth import (
    _NONCE_RE,
    AuthOutcome,
    AuthStatus,
    DigestAuthenticator,
    Secret,
    UnsupportedChallenge,
    build_authorization,
    choose_challenge,
    digest_response,
    ha1,
)
from sip.authparams import AuthParseError, format_auth_value, is_token, parse_auth_value

REALM = "acd.local"
SECRET = b"0123456789abcdef0123456789abcdef"
LIFETIME = 300.0


# -- header value syntax -----------------------------------------------------


def test_parse_credentials_example() -> None:
    scheme, params = parse_auth_value(
        'Digest username="1001", realm="acd.local", nonce="abc/def=", uri="sip:acd.local", '
        'response="0123", algorithm=MD5, cnonce="xyz", qop=auth, nc=00000001'
    )
    assert scheme == "Digest"
    assert params == {
        "username": "1001",
        "realm": "acd.local",
        "nonce": "abc/def=",
        "uri": "sip:acd.local",
        "response": "0123",
        "algorithm": "MD5",
        "cnonce": "xyz",
        "qop": "auth",
        "nc": "00000001",
    }


def test_parse_tolerates_lws_folding_case_and_empty_elements() -> None:
    scheme, params = parse_auth_value(
        '  dIgEsT   Realm =  "a b" ,\r\n\tNONCE\t=\tn1 ,, qop="auth,auth-int",  '
    )
    assert scheme == "dIgEsT"
    assert params == {"realm": "a b", "nonce": "n1", "qop": "auth,auth-int"}


def test_parse_backslash_escapes() -> None:
    _, params = parse_auth_value(r'Digest username="a\"b\\c\d", realm=""')
    assert params == {"username": 'a"b\\cd', "realm": ""}


def test_parse_scheme_only() -> None:
    assert parse_auth_value("Digest") == ("Digest", {})


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "=x",
        '"Digest"',
        "Digest,realm=x",
        "Digest realm",
        "Digest realm=",
        'Digest realm="unterminated',
        'Digest realm="a\\',
        "Digest realm=a realm2=b",
        'Digest realm="a"b',
        "Digest realm=a, REALM=b",
        "Basic dXNlcjpwYXNz",
        "Digest realm=a, =b",
    ],
)
def test_parse_rejects_malformed(value: str) -> None:
    with pytest.raises(AuthParseError):
        parse_auth_value(value)


def test_auth_parse_error_is_value_error() -> None:
    assert issubclass(AuthParseError, ValueError)


@given(st.text())
def test_parse_arbitrary_text_raises_only_auth_parse_error(value: str) -> None:
    with contextlib.suppress(AuthParseError):
        parse_auth_value(value)


_token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~#$&^|",
    min_size=1,
    max_size=12,
)
_value = st.text(st.characters(blacklist_characters="\r\n\x00"), max_size=20)


@given(
    scheme=_token,
    params=st.dictionaries(_token.map(str.lower), _value, max_size=8),
    bare=st.sets(_token.map(str.lower), max_size=4),
)
def test_format_parse_round_trip(scheme: str, params: dict[str, str], bare: set[str]) -> None:
    bare |= set(list(params)[:2])
    assert parse_auth_value(format_auth_value(scheme, params, bare=bare)) == (scheme, params)


@given(st.text(alphabet=' \t,="\\abc', max_size=30))
def test_parse_punctuation_soup_raises_only_auth_parse_error(value: str) -> None:
    with contextlib.suppress(AuthParseError):
        parse_auth_value("Digest " + value)


def test_format_quotes_unless_bare_token() -> None:
    value = format_auth_value(
        "Digest",
        {"realm": "a", "algorithm": "MD5", "nc": "00000001", "qop": "auth", "x": 'q"\\'},
        bare=("algorithm", "NC", "x"),
    )
    assert value == 'Digest realm="a", algorithm=MD5, nc=00000001, qop="auth", x="q\\"\\\\"'


@pytest.mark.parametrize("bad", ["a\r\nInjected: yes", "a\nb", "a\x00"])
def test_format_refuses_header_injection(bad: str) -> None:
    with pytest.raises(ValueError):
        format_auth_value("Digest", {"username": bad})


@pytest.mark.parametrize(("scheme", "name"), [("Di gest", "realm"), ("Digest", "re alm")])
def test_format_refuses_non_token_names(scheme: str, name: str) -> None:
    with pytest.raises(ValueError):
        format_auth_value(scheme, {name: "x"})


def test_is_token() -> None:
    assert is_token("MD5")
    assert not is_token("")
    assert not is_token("a b")


# -- digest arithmetic: RFC 7616 §3.9.1 ---------------------------------------

RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example(algorithm: str, expected: str) -> None:
    key = ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    response = digest_response(
        algorithm,
        key,
        RFC_NONCE,
        "GET",
        "/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce=RFC_CNONCE,
    )
    assert response == expected


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example_through_client(algorithm: str, expected: str) -> None:
    challenge = {
        "realm": "http-auth@example.org",
        "qop": "auth, auth-int",
        "algorithm": algorithm,
        "nonce": RFC_NONCE,
        "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
    }
    value = build_authorization(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life", RFC_CNONCE, 1
    )
    _, params = parse_auth_value(value)
    assert params["response"] == expected
    assert params["opaque"] == challenge["opaque"]
    assert params["nc"] == "00000001"
    assert "nc=00000001" in value and "qop=auth" in value


def test_ha1_matches_rfc2617_definition() -> None:
    assert ha1("u", "r", "p") == hashlib.md5(b"u:r:p").hexdigest()
    assert ha1("\u00e9", "r", "p", "sha-256") == hashlib.sha256("\u00e9:r:p".encode()).hexdigest()
    assert ha1("u", "r", "p", "md5-SESS") == ha1("u", "r", "p", "MD5")
    with pytest.raises(ValueError):
        ha1("u", "r", "p", "SHA-1")


def test_sess_variant_differs_from_plain() -> None:
    key = ha1("u", "r", "p", "SHA-256")
    plain = digest_response(
        "SHA-256", key, "n", "REGISTER", "sip:r", qop="auth", nc="1", cnonce="c"
    )
    sess = digest_response(
        "SHA-256-sess", key, "n", "REGISTER", "sip:r", qop="auth", nc="1", cnonce="c"
    )
    assert plain != sess


# -- server ------------------------------------------------------------------


class FixedRandom:
    """Deterministic random source: counts up so every nonce differs."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def __call__(self, n: int) -> bytes:
        return next(self._counter).to_bytes(n, "big")


ACCOUNTS = {
    "1001": Secret(password="pass1001"),
    "1002": Secret(
        ha1_md5=ha1("1002", REALM, "pass1002", "MD5"),
        ha1_sha256=ha1("1002", REALM, "pass1002", "SHA-256").upper(),
    ),
    "md5only": Secret(ha1_md5=ha1("md5only", REALM, "pw", "MD5")),
}


def lookup(username: str) -> Secret | None:
    return ACCOUNTS.get(username)


def make_server(**kwargs: object) -> DigestAuthenticator:
    options: dict[str, object] = {"random": FixedRandom()}
    options.update(kwargs)
    return DigestAuthenticator(REALM, SECRET, LIFETIME, **options)  # type: ignore[arg-type]


def answer(
    server: DigestAuthenticator,
    now: float,
    *,
    username: str = "1001",
    password: str = "pass1001",
    algorithm: str = "MD5",
    nc: int = 1,
    method: str = "REGISTER",
    uri: str = "sip:acd.local",
    challenge: dict[str, str] | None = None,
) -> dict[str, str]:
    if challenge is None:
        challenges = [parse_auth_value(v)[1] for v in server.challenge(now)]
        challenge = next(c for c in challenges if c["algorithm"] == algorithm)
    value = build_authorization(challenge, method, uri, username, password, "cn0nce", nc)
    scheme, params = parse_auth_value(value)
    assert scheme == "Digest"
    return params


def test_challenge_shape_and_order() -> None:
    server = make_server(algorithms=("SHA-256", "md5"))
    values = server.challenge(10.0)
    assert len(values) == 2
    parsed = [parse_auth_value(v) for v in values]
    assert [p["algorithm"] for _, p in parsed] == ["SHA-256", "MD5"]
    for scheme, params in parsed:
        assert scheme == "Digest"
        assert params["realm"] == REALM
        assert params["qop"] == "auth"
        assert "stale" not in params
    assert 'qop="auth"' in values[0] and "algorithm=SHA-256" in values[0]
    stale = server.challenge(10.0, stale=True)
    assert all(v.endswith(", stale=true") for v in stale)


def test_nonces_differ_and_have_fixed_size() -> None:
    server = DigestAuthenticator(REALM, SECRET, LIFETIME)
    a, b = server.make_nonce(1.0), server.make_nonce(1.0)
    assert a != b
    assert len(a) == len(b) == 43


@given(st.binary(min_size=32, max_size=32),
       st.text(alphabet="ABCDEFQRwxyz0189_-=+/\n", min_size=42, max_size=44))
def test_nonce_spelling_check_is_exactly_base64url_canonical(raw: bytes, text: str) -> None:
    assert _NONCE_RE.fullmatch(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
    if _NONCE_RE.fullmatch(text):
        decoded = base64.urlsafe_b64decode(text + "=")
        assert base64.urlsafe_b64encode(decoded).rstrip(b"=").decode() == text


def test_nonce_is_time_random_and_hmac_sha256_of_them() -> None:
    """The wire format, pinned: the MAC is computed from precomputed HMAC states, and must
    stay the standard HMAC-SHA256 so that nonces survive restarts and upgrades."""
    server = DigestAuthenticator(REALM, SECRET, LIFETIME, random=lambda n: b"\x07" * n)
    nonce = server.make_nonce(1234.5)
    body = struct.pack(">d", 1234.5) + b"\x07" * 8
    key = hmac.new(SECRET, b"nonce-key", hashlib.sha256).digest()
    mac = hmac.new(key, b"acd-sip-digest-nonce-v1\x00" + body + REALM.encode(),
                   hashlib.sha256).digest()[:16]
    assert nonce == base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
@pytest.mark.parametrize("username", ["1001", "1002"])
def test_client_answer_verifies(algorithm: str, username: str) -> None:
    server = make_server()
    params = answer(
        server, 100.0, username=username, password=f"pass{username}", algorithm=algorithm
    )
    outcome = server.verify(params, "REGISTER", lookup, 101.0)
    assert outcome == AuthOutcome(AuthStatus.OK, username=username)
    assert outcome.ok


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256-sess"])
def test_sess_algorithms_verify(algorithm: str) -> None:
    server = make_server(algorithms=(algorithm,))
    params = answer(server, 0.0, algorithm=algorithm)
    assert server.verify(params, "REGISTER", lookup, 1.0).ok
    ha1_only = answer(server, 0.0, username="1002", password="pass1002", algorithm=algorithm)
    assert server.verify(ha1_only, "REGISTER", lookup, 1.0).ok


def test_wrong_password_and_unknown_user_look_the_same() -> None:
    server = make_server()
    wrong = server.verify(answer(server, 0.0, password="nope"), "REGISTER", lookup, 1.0)
    unknown = server.verify(
        answer(server, 0.0, username="9999", password="x"), "REGISTER", lookup, 1.0
    )
    assert wrong.status is AuthStatus.FAILED
    assert wrong == unknown
    assert wrong.username is None


def test_unknown_user_still_computes_a_digest() -> None:
    server = make_server()
    calls: list[str] = []

    def counting_lookup(username: str) -> Secret | None:
        calls.append(username)
        return None

    outcome = server.verify(
        answer(server, 0.0, username="ghost", password="x"), "REGISTER", counting_lookup, 1.0
    )
    assert outcome.status is AuthStatus.FAILED
    assert calls == ["ghost"]


def test_missing_material_for_algorithm_fails() -> None:
    server = make_server()
    params = answer(server, 0.0, username="md5only", password="pw", algorithm="SHA-256")
    assert server.verify(params, "REGISTER", lookup, 1.0).status is AuthStatus.FAILED
    params = answer(server, 0.0, username="md5only", password="pw", algorithm="MD5")
    assert server.verify(params, "REGISTER", lookup, 1.0).ok


def test_method_is_covered() -> None:
    server = make_server()
    params = answer(server, 0.0, method="REGISTER")
    assert server.verify(params, "INVITE", lookup, 1.0).status is AuthStatus.FAILED


def test_stale_exactly_after_lifetime() -> None:
    server = make_server()
    at_limit = answer(server, 1000.0)
    assert server.verify(at_limit, "REGISTER", lookup, 1000.0 + LIFETIME).ok
    past = answer(server, 1000.0)
    outcome = server.verify(past, "REGISTER", lookup, 1000.0 + LIFETIME + 0.001)
    assert outcome.status is AuthStatus.STALE


def test_stale_needs_correct_password() -> None:
    server = make_server()
    params = answer(server, 0.0, password="nope")
    assert server.verify(params, "REGISTER", lookup, LIFETIME + 1).status is AuthStatus.FAILED


def test_nonce_from_the_future_is_stale() -> None:
    server = make_server()
    params = answer(server, 500.0)
    assert server.verify(params, "REGISTER", lookup, 499.0).status is AuthStatus.STALE


def _tamper(nonce: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(nonce + "="))
    raw[0] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "forge",
    [
        _tamper,
        lambda n: n[:-1] + ("A" if n[-1] != "A" else "B"),
        lambda n: n + "A",
        lambda n: n[:-4],
        lambda n: n + "==",
        lambda n: n[:10] + "!" + n[10:],
        lambda n: "not base64 at all \u00e9",
        lambda n: "",
    ],
)
def test_forged_nonce_is_not_accepted(forge: object) -> None:
    server = make_server()
    challenge = parse_auth_value(server.challenge(0.0)[0])[1]
    challenge["nonce"] = forge(challenge["nonce"])  # type: ignore[operator]
    # Signed with the right password over the forged nonce: only the nonce is wrong.
    params = answer(server, 0.0, challenge=challenge)
    outcome = server.verify(params, "REGISTER", lookup, 1.0)
    assert outcome.status in (AuthStatus.FAILED, AuthStatus.MALFORMED)


def test_nonce_from_another_realm_or_secret_is_rejected() -> None:
    other_realm = DigestAuthenticator("other.realm", SECRET, LIFETIME)
    other_secret = DigestAuthenticator(REALM, b"another secret of 32 bytes......", LIFETIME)
    server = make_server()
    for foreign in (other_realm, other_secret):
        challenge = parse_auth_value(server.challenge(0.0)[0])[1]
        challenge["nonce"] = foreign.make_nonce(0.0)
        params = answer(server, 0.0, challenge=challenge)
        assert server.verify(params, "REGISTER", lookup, 1.0).status is AuthStatus.FAILED


def test_nonce_count_replay() -> None:
    server = make_server()
    challenge = parse_auth_value(server.challenge(0.0)[0])[1]
    first = answer(server, 0.0, challenge=challenge, nc=1)
    assert server.verify(first, "REGISTER", lookup, 1.0).ok
    assert server.verify(first, "REGISTER", lookup, 2.0).status is AuthStatus.REPLAY
    third = answer(server, 0.0, challenge=challenge, nc=3)
    assert server.verify(third, "REGISTER", lookup, 3.0).ok
    second = answer(server, 0.0, challenge=challenge, nc=2)
    assert server.verify(second, "REGISTER", lookup, 4.0).status is AuthStatus.REPLAY
    fourth = answer(server, 0.0, challenge=challenge, nc=4)
    assert server.verify(fourth, "INVITE", lookup, 5.0).status is AuthStatus.FAILED
    assert server.verify(fourth, "REGISTER", lookup, 5.0).ok


def test_failed_attempt_does_not_burn_nonce_count() -> None:
    server = make_server()
    challenge = parse_auth_value(server.challenge(0.0)[0])[1]
    bad = answer(server, 0.0, challenge=challenge, nc=5, password="nope")
    assert server.verify(bad, "REGISTER", lookup, 1.0).status is AuthStatus.FAILED
    good = answer(server, 0.0, challenge=challenge, nc=1)
    assert server.verify(good, "REGISTER", lookup, 1.0).ok


def test_replay_table_is_bounded_and_eviction_does_not_reopen_replay() -> None:
    server = make_server(max_tracked_nonces=8)
    used = []
    for i in range(40):
        params = answer(server, float(i))
        assert server.verify(params, "REGISTER", lookup, float(i)).ok
        used.append(params)
        assert server.tracked_nonces <= 8
    statuses = [server.verify(p, "REGISTER", lookup, 40.0).status for p in used]
    # Evicted nonces are refused as stale, still-tracked ones as replays.
    assert statuses[:30] == [AuthStatus.STALE] * 30
    assert statuses[-2:] == [AuthStatus.REPLAY] * 2
    assert set(statuses) == {AuthStatus.STALE, AuthStatus.REPLAY}


def test_replay_table_prunes_expired_nonces() -> None:
    server = make_server(max_tracked_nonces=4)
    for i in range(4):
        assert server.verify(answer(server, float(i)), "REGISTER", lookup, float(i)).ok
    later = 10 * LIFETIME
    assert server.verify(answer(server, later), "REGISTER", lookup, later).ok
    assert server.tracked_nonces == 1
    # Nothing live was evicted, so a fresh nonce issued a little earlier still works.
    assert server.verify(answer(server, later - 1), "REGISTER", lookup, later).ok


def test_nonces_from_before_creation_are_stale() -> None:
    # Same secret and realm, as after a restart: the old instance's counts are gone.
    before = make_server()
    old = answer(before, 100.0)
    assert before.verify(old, "REGISTER", lookup, 101.0).ok
    after = make_server(created=200.0)
    outcome = after.verify(old, "REGISTER", lookup, 201.0)
    assert outcome.status is AuthStatus.STALE
    assert after.verify(answer(after, 200.0), "REGISTER", lookup, 201.0).ok
    # Without `created` the new instance cannot tell.
    assert make_server().verify(old, "REGISTER", lookup, 201.0).ok


def _valid(server: DigestAuthenticator, **changes: str | None) -> dict[str, str]:
    params = answer(server, 0.0)
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return params


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"username": None}, "missing username"),
        ({"realm": None}, "missing realm"),
        ({"nonce": None}, "missing nonce"),
        ({"uri": None}, "missing uri"),
        ({"response": None}, "missing response"),
        ({"nc": None}, "qop without nc or cnonce"),
        ({"cnonce": None}, "qop without nc or cnonce"),
        ({"cnonce": ""}, "qop without nc or cnonce"),
        ({"qop": None, "nc": None, "cnonce": None}, "qop missing"),
        ({"qop": "auth-int"}, "unsupported qop"),
        ({"nc": "1"}, "nc is not 8 hex digits"),
        ({"nc": "0000000g"}, "nc is not 8 hex digits"),
        ({"nc": "000000001"}, "nc is not 8 hex digits"),
        ({"algorithm": "SHA-512-256"}, "unsupported algorithm"),
        ({"algorithm": "AKAv1-MD5"}, "unsupported algorithm"),
        ({"realm": "evil.example"}, "realm mismatch"),
        ({"realm": "ACD.LOCAL"}, "realm mismatch"),
        ({"response": "zz"}, "response is not a digest"),
        ({"userhash": "true"}, "userhash"),
    ],
)
def test_malformed(changes: dict[str, str | None], reason: str) -> None:
    server = make_server()
    outcome = server.verify(_valid(server, **changes), "REGISTER", lookup, 1.0)
    assert outcome.status is AuthStatus.MALFORMED
    assert reason in outcome.reason


def test_algorithm_not_configured_is_malformed() -> None:
    md5_server = make_server(algorithms=("MD5",))
    sha_server = make_server(algorithms=("SHA-256",))
    params = answer(sha_server, 0.0, algorithm="SHA-256")
    assert md5_server.verify(params, "REGISTER", lookup, 1.0).status is AuthStatus.MALFORMED


def test_absent_algorithm_means_md5_and_case_is_ignored() -> None:
    server = make_server()
    params = answer(server, 0.0)
    del params["algorithm"]
    params["QOP"] = params.pop("qop").upper()
    params["response"] = params["response"].upper()
    assert server.verify(params, "REGISTER", lookup, 1.0).ok


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, b"short", LIFETIME)
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, SECRET, 0)
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, SECRET, LIFETIME, algorithms=())
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, SECRET, LIFETIME, algorithms=("SHA-1",))
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, SECRET, LIFETIME).make_nonce(float("nan"))


def test_secret_repr_hides_material() -> None:
    assert "pass1001" not in repr(ACCOUNTS["1001"])


@given(
    st.dictionaries(
        st.sampled_from(
            ["username", "realm", "nonce", "uri", "response", "algorithm", "qop", "nc", "cnonce"]
        ),
        st.text(max_size=70),
    )
)
def test_verify_never_raises_on_junk(params: dict[str, str]) -> None:
    server = make_server()
    outcome = server.verify(params, "REGISTER", lookup, 1.0)
    assert outcome.status is not AuthStatus.OK


# -- client ------------------------------------------------------------------


def test_choose_strongest_supported() -> None:
    values = [
        "Basic realm=x",
        "garbage ,,,",
        'Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"',
        'Digest realm="r", nonce="n2", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="r", nonce="n3", algorithm=SHA-256, qop="auth-int"',
        'Digest realm="r", nonce="n4", algorithm=SHA-256, qop="auth"',
        'Digest realm="r", nonce="n5", algorithm=SHA-256, qop="auth"',
    ]
    assert choose_challenge(values)["nonce"] == "n4"


def test_choose_md5_when_nothing_better_and_default_algorithm() -> None:
    values = ['Digest realm="r", nonce="n1"']
    assert choose_challenge(values) == {"realm": "r", "nonce": "n1"}


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["Basic realm=x"],
        ['Digest realm="r", nonce="n", algorithm=SHA-512-256'],
        ['Digest realm="r", nonce="n", qop="auth-int"'],
        ['Digest realm="r", nonce="n", algorithm=MD5-sess'],
        ['Digest nonce="n"'],
    ],
)
def test_choose_nothing_supported(values: list[str]) -> None:
    with pytest.raises(UnsupportedChallenge):
        choose_challenge(values)


def test_choose_then_build_against_our_server() -> None:
    server = make_server()
    challenge = choose_challenge(server.challenge(0.0))
    assert challenge["algorithm"] == "SHA-256"
    value = build_authorization(
        challenge, "INVITE", "sip:100@acd.local", "1001", "pass1001", "c", 7
    )
    _, params = parse_auth_value(value)
    assert server.verify(params, "INVITE", lookup, 1.0).ok


def test_build_without_qop_is_rfc2069() -> None:
    challenge = {"realm": "r", "nonce": "n"}
    value = build_authorization(challenge, "REGISTER", "sip:r", "u", "p", "ignored", 1)
    _, params = parse_auth_value(value)
    assert set(params) == {"username", "realm", "nonce", "uri", "response"}
    key = ha1("u", "r", "p")
    assert params["response"] == digest_response("MD5", key, "n", "REGISTER", "sip:r")
    # Our server insists on qop.
    server = make_server()
    assert server.verify(params, "REGISTER", lookup, 0.0).status is AuthStatus.MALFORMED


def test_build_escapes_quotes_in_username() -> None:
    challenge = {"realm": "r", "nonce": "n", "qop": "auth"}
    value = build_authorization(challenge, "REGISTER", "sip:r", 'a"b', "p", "c", 1)
    assert parse_auth_value(value)[1]["username"] == 'a"b'


@pytest.mark.parametrize(("cnonce", "nc"), [("c", 0), ("c", 2**32), ("", 1)])
def test_build_rejects_bad_counters(cnonce: str, nc: int) -> None:
    with pytest.raises(ValueError):
        build_authorization(
            {"realm": "r", "nonce": "n", "qop": "auth"}, "REGISTER", "sip:r", "u", "p", cnonce, nc
        )


def test_build_rejects_unanswerable() -> None:
    with pytest.raises(UnsupportedChallenge):
        build_authorization({"realm": "r"}, "REGISTER", "sip:r", "u", "p", "c", 1)
