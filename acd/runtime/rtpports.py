"""RTP port allocation: `RtpPortPool` hands out even ports (the odd port above each is its
RTCP port) from a configured range, and `open_udp_pair` binds the two sockets of one port.

A port is never handed out twice while in use. Released ports go to the back of the queue,
so the port a call just gave up is the last to be reused: late packets of the old call then
land on nobody rather than on a new call. A port some other process holds fails to bind and
is skipped (and retried later, when it comes round again).
"""

from __future__ import annotations

import contextlib
import socket
from collections import deque
from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = ["DatagramSocket", "PortsExhausted", "RtpPortPool", "open_udp", "open_udp_pair"]

T = TypeVar("T")

RTP_RCVBUF = 256 * 1024


class PortsExhausted(OSError):
    """No even port of the range could be bound."""


class DatagramSocket(Protocol):
    """What the media runtime uses of a UDP socket (a real one, or a test double)."""

    def fileno(self) -> int: ...
    def recvfrom(self, bufsize: int) -> tuple[bytes, tuple[str, int]]: ...
    def sendto(self, data: bytes, address: tuple[str, int], /) -> int: ...
    def close(self) -> None: ...


class RtpPortPool:
    """Even ports in [start, end]; a port p is usable when p + 1 <= end as well."""

    def __init__(self, start: int, end: int) -> None:
        first = start + (start & 1)
        if not (0 < start <= end <= 65535) or first + 1 > end:
            raise ValueError(f"RTP port range {start}-{end} holds no even/odd pair")
        self.start, self.end = start, end
        self._free: deque[int] = deque(range(first, end, 2))
        self._used: set[int] = set()
        self.bind_failures = 0

    @property
    def capacity(self) -> int:
        return len(self._free) + len(self._used)

    @property
    def in_use(self) -> int:
        return len(self._used)

    def __contains__(self, port: object) -> bool:
        return port in self._used

    def allocate(self, bind: Callable[[int], T]) -> tuple[int, T]:
        """The next free port for which `bind(port)` succeeds, and what it returned. `bind`
        raising OSError (the port is taken elsewhere) moves on to the next port; after a full
        round without success, PortsExhausted."""
        for _ in range(len(self._free)):
            port = self._free.popleft()
            try:
                result = bind(port)
            except OSError:
                self.bind_failures += 1
                self._free.append(port)
                continue
            self._used.add(port)
            return port, result
        raise PortsExhausted(f"no free RTP port in {self.start}-{self.end} "
                             f"({len(self._used)} in use)")

    def release(self, port: int) -> None:
        """Give a port back; releasing a port not in use is a no-op."""
        if port in self._used:
            self._used.remove(port)
            self._free.append(port)


def open_udp(ip: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to (ip, port); OSError if the port is taken."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RTP_RCVBUF)
        sock.bind((ip, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def open_udp_pair(
    ip: str, port: int, opener: Callable[[str, int], DatagramSocket] = open_udp
) -> tuple[DatagramSocket, DatagramSocket]:
    """The RTP socket on `port` and the RTCP socket on `port + 1`; both or neither."""
    rtp = opener(ip, port)
    try:
        rtcp = opener(ip, port + 1)
    except OSError:
        rtp.close()
        raise
    return rtp, rtcp
