"""HTTP Digest authentication as SIP uses it (RFC 7616, RFC 3261 §22, RFC 8760).

Owns the digest arithmetic, the server side (issuing challenges, verifying
credentials, stateless nonces, nonce-count replay tracking) and the client side
(picking a challenge, building an Authorization value). Header value syntax
lives in sip.authparams; banning sources that keep failing lives in sip.security.

Supported: algorithms MD5, SHA-256 and their -sess variants, qop=auth. Not
supported: qop=auth-int, userhash, username*, SHA-512-256.

Nonces carry their own issue time and an HMAC, so verifying one needs no table
of issued nonces and the same secret verifies them across restarts. Time is the
caller's `now`: any clock in seconds works (time.monotonic() suits a daemon),
but every call on one DigestAuthenticator must use the same clock.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import re
import secrets
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sip.authparams import AuthParseError, format_auth_value, parse_auth_value
from sip.entropy import urandom_pool

__all__ = [
    "AuthOutcome",
    "AuthParseError",
    "AuthStatus",
    "DigestAuthenticator",
    "Secret",
    "UnsupportedChallenge",
    "build_authorization",
    "choose_challenge",
    "digest_response",
    "format_auth_value",
    "ha1",
    "parse_auth_value",
]

# Digest algorithm name -> hashlib name.
_HASHES = {"MD5": "md5", "SHA-256": "sha256"}
# The named constructors: hashlib.new(name) looks the name up on every call, and a
# registration hashes four times.
_HASH_FUNCS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
# Canonical spelling by lowercase name; the value after "-sess" stripping picks the hash.
_ALGORITHMS = {name.lower(): name for base in _HASHES for name in (base, f"{base}-sess")}
# Higher is stronger; used only by the client to pick among challenges.
_STRENGTH = {"MD5": 1, "MD5-sess": 1, "SHA-256": 2, "SHA-256-sess": 2}

_BARE_CHALLENGE = ("algorithm", "stale")
_BARE_CREDENTIALS = ("algorithm", "qop", "nc")

_NONCE_TAG = b"acd-sip-digest-nonce-v1\x00"
_TS_LEN, _RAND_LEN, _MAC_LEN = 8, 8, 16
_NONCE_LEN = _TS_LEN + _RAND_LEN + _MAC_LEN
# The unpadded base64url spelling of _NONCE_LEN (32) bytes: 42 free characters, then one whose
# two low bits are zero (256 bits = 42 sextets and 4 bits). Every canonical nonce, nothing else.
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")


class UnsupportedChallenge(ValueError):
    """No challenge offered something this client can answer."""


def _canonical_algorithm(name: str) -> str | None:
    return _ALGORITHMS.get(name.lower())


def _hash(algorithm: str, text: str) -> str:
    fn = _HASH_FUNCS[algorithm.removesuffix("-sess")]
    # MD5 here is protocol arithmetic, which FIPS-mode builds only allow when told so.
    return fn(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username:realm:password) as hex, the value an account store may keep
    instead of the password. A -sess suffix is accepted and ignored: the
    session HA1 needs the nonce and cnonce and is derived at verification time."""
    canonical = _canonical_algorithm(algorithm)
    if canonical is None:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return _hash(canonical, f"{username}:{realm}:{password}")


def digest_response(
    algorithm: str,
    ha1_hex: str,
    nonce: str,
    method: str,
    uri: str,
    *,
    qop: str | None = None,
    nc: str = "",
    cnonce: str = "",
) -> str:
    """The request-digest of RFC 7616 §3.4.1 for qop=auth, or of RFC 2069 when
    qop is None. `ha1_hex` is the plain HA1; -sess algorithms derive their own."""
    canonical = _canonical_algorithm(algorithm)
    if canonical is None:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    key = ha1_hex.lower()
    if canonical.endswith("-sess"):
        key = _hash(canonical, f"{key}:{nonce}:{cnonce}")
    ha2 = _hash(canonical, f"{method}:{uri}")
    if qop is None:
        return _hash(canonical, f"{key}:{nonce}:{ha2}")
    return _hash(canonical, f"{key}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


@dataclass(frozen=True)
class Secret:
    """What the account store knows about a user: the password, or the HA1 per
    algorithm (computed for this realm with ha1()). Missing material for the
    algorithm a client picked makes verification fail, not crash."""

    password: str | None = field(default=None, repr=False)
    ha1_md5: str | None = field(default=None, repr=False)
    ha1_sha256: str | None = field(default=None, repr=False)

    def ha1_for(self, username: str, realm: str, algorithm: str) -> str | None:
        base = algorithm.removesuffix("-sess")
        stored = self.ha1_md5 if base == "MD5" else self.ha1_sha256
        if stored is not None:
            return stored.lower()
        if self.password is not None:
            return ha1(username, realm, self.password, base)
        return None


class AuthStatus(enum.Enum):
    OK = "ok"
    #: Correct credentials over a nonce that is too old: re-challenge with stale=true.
    STALE = "stale"
    #: Wrong response or unknown user; the two are deliberately indistinguishable.
    FAILED = "failed"
    MALFORMED = "malformed"
    #: Correct credentials but a nonce-count already seen: a replayed request.
    REPLAY = "replay"


@dataclass(frozen=True)
class AuthOutcome:
    """Result of DigestAuthenticator.verify. `username` is set only when OK so
    that it cannot be mistaken for an authenticated identity otherwise."""

    status: AuthStatus
    reason: str = ""
    username: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is AuthStatus.OK


LookupSecret = Callable[[str], Secret | None]

_FAILED = AuthOutcome(AuthStatus.FAILED, "bad credentials")


def _malformed(reason: str) -> AuthOutcome:
    return AuthOutcome(AuthStatus.MALFORMED, reason)


_HEX_RE = re.compile(r"[0-9a-fA-F]*")


def _is_hex(text: str, length: int) -> bool:
    # fullmatch, not "$": that would also match before a trailing newline
    return len(text) == length and _HEX_RE.fullmatch(text) is not None


class DigestAuthenticator:
    """Server side: issues challenges for one realm and verifies credentials.

    The only state is the highest nonce-count accepted per nonce, kept for at
    most `max_tracked_nonces` nonces. When that table overflows the oldest
    nonces are dropped and every nonce at least that old is answered STALE from
    then on, so eviction never reopens a replay window.

    A new instance knows no nonce-counts, so with the same secret a request
    captured before a restart or reload could be replayed once. Pass `created`
    (the caller's `now` at construction) to answer nonces issued before it STALE;
    clients then simply retry with a fresh nonce.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        nonce_lifetime: float,
        algorithms: Iterable[str] = ("MD5", "SHA-256"),
        random: Callable[[int], bytes] = urandom_pool,
        *,
        max_tracked_nonces: int = 10_000,
        created: float | None = None,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        if not nonce_lifetime > 0:
            raise ValueError("nonce_lifetime must be positive")
        if max_tracked_nonces < 1:
            raise ValueError("max_tracked_nonces must be at least 1")
        canonical: list[str] = []
        for name in algorithms:
            algo = _canonical_algorithm(name)
            if algo is None:
                raise ValueError(f"unsupported digest algorithm {name!r}")
            if algo not in canonical:
                canonical.append(algo)
        if not canonical:
            raise ValueError("at least one digest algorithm is required")
        self.realm = realm
        self.nonce_lifetime = float(nonce_lifetime)
        self.algorithms: tuple[str, ...] = tuple(canonical)
        key = hmac.new(secret, b"nonce-key", hashlib.sha256).digest()
        # HMAC-SHA256 (RFC 2104) over _NONCE_TAG + body + realm from the two padded-key
        # states, copied per nonce: a third of the cost of an hmac object per nonce, and
        # every registration makes one nonce and checks one
        pad = key.ljust(64, b"\x00")  # 32 bytes: never above SHA-256's 64-byte block
        self._mac_inner = hashlib.sha256(bytes(b ^ 0x36 for b in pad) + _NONCE_TAG)
        self._mac_outer = hashlib.sha256(bytes(b ^ 0x5C for b in pad))
        self._realm_bytes = realm.encode("utf-8")
        self._random = random
        self._max_tracked = max_tracked_nonces
        # nonce -> (issue time, highest nc accepted)
        self._seen: dict[str, tuple[float, int]] = {}
        self._evicted_up_to = -math.inf
        self._not_before = -math.inf if created is None else created
        # Unknown users are checked against this so they cost the same as known ones (whose
        # HA1 an account store keeps rather than hashing the password per request).
        self._dummy = Secret(ha1_md5=secrets.token_hex(16), ha1_sha256=secrets.token_hex(32))
        self._templates = {False: self._challenge_templates(False),
                           True: self._challenge_templates(True)}

    # -- challenges --------------------------------------------------------

    def challenge(self, now: float, stale: bool = False) -> list[str]:
        """WWW-Authenticate / Proxy-Authenticate values, one per algorithm, in
        the configured order (RFC 8760 §2.4: most preferred first)."""
        nonce = self.make_nonce(now)
        return [head + nonce + tail for head, tail in self._templates[stale]]

    def _challenge_templates(self, stale: bool) -> list[tuple[str, str]]:
        """Each challenge split around its nonce: formatted once, not per request."""
        marker = "\x01nonce\x01"
        out = []
        for algo in self.algorithms:
            params = {"realm": self.realm, "nonce": marker, "algorithm": algo, "qop": "auth"}
            if stale:
                params["stale"] = "true"
            head, tail = format_auth_value("Digest", params, bare=_BARE_CHALLENGE).split(marker)
            out.append((head, tail))
        return out

    def make_nonce(self, now: float) -> str:
        if not math.isfinite(now):
            raise ValueError("now must be finite")
        body = struct.pack(">d", now) + self._random(_RAND_LEN)
        if len(body) != _TS_LEN + _RAND_LEN:
            raise ValueError("random source returned the wrong number of bytes")
        raw = body + self._mac(body)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def _mac(self, body: bytes) -> bytes:
        """HMAC-SHA256(key, _NONCE_TAG + body + realm), truncated."""
        inner = self._mac_inner.copy()
        inner.update(body + self._realm_bytes)
        outer = self._mac_outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:_MAC_LEN]

    def _nonce_time(self, nonce: str) -> float | None:
        """Issue time of a nonce this authenticator made, else None."""
        # Base64 decoding ignores some alterations, so only the canonical spelling is taken:
        # checked on the text, which spares re-encoding the bytes to compare
        if _NONCE_RE.fullmatch(nonce) is None:
            return None
        raw = base64.urlsafe_b64decode(nonce + "=")
        body, mac = raw[: _TS_LEN + _RAND_LEN], raw[_TS_LEN + _RAND_LEN :]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        issued: float = struct.unpack(">d", body[:_TS_LEN])[0]
        return issued

    # -- verification ------------------------------------------------------

    def verify(
        self,
        credentials: Mapping[str, str],
        method: str,
        lookup: LookupSecret,
        now: float,
    ) -> AuthOutcome:
        """Check the auth-params of an Authorization / Proxy-Authorization value
        (as returned by parse_auth_value) for a request with this `method`.

        The caller should compare the scheme with "digest" first, and may check
        that `credentials["uri"]` designates the Request-URI.
        """
        params = {name.lower(): text for name, text in credentials.items()}
        for required in ("username", "realm", "nonce", "uri", "response"):
            if required not in params:
                return _malformed(f"missing {required}")
        algo = _canonical_algorithm(params.get("algorithm", "MD5"))
        if algo is None or algo not in self.algorithms:
            return _malformed("unsupported algorithm")
        if params["realm"] != self.realm:
            return _malformed("realm mismatch")
        if params.get("userhash", "false").lower() != "false":
            return _malformed("userhash is not supported")
        qop = params.get("qop")
        if qop is None:
            return _malformed("qop missing (RFC 2069 digest is not accepted)")
        if qop.lower() != "auth":
            return _malformed("unsupported qop")
        nc_text, cnonce = params.get("nc"), params.get("cnonce")
        if nc_text is None or not cnonce:
            return _malformed("qop without nc or cnonce")
        if not _is_hex(nc_text, 8):
            return _malformed("nc is not 8 hex digits")
        response_len = 32 if algo.startswith("MD5") else 64
        if not _is_hex(params["response"], response_len):
            return _malformed("response is not a digest")

        nonce = params["nonce"]
        issued = self._nonce_time(nonce)
        if issued is None:
            return _FAILED

        username = params["username"]
        secret = lookup(username)
        key = None if secret is None else secret.ha1_for(username, self.realm, algo)
        known = key is not None
        if key is None:
            key = self._dummy.ha1_for(username, self.realm, algo)
            assert key is not None
        expected = digest_response(
            algo, key, nonce, method, params["uri"], qop="auth", nc=nc_text, cnonce=cnonce
        )
        matches = hmac.compare_digest(expected, params["response"].lower())
        if not (matches and known):
            return _FAILED

        age = now - issued
        if not 0 <= age <= self.nonce_lifetime:
            return AuthOutcome(AuthStatus.STALE, "nonce expired")
        if issued <= self._evicted_up_to or issued < self._not_before:
            return AuthOutcome(AuthStatus.STALE, "nonce count no longer tracked")
        nc = int(nc_text, 16)
        seen = self._seen.get(nonce)
        if seen is not None and nc <= seen[1]:
            return AuthOutcome(AuthStatus.REPLAY, "nonce count not increasing")
        self._remember(nonce, issued, nc, now)
        return AuthOutcome(AuthStatus.OK, username=username)

    def _remember(self, nonce: str, issued: float, nc: int, now: float) -> None:
        self._seen[nonce] = (issued, nc)
        if len(self._seen) <= self._max_tracked:
            return
        horizon = now - self.nonce_lifetime
        self._seen = {n: v for n, v in self._seen.items() if v[0] >= horizon}
        if len(self._seen) <= self._max_tracked:
            return
        # Still full of live nonces: drop the oldest quarter (at least one) at once
        # so that a burst costs one sort rather than one scan per request.
        by_age = sorted(self._seen.items(), key=lambda item: item[1][0])
        drop = max(1, len(by_age) // 4)
        self._evicted_up_to = max(self._evicted_up_to, by_age[drop - 1][1][0])
        self._seen = {n: v for n, v in by_age[drop:] if v[0] > self._evicted_up_to}

    @property
    def tracked_nonces(self) -> int:
        return len(self._seen)


# -- client side -------------------------------------------------------------


def _qop_options(challenge: Mapping[str, str]) -> list[str] | None:
    raw = challenge.get("qop")
    if raw is None:
        return None
    return [opt.strip().lower() for opt in raw.split(",") if opt.strip()]


def _answerable(challenge: Mapping[str, str]) -> str | None:
    """The canonical algorithm if this client can answer the challenge."""
    if "realm" not in challenge or "nonce" not in challenge:
        return None
    algo = _canonical_algorithm(challenge.get("algorithm", "MD5"))
    if algo is None:
        return None
    options = _qop_options(challenge)
    if options is None:
        # RFC 2069 style has no cnonce, which a -sess HA1 needs.
        return None if algo.endswith("-sess") else algo
    return algo if "auth" in options else None


def choose_challenge(values: Iterable[str]) -> dict[str, str]:
    """Pick the strongest Digest challenge we can answer among the
    WWW-Authenticate (or Proxy-Authenticate) values of one response; among equals
    the first listed wins, as RFC 8760 §2.4 lists by preference. Unparseable
    and non-Digest values are skipped. Raises UnsupportedChallenge if none fit."""
    best: dict[str, str] | None = None
    best_strength = 0
    for value in values:
        try:
            scheme, params = parse_auth_value(value)
        except AuthParseError:
            continue
        if scheme.lower() != "digest":
            continue
        algo = _answerable(params)
        if algo is not None and _STRENGTH[algo] > best_strength:
            best, best_strength = params, _STRENGTH[algo]
    if best is None:
        raise UnsupportedChallenge("no supported Digest challenge")
    return best


def build_authorization(
    challenge_params: Mapping[str, str],
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int,
) -> str:
    """An Authorization / Proxy-Authorization value answering a challenge.

    `challenge_params` are the auth-params of the chosen challenge (see
    choose_challenge). With qop offered, qop=auth is used with this `cnonce` and
    nonce-count `nc` (1 for the first request on a nonce, then incrementing);
    without qop the RFC 2069 form is sent and cnonce and nc are unused.
    """
    params = {name.lower(): text for name, text in challenge_params.items()}
    algo = _answerable(params)
    if algo is None:
        raise UnsupportedChallenge("challenge cannot be answered")
    realm, nonce = params["realm"], params["nonce"]
    use_qop = _qop_options(params) is not None
    if use_qop:
        if not 0 < nc <= 0xFFFFFFFF:
            raise ValueError("nc must be in 1..0xFFFFFFFF")
        if not cnonce:
            raise ValueError("cnonce must not be empty")
    nc_text = f"{nc:08x}"
    response = digest_response(
        algo,
        ha1(username, realm, password, algo),
        nonce,
        method,
        uri,
        qop="auth" if use_qop else None,
        nc=nc_text,
        cnonce=cnonce,
    )
    out = [
        ("username", username),
        ("realm", realm),
        ("nonce", nonce),
        ("uri", uri),
        ("response", response),
    ]
    if "algorithm" in params:
        out.append(("algorithm", algo))
    if use_qop:
        out += [("cnonce", cnonce), ("qop", "auth"), ("nc", nc_text)]
    if "opaque" in params:
        out.append(("opaque", params["opaque"]))
    return format_auth_value("Digest", out, bare=_BARE_CREDENTIALS)
