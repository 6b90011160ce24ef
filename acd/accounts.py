"""Who may use the engine: SIP accounts from the config, digest challenges and verification
for REGISTER (401) and INVITE (407), and banning sources that keep failing.

Unknown users and wrong passwords get the same answer (a fresh challenge) through the same
code path, so the outside cannot enumerate extensions. The network allow-list of an account
is checked only after the credentials are right, for the same reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from acd.config import Account, Config, Trunk
from sip.auth import AuthStatus, DigestAuthenticator, Secret, ha1
from sip.authparams import AuthParseError, parse_auth_value
from sip.message import Request, Response
from sip.security import AuthFailureLimiter
from sip.transaction import ServerTransaction

__all__ = ["AccountAuth", "AuthResult"]

log = structlog.get_logger("acd.auth")


@dataclass(frozen=True, slots=True)
class AuthResult:
    """An authenticated account or trunk, or the response that answers the request."""

    account: Account | None
    response: Response | None
    trunk: Trunk | None = None


class AccountAuth:
    def __init__(
        self,
        config: Config,
        secret: bytes,
        wall: Callable[[], float],
        on_ban: Callable[[str, float], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._wall = wall
        self._secret = secret
        self.on_ban = on_ban
        self.on_failure = on_failure
        self.failures = 0
        self.apply_config(config)

    def apply_config(self, config: Config) -> None:
        sec = config.security
        realm = config.sip.realm
        old = getattr(self, "digest", None)
        if old is None or old.realm != realm or old.algorithms != tuple(sec.digest_algorithms) \
                or old.nonce_lifetime != float(sec.nonce_lifetime):
            # created=now: nonces issued before this instance are answered stale=true (the
            # phone retries at once) instead of being open to a one-time replay
            self.digest = DigestAuthenticator(realm, self._secret, sec.nonce_lifetime,
                                              sec.digest_algorithms, max_tracked_nonces=200_000,
                                              created=self._wall())
        ban = sec.auth_ban
        old_lim = getattr(self, "limiter", None)
        if old_lim is None or (old_lim.max_failures, old_lim.window, old_lim.ban_time,
                               old_lim.trusted) != (ban.max_failures, ban.window, ban.ban_time,
                                                    tuple(sec.trusted_networks)):
            self.limiter = AuthFailureLimiter(ban.max_failures, ban.window, ban.ban_time,
                                              sec.trusted_networks)
        self.accounts = {a.user: a for a in config.accounts}
        # providers that identify their INVITEs with digest credentials instead of an address
        self.trunk_users = {t.inbound.auth.username: t for t in config.trunks
                            if t.inbound.auth is not None}
        self._secrets = {u: Secret(password=t.inbound.auth.password)
                         for u, t in self.trunk_users.items() if t.inbound.auth is not None}
        # HA1 computed here once rather than from the password at every verification; the
        # unknown-user path checks against a stored HA1 too, so both still cost the same
        md5 = any(a.startswith("MD5") for a in sec.digest_algorithms)
        sha256 = any(a.startswith("SHA-256") for a in sec.digest_algorithms)
        for a in config.accounts:
            h_md5, h_sha256 = a.ha1, a.ha1_sha256
            if a.password is not None:
                if h_md5 is None and md5:
                    h_md5 = ha1(a.user, realm, a.password, "MD5")
                if h_sha256 is None and sha256:
                    h_sha256 = ha1(a.user, realm, a.password, "SHA-256")
            self._secrets[a.user] = Secret(password=a.password, ha1_md5=h_md5,
                                           ha1_sha256=h_sha256)
        self.server = config.sip.user_agent

    def is_banned(self, ip: str) -> bool:
        lim = self.limiter
        return lim.any_bans and lim.is_banned(ip, self._wall())

    def authenticate(self, txn: ServerTransaction, req: Request, source_ip: str, *,
                     proxy: bool) -> AuthResult:
        """Check the request's credentials; on anything but success, the answer to send."""
        hname = "proxy-authorization" if proxy else "authorization"
        now = self._wall()
        creds: dict[str, str] | None = None
        for value in req.headers.get_all(hname):
            try:
                scheme, params = parse_auth_value(value)
            except AuthParseError as exc:
                return AuthResult(None, self._error(txn, 400, f"Malformed credentials: {exc}"))
            # regaut01: credentials in an unknown scheme are ignored, not an error
            if scheme.lower() == "digest" and params.get("realm") == self.digest.realm:
                creds = params
                break
        if creds is None:
            return AuthResult(None, self.challenge(txn, proxy))
        outcome = self.digest.verify(creds, req.method, self._secrets.get, now)
        st = outcome.status
        if st is AuthStatus.OK:
            account = self.accounts.get(outcome.username or "")
            if account is None:
                return AuthResult(None, None, self.trunk_users[outcome.username or ""])
            if account.allowed_networks and not _ip_in(source_ip, account.allowed_networks):
                log.info("source not allowed for account", user=account.user, src=source_ip,
                         call_id=req.call_id)
                return AuthResult(None, self._error(txn, 403, "Forbidden Network"))
            return AuthResult(account, None)
        if st is AuthStatus.STALE:
            return AuthResult(None, self.challenge(txn, proxy, stale=True))
        if st is AuthStatus.MALFORMED:
            return AuthResult(None, self._error(txn, 400, f"Bad Authorization: {outcome.reason}"))
        # FAILED (wrong password or unknown user, indistinguishable) and REPLAY
        self.failures += 1
        if self.on_failure is not None:
            self.on_failure(source_ip)
        log.info("authentication failed", user=creds.get("username"), src=source_ip,
                 call_id=req.call_id, reason=outcome.reason)
        if self.limiter.record_failure(source_ip, now):
            log.warning("source banned after repeated auth failures", src=source_ip,
                        ban_time=self.limiter.ban_time)
            if self.on_ban is not None:
                self.on_ban(source_ip, now + self.limiter.ban_time)
        return AuthResult(None, self.challenge(txn, proxy))

    def challenge(self, txn: ServerTransaction, proxy: bool, stale: bool = False) -> Response:
        resp = txn.make_response(407 if proxy else 401)
        hname = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        for value in self.digest.challenge(self._wall(), stale=stale):
            resp.headers.insert(len(resp.headers) - 1, hname, value)
        return resp

    def _error(self, txn: ServerTransaction, status: int, reason: str) -> Response:
        return txn.make_response(status, reason)


def _ip_in(ip: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)
