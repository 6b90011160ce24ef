"""Banning source addresses that keep failing authentication.

Owns AuthFailureLimiter: a sliding window of failed digest authentications per
source IP address (never per port, which an attacker picks freely) and the bans
it hands out. What to do with a banned source (drop its requests) is the
transport's decision; this module only answers `is_banned`.

Memory is bounded whatever the traffic: at most `max_tracked` addresses with
failure history and at most `max_tracked` active bans, each history holding at
most `max_failures` timestamps.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Iterable

__all__ = ["AuthFailureLimiter", "IPNetwork"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AuthFailureLimiter:
    """Ban an address on its `max_failures`-th failure within `window` seconds.

    A failure at time t counts while `now - t < window`; a ban issued at t lasts
    while `now < t + ban_time`. Addresses inside `trusted` are never tracked or
    banned. IPv4-mapped IPv6 addresses count as their IPv4 address. With
    `ipv6_prefix` below 128 IPv6 sources are grouped by that prefix, since a
    single host usually owns a whole /64; keys are then network strings.

    When more than `max_tracked` addresses have recent failures the one that
    failed least recently is forgotten, so an attacker with very many addresses
    can reset others' counts but never grow memory or lift a ban early; when
    more than `max_tracked` bans are active the one ending soonest is lifted.
    """

    def __init__(
        self,
        max_failures: int,
        window: float,
        ban_time: float,
        trusted: Iterable[IPNetwork] = (),
        *,
        max_tracked: int = 100_000,
        ipv6_prefix: int = 128,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if not window > 0 or not ban_time > 0:
            raise ValueError("window and ban_time must be positive")
        if max_tracked < 1:
            raise ValueError("max_tracked must be at least 1")
        if not 0 <= ipv6_prefix <= 128:
            raise ValueError("ipv6_prefix must be in 0..128")
        self.max_failures = max_failures
        self.window = float(window)
        self.ban_time = float(ban_time)
        self.trusted: tuple[IPNetwork, ...] = tuple(trusted)
        self._max_tracked = max_tracked
        self._ipv6_prefix = ipv6_prefix
        # key -> recent failure times; ordered by most recent failure, oldest first.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        # key -> ban end; every ban lasts ban_time so insertion order is end order.
        self._bans: OrderedDict[str, float] = OrderedDict()

    def _key(self, ip: str) -> str | None:
        """Tracking key for an address, or None if it is trusted.
        Raises ValueError for a string that is not an IP address."""
        addr = ipaddress.ip_address(ip)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self.trusted):
            return None
        if isinstance(addr, ipaddress.IPv6Address) and self._ipv6_prefix < 128:
            return str(ipaddress.IPv6Network((addr, self._ipv6_prefix), strict=False))
        return str(addr)

    def record_failure(self, ip: str, now: float) -> bool:
        """Count one failed authentication from `ip`; True if it starts a ban.
        Failures from an already banned address are ignored: they neither
        extend the ban nor count towards the next one."""
        key = self._key(ip)
        if key is None:
            return False
        self._prune(now)
        if key in self._bans:
            return False
        times = self._failures.pop(key, None)
        if times is None:
            times = deque(maxlen=self.max_failures)
        times.append(now)
        while times and now - times[0] >= self.window:
            times.popleft()
        if len(times) >= self.max_failures:
            self._ban(key, now)
            return True
        self._failures[key] = times
        while len(self._failures) > self._max_tracked:
            self._failures.popitem(last=False)
        return False

    def record_success(self, ip: str) -> None:
        """Forget the failure history of `ip` (an active ban stays).

        Calling this is optional: it spares a phone that mistyped its password
        a few times, but also lets anyone holding one valid account reset the
        count of an address it brute-forces other accounts from."""
        key = self._key(ip)
        if key is not None:
            self._failures.pop(key, None)

    def is_banned(self, ip: str, now: float) -> bool:
        key = self._key(ip)
        if key is None:
            return False
        until = self._bans.get(key)
        return until is not None and now < until

    def banned(self, now: float | None = None) -> list[tuple[str, float]]:
        """(address key, ban end) of the bans in force at `now`; without `now`
        also bans that have ended but not yet been pruned."""
        return [(key, until) for key, until in self._bans.items() if now is None or now < until]

    @property
    def any_bans(self) -> bool:
        """Cheap check before the per-packet is_banned lookup: most of the time nobody is."""
        return bool(self._bans)

    @property
    def tracked(self) -> int:
        """Number of addresses with failure history (for metrics and tests)."""
        return len(self._failures)

    def _ban(self, key: str, now: float) -> None:
        self._bans[key] = now + self.ban_time
        while len(self._bans) > self._max_tracked:
            self._bans.popitem(last=False)

    def _prune(self, now: float) -> None:
        """Drop ended bans and histories with nothing inside the window. Both
        dicts are ordered by time, so only their heads need looking at."""
        while self._bans:
            key, until = next(iter(self._bans.items()))
            if now < until:
                break
            del self._bans[key]
        while self._failures:
            key, times = next(iter(self._failures.items()))
            if now - times[-1] < self.window:
                break
            del self._failures[key]
