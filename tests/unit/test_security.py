"""AuthFailureLimiter with a fake clock: exact window and ban boundaries,
per-address (not per-port) keys, trusted networks and bounded memory."""

from __future__ import annotations

import ipaddress

import pytest

from sip.security import AuthFailureLimiter

TRUSTED = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


def make(**kwargs: object) -> AuthFailureLimiter:
    options: dict[str, object] = {
        "max_failures": 3,
        "window": 60.0,
        "ban_time": 600.0,
        "trusted": TRUSTED,
    }
    options.update(kwargs)
    return AuthFailureLimiter(**options)  # type: ignore[arg-type]


def test_nth_failure_inside_window_bans() -> None:
    limiter = make()
    assert limiter.record_failure("192.0.2.1", 0.0) is False
    assert limiter.record_failure("192.0.2.1", 30.0) is False
    assert not limiter.is_banned("192.0.2.1", 59.0)
    assert limiter.record_failure("192.0.2.1", 59.999) is True
    assert limiter.is_banned("192.0.2.1", 59.999)
    assert limiter.banned(59.999) == [("192.0.2.1", 59.999 + 600.0)]


def test_failure_exactly_window_old_no_longer_counts() -> None:
    limiter = make()
    limiter.record_failure("192.0.2.1", 0.0)
    limiter.record_failure("192.0.2.1", 30.0)
    # The failure at 0 is exactly `window` old at 60: out.
    assert limiter.record_failure("192.0.2.1", 60.0) is False
    assert not limiter.is_banned("192.0.2.1", 60.0)
    # 30 and 60 are still in, so one more bans.
    assert limiter.record_failure("192.0.2.1", 89.0) is True


def test_sliding_not_fixed_window() -> None:
    limiter = make()
    # One failure every 30 s keeps exactly two inside any 60 s window: never a ban.
    for t in range(0, 3000, 30):
        assert limiter.record_failure("192.0.2.1", float(t)) is False
    # 2940 and 2970 are inside the window at 2999.
    assert limiter.record_failure("192.0.2.1", 2999.0) is True


def test_ban_ends_exactly_at_ban_time() -> None:
    limiter = make(max_failures=1)
    assert limiter.record_failure("192.0.2.1", 100.0) is True
    assert limiter.is_banned("192.0.2.1", 100.0)
    assert limiter.is_banned("192.0.2.1", 699.999)
    assert not limiter.is_banned("192.0.2.1", 700.0)
    assert limiter.banned(700.0) == []


def test_failures_while_banned_neither_extend_nor_count() -> None:
    limiter = make()
    for t in (0.0, 1.0, 2.0):
        limiter.record_failure("192.0.2.1", t)
    assert limiter.record_failure("192.0.2.1", 300.0) is False
    assert limiter.record_failure("192.0.2.1", 601.0) is False
    assert not limiter.is_banned("192.0.2.1", 602.0)
    # After the ban the count starts from scratch.
    assert limiter.record_failure("192.0.2.1", 603.0) is False
    assert limiter.record_failure("192.0.2.1", 604.0) is False
    assert limiter.record_failure("192.0.2.1", 605.0) is True


def test_addresses_are_independent() -> None:
    limiter = make(max_failures=2)
    limiter.record_failure("192.0.2.1", 0.0)
    assert limiter.record_failure("192.0.2.2", 1.0) is False
    assert limiter.record_failure("192.0.2.1", 2.0) is True
    assert not limiter.is_banned("192.0.2.2", 2.0)


def test_ipv4_mapped_and_spelling_variants_share_a_key() -> None:
    limiter = make(max_failures=3)
    limiter.record_failure("192.0.2.1", 0.0)
    limiter.record_failure("::ffff:192.0.2.1", 1.0)
    assert limiter.record_failure("192.0.2.1", 2.0) is True
    assert limiter.is_banned("::ffff:c000:201", 3.0)

    v6 = make(max_failures=2)
    v6.record_failure("2001:db8::1", 0.0)
    assert v6.record_failure("2001:DB8:0:0::1", 1.0) is True
    assert v6.banned() == [("2001:db8::1", 601.0)]


def test_ipv6_prefix_groups_a_subnet() -> None:
    limiter = make(max_failures=2, ipv6_prefix=64)
    limiter.record_failure("2001:db8:0:1::1", 0.0)
    assert limiter.record_failure("2001:db8:0:1::ffff", 1.0) is True
    assert limiter.is_banned("2001:db8:0:1:1:2:3:4", 2.0)
    assert not limiter.is_banned("2001:db8:0:2::1", 2.0)
    assert limiter.banned(2.0) == [("2001:db8:0:1::/64", 601.0)]
    # IPv4 is unaffected by the IPv6 prefix.
    limiter.record_failure("192.0.2.1", 0.0)
    assert not limiter.is_banned("192.0.2.2", 0.0)


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.200.0.9", "::1", "::ffff:127.0.0.1"])
def test_trusted_never_banned(ip: str) -> None:
    limiter = make(max_failures=1)
    for t in range(10):
        assert limiter.record_failure(ip, float(t)) is False
    assert not limiter.is_banned(ip, 10.0)
    assert limiter.banned() == []
    assert limiter.tracked == 0


def test_success_resets_history_but_not_ban() -> None:
    limiter = make()
    limiter.record_failure("192.0.2.1", 0.0)
    limiter.record_failure("192.0.2.1", 1.0)
    limiter.record_success("192.0.2.1")
    assert limiter.record_failure("192.0.2.1", 2.0) is False
    assert limiter.record_failure("192.0.2.1", 3.0) is False
    assert limiter.record_failure("192.0.2.1", 4.0) is True
    limiter.record_success("192.0.2.1")
    assert limiter.is_banned("192.0.2.1", 5.0)
    limiter.record_success("127.0.0.1")


def test_idle_histories_are_pruned() -> None:
    limiter = make()
    for i in range(100):
        limiter.record_failure(f"10.0.{i // 256}.{i % 256}", float(i) * 0.01)
    assert limiter.tracked == 100
    limiter.record_failure("192.0.2.1", 61.0)
    assert limiter.tracked == 1


def test_tracked_addresses_are_capped() -> None:
    limiter = make(max_tracked=10)
    for i in range(1000):
        limiter.record_failure(f"10.0.{i // 256}.{i % 256}", 1.0)
        assert limiter.tracked <= 10
    # The most recently failing addresses are the ones kept.
    limiter.record_failure("10.0.3.231", 2.0)
    assert limiter.record_failure("10.0.3.231", 3.0) is True


def test_cap_forgets_the_least_recently_failing_address() -> None:
    limiter = make(max_failures=3, max_tracked=2)
    limiter.record_failure("192.0.2.1", 0.0)
    limiter.record_failure("192.0.2.2", 1.0)
    limiter.record_failure("192.0.2.1", 2.0)
    limiter.record_failure("192.0.2.3", 3.0)  # evicts .2, which failed least recently
    assert limiter.record_failure("192.0.2.1", 4.0) is True
    assert limiter.record_failure("192.0.2.2", 5.0) is False
    assert limiter.record_failure("192.0.2.2", 6.0) is False
    assert limiter.record_failure("192.0.2.2", 7.0) is True


def test_bans_are_capped_soonest_ending_first() -> None:
    limiter = make(max_failures=1, max_tracked=5)
    for i in range(8):
        assert limiter.record_failure(f"192.0.2.{i}", float(i)) is True
    bans = limiter.banned()
    assert len(bans) == 5
    assert [ip for ip, _ in bans] == [f"192.0.2.{i}" for i in range(3, 8)]


def test_ended_bans_are_pruned() -> None:
    limiter = make(max_failures=1)
    limiter.record_failure("192.0.2.1", 0.0)
    limiter.record_failure("192.0.2.2", 700.0)
    assert limiter.banned() == [("192.0.2.2", 1300.0)]


def test_invalid_address_raises_value_error() -> None:
    limiter = make()
    with pytest.raises(ValueError):
        limiter.record_failure("192.0.2.1:5060", 0.0)
    with pytest.raises(ValueError):
        limiter.is_banned("not an ip", 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_failures": 0},
        {"window": 0},
        {"ban_time": -1},
        {"max_tracked": 0},
        {"ipv6_prefix": 129},
    ],
)
def test_constructor_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make(**kwargs)


def test_demo_config_values() -> None:
    limiter = make(max_failures=20, window=60.0, ban_time=600.0)
    for i in range(19):
        assert limiter.record_failure("198.51.100.7", float(i)) is False
    assert limiter.record_failure("198.51.100.7", 19.0) is True
    assert limiter.is_banned("198.51.100.7", 618.999)
    assert not limiter.is_banned("198.51.100.7", 619.0)
