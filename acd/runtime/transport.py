"""SIP over UDP and TCP, IPv4 and IPv6: the sockets under the engine.

UDP sockets are read by draining them in a loop until they would block (up to a batch per
wake-up) from a reader callback, which keeps datagram reading off the profile on both
uvloop and the default loop. TCP connections are framed by Content-Length
(sip.parser.StreamFramer), answer RFC 5626 CRLF pings with a pong, and are reused both ways:
a message to ("tcp", ip, port) goes over the open connection with that peer, or a new one.
Send failures are reported to the transaction layer; nothing here raises into the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
from collections.abc import Callable
from typing import cast

import structlog

from acd.config import ListenAddress
from sip.parser import ParseError, StreamFramer
from sip.transaction import Address

__all__ = ["SipTransports"]

log = structlog.get_logger("acd.transport")

UDP_BATCH = 256
UDP_RCVBUF = 4 * 1024 * 1024
MAX_TCP_CONNECTIONS = 10000

OnMessage = Callable[[bytes, Address], None]


_IP_LITERALS: set[str] = set()


def _is_ip(host: str) -> bool:
    # every send asks, and ipaddress parsing cost over half as much as the sendto; the few
    # hosts a node talks to repeat (bounded: the addresses come from the network)
    if host in _IP_LITERALS:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    if len(_IP_LITERALS) < 65536:
        _IP_LITERALS.add(host)
    return True


class _TcpConnection(asyncio.Protocol):
    def __init__(self, owner: SipTransports, max_size: int, key: tuple[str, int] | None = None):
        self.owner = owner
        self.framer = StreamFramer(max_size)
        self.transport: asyncio.Transport | None = None
        self.key = key
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they quack like one
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if self.key is None:
            self.key = (peer[0], peer[1])
        owner = self.owner
        if len(owner.tcp) >= MAX_TCP_CONNECTIONS:
            log.warning("too many TCP connections, refusing", src=f"{peer[0]}:{peer[1]}")
            transport.close()
            return
        owner.tcp[self.key] = self
        owner.on_tcp_count(len(owner.tcp))
        for data in self.pending:
            self.transport.write(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.framer.feed(data)
        except ParseError as exc:
            log.info("TCP framing lost, closing", src=self._src(), reason=exc.reason)
            if self.transport is not None:
                self.transport.close()
            return
        assert self.key is not None
        source: Address = ("tcp", self.key[0], self.key[1])
        for msg in messages:
            if msg == b"\r\n":
                if self.transport is not None:
                    self.transport.write(b"\r\n")  # RFC 5626 §4.4.1 pong
                continue
            self.owner.on_message(msg, source)

    def connection_lost(self, exc: Exception | None) -> None:
        owner = self.owner
        if self.key is not None and owner.tcp.get(self.key) is self:
            del owner.tcp[self.key]
            owner.on_tcp_count(len(owner.tcp))

    def write(self, data: bytes) -> None:
        if self.transport is None:
            self.pending.append(data)
        elif not self.transport.is_closing():
            self.transport.write(data)

    def _src(self) -> str:
        return f"tcp:{self.key[0]}:{self.key[1]}" if self.key else "tcp:?"


class SipTransports:
    """The Network the engine sends through, and the listeners that feed it."""

    def __init__(self, on_message: OnMessage, *, max_message_size: int = 65535,
                 on_transport_error: Callable[[Address], None] | None = None,
                 on_tcp_count: Callable[[int], None] | None = None) -> None:
        self.on_message = on_message
        self.on_transport_error = on_transport_error or (lambda addr: None)
        self.on_tcp_count = on_tcp_count or (lambda n: None)
        self.max_message_size = max_message_size
        self.udp: dict[int, socket.socket] = {}  # family -> first socket of that family
        self._udp_all: list[socket.socket] = []
        self.tcp: dict[tuple[str, int], _TcpConnection] = {}
        self._servers: list[asyncio.base_events.Server] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dns: dict[str, str] = {}
        self._dns_waiting: dict[str, list[tuple[bytes, Address]]] = {}
        self.udp_send_drops = 0
        self.udp_received = 0

    async def start(self, listen: tuple[ListenAddress, ...]) -> None:
        loop = self._loop = asyncio.get_running_loop()
        for la in listen:
            family = socket.AF_INET6 if ":" in la.host else socket.AF_INET
            if la.transport == "udp":
                sock = socket.socket(family, socket.SOCK_DGRAM)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
                sock.setblocking(False)
                sock.bind((la.host, la.port))
                loop.add_reader(sock.fileno(), self._drain_udp, sock)
                self.udp.setdefault(family, sock)
                self._udp_all.append(sock)
            else:
                server = await loop.create_server(
                    lambda: _TcpConnection(self, self.max_message_size), la.host, la.port,
                    family=family, reuse_address=True)
                self._servers.append(server)
            log.info("listening", transport=la.transport, host=la.host, port=la.port)

    def stop_listening(self) -> None:
        """Stop reading new traffic (drain keeps sending responses and retransmissions)."""
        for server in self._servers:
            server.close()

    async def close(self) -> None:
        loop = self._loop
        for sock in self._udp_all:
            if loop is not None:
                loop.remove_reader(sock.fileno())
            sock.close()
        self._udp_all.clear()
        self.udp.clear()
        for server in self._servers:
            server.close()
        for conn in list(self.tcp.values()):
            if conn.transport is not None:
                conn.transport.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    # receiving ---------------------------------------------------------------------------
    def _drain_udp(self, sock: socket.socket) -> None:
        on_message = self.on_message
        for _ in range(UDP_BATCH):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ECONNREFUSED reported by an ICMP error
                log.debug("udp receive error", error=str(exc))
                continue
            self.udp_received += 1
            try:
                on_message(data, ("udp", addr[0], addr[1]))
            except Exception:  # one bad message must never stop the socket
                log.exception("engine failed on a datagram", src=f"udp:{addr[0]}:{addr[1]}")

    # sending -----------------------------------------------------------------------------
    def send(self, data: bytes, addr: Address) -> None:
        transport, host, port = addr
        if not _is_ip(host):
            ip = self._dns.get(host)
            if ip is None:
                self._resolve_then_send(data, addr)
                return
            host = ip
        if transport == "udp":
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = self.udp.get(family)
            if sock is None:
                self.on_transport_error(addr)
                return
            try:
                sock.sendto(data, (host, port))
            except (BlockingIOError, InterruptedError):
                self.udp_send_drops += 1
            except OSError as exc:
                if exc.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    log.info("udp send failed", dst=f"{host}:{port}", error=str(exc))
                self.on_transport_error(addr)
            return
        conn = self.tcp.get((host, port))
        if conn is None:
            conn = self._connect(host, port, addr)
        conn.write(data)

    def _connect(self, host: str, port: int, addr: Address) -> _TcpConnection:
        conn = _TcpConnection(self, self.max_message_size, key=(host, port))
        self.tcp[(host, port)] = conn
        loop = self._loop
        assert loop is not None

        async def connect() -> None:
            try:
                await loop.create_connection(lambda: conn, host, port)
            except OSError as exc:
                log.info("tcp connect failed", dst=f"{host}:{port}", error=str(exc))
                if self.tcp.get((host, port)) is conn:
                    del self.tcp[(host, port)]
                self.on_transport_error(addr)

        loop.create_task(connect())
        return conn

    def _resolve_then_send(self, data: bytes, addr: Address) -> None:
        host = addr[1]
        waiting = self._dns_waiting.get(host)
        if waiting is not None:
            if len(waiting) < 64:
                waiting.append((data, addr))
            return
        self._dns_waiting[host] = [(data, addr)]
        loop = self._loop
        assert loop is not None

        async def resolve() -> None:
            try:
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
                ip = str(infos[0][4][0])
            except (OSError, IndexError) as exc:
                log.info("dns resolution failed", host=host, error=str(exc))
                for _, a in self._dns_waiting.pop(host, []):
                    self.on_transport_error(a)
                return
            self._dns[host] = ip
            for d, a in self._dns_waiting.pop(host, []):
                self.send(d, (a[0], ip, a[2]))

        loop.create_task(resolve())
