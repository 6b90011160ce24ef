"""The daemon: wires config, store, event bus, engine, SIP transports and the admin API
together, drives the engine's timers from the event loop, reloads on SIGHUP, and drains on
SIGTERM (stop taking new calls and registrations, let transactions finish, flush the store,
exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import secrets
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from acd.adapters.bus import ConsumerCollector, PublisherCollector, make_bus
from acd.adapters.store import Store, WriteBehind
from acd.api.http import AdminApi
from acd.callmedia import DualStackMedia
from acd.clock import SystemClock
from acd.config import Config, ConfigError, Problem, changed_sections, load_config
from acd.crm.ingest import CrmConfig
from acd.crm.retention import Pruned
from acd.crm.service import CrmService
from acd.crm.wiring import consume_inproc, redis_consumer
from acd.engine import Engine
from acd.logs import configure_logging
from acd.metrics import MediaCollector
from acd.recording import purge_old_recordings
from acd.runtime.media import MediaEngine
from acd.runtime.transport import SipTransports
from sip.timers import Timers

__all__ = ["Daemon", "TimerDriver"]

log = structlog.get_logger("acd.daemon")

DRAIN_TIMEOUT = 32.0
# Housekeeping of the stored history: first a minute after start, then hourly.
RETENTION_FIRST = 60.0
RETENTION_EVERY = 3600.0
# Digest nonces are MACed with this key; keeping it across restarts lets phones holding a
# nonce from before the restart be answered stale=true instead of failing authentication.
NONCE_KEY_FILE = Path("var/nonce.key")
# Sections that only take effect at start: changing them in a reload is reported, not applied
_RESTART_ONLY = ("sip.listen", "admin.listen", "store", "events", "media.bind",
                 "media.rtp_ports")


TIMER_SLACK = 0.001


class TimerDriver:
    """Keeps one event-loop timer armed at the earliest deadline of a Timers heap."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timers: Timers, clock: SystemClock):
        self.loop, self.timers, self.clock = loop, timers, clock
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf
        self._firing = False
        timers.on_earlier = self._earlier

    def _earlier(self, when: float) -> None:
        if not self._firing and when < self._armed_at:
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when
        delay = when - self.clock.now()
        # uvloop (libuv) counts timers in whole milliseconds from the loop's cached time, so
        # a timer can fire up to a loop iteration early; re-armed at once for a deadline a
        # fraction of a millisecond away it then fires again and again until the clock gets
        # there (7,788 wake-ups for 2,000 SIP timers, measured). One millisecond more puts
        # the wake-up past the deadline.
        self._handle = self.loop.call_later(delay + TIMER_SLACK if delay > 0 else 0.0,
                                            self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = math.inf
        self._firing = True
        try:
            self.timers.run_due(self.clock.now())
        except Exception:
            log.exception("timer callback failed")
        finally:
            self._firing = False
        nd = self.timers.next_deadline()
        if nd is not None:
            self._arm(nd)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self.timers.on_earlier = None


class Daemon:
    def __init__(self, config_path: str | Path, config: Config) -> None:
        self.config_path = Path(config_path)
        self.config = config
        self.clock = SystemClock()
        self.started = self.clock.now()
        self.ready = False
        self._stop = asyncio.Event()

    async def run(self) -> int:
        cfg = self.config
        configure_logging(cfg.logging.level, cfg.logging.format)
        loop = asyncio.get_running_loop()
        log.info("starting", node=cfg.node_id, config=str(self.config_path),
                 loop=type(loop).__module__)
        store = await Store.open(cfg.store.url)
        writer = WriteBehind(store)
        writer.start()
        timers = Timers()
        driver = TimerDriver(loop, timers, self.clock)
        self.transports = SipTransports(lambda d, s: self.engine.on_message(d, s),
                                        max_message_size=cfg.sip.max_message_size)
        v6_host = next((la.host for la in cfg.sip.listen if ":" in la.host), None)
        lo, hi = cfg.media.rtp_ports
        # both families share the configured range: IPv4 the lower half, IPv6 the upper
        mid = lo + ((hi - lo + 1) // 4) * 2 if v6_host else hi
        self.media = DualStackMedia(
            MediaEngine(loop, cfg.media.bind, (lo, mid - 1 if v6_host else hi), self.clock),
            MediaEngine(loop, v6_host, (mid, hi), self.clock) if v6_host else None)
        bus, self.publisher = make_bus(cfg.events, cfg.node_id, self.clock.wall)
        self.engine = Engine(cfg, clock=self.clock, network=self.transports, timers=timers,
                             store_submit=writer.submit, secret=_nonce_secret(NONCE_KEY_FILE),
                             media=self.media, bus=bus)
        self.engine.metrics.registry.register(MediaCollector([self.media.v4, self.media.v6]))
        if self.publisher is not None:
            self.engine.metrics.registry.register(PublisherCollector(self.publisher))
            await self.publisher.start()
        self.writer = writer
        eng = self.engine
        self.transports.on_transport_error = eng.layer.transport_error
        self.transports.on_tcp_count = eng.metrics.tcp_connections.set
        self.crm = CrmService(store, CrmConfig(
            normalize=cfg.numbering.normalize,
            agent_of_account=lambda user: self.engine.queues.device_agent.get(user),
            event_retention_days=cfg.crm.event_retention_days),
            wall=self.clock.wall)
        if self.publisher is None:
            self.crm_consumer: Any = await consume_inproc(eng.bus, self.crm)
        else:
            self.crm_consumer = redis_consumer(self.crm, cfg.events.bus, cfg.events.stream,
                                               group="crm", consumer=cfg.node_id)
            eng.metrics.registry.register(ConsumerCollector(self.crm_consumer))
            await self.crm_consumer.start()
        restored = eng.registrations.restore(await store.load_bindings())
        eng.queues.restore_tuning(await store.load_queue_tuning())
        agents_restored = eng.queues.restore_agent_states(await store.load_agent_states())
        log.info("bindings restored", count=restored)
        log.info("agent states restored", count=agents_restored)
        admin = AdminApi(self)
        try:
            await self.transports.start(cfg.sip.listen)
            await admin.start(cfg.admin.listen.host, cfg.admin.listen.port)
        except OSError as exc:
            log.error("cannot listen", error=str(exc))
            await self.transports.close()
            self.media.close()
            await admin.stop()
            if self.publisher is not None:
                await self.publisher.stop()
            await self.crm_consumer.stop()
            await writer.close()
            await store.close()
            driver.close()
            return 1
        for sig, handler in ((signal.SIGTERM, self._stop.set), (signal.SIGINT, self._stop.set),
                             (signal.SIGHUP, self.reload)):
            loop.add_signal_handler(sig, handler)
        ticker = loop.create_task(self._tick())
        # The CRM consumer runs here (in process, or as a member of the Redis group), so
        # its working tables are pruned from here; a sibling task, so a long prune never
        # delays the engine's tick.
        crm_retention = (loop.create_task(self._crm_retention(), name="crm-retention")
                         if self.crm_consumer is not None else None)
        _tune_gc()
        self.ready = True
        log.info("ready", sip=[f"{a.transport}:{a.host}:{a.port}" for a in cfg.sip.listen],
                 admin=f"http://{cfg.admin.listen.host}:{cfg.admin.listen.port}")
        await self._stop.wait()

        log.info("draining")
        eng.draining = True
        eng.metrics.draining.set(1)
        deadline = self.clock.now() + DRAIN_TIMEOUT
        while eng.busy() and self.clock.now() < deadline:
            await asyncio.sleep(0.05)
        if eng.calls.calls:
            log.warning("drain timeout: hanging up calls still up", calls=len(eng.calls.calls))
            eng.calls.shutdown()
            await asyncio.sleep(0.2)  # let the BYEs leave
        eng.trunks.stop()
        if self.publisher is not None:
            await self.publisher.stop()
        await self.crm_consumer.stop()
        if getattr(self.crm_consumer, "redis", None) is not None:
            await self.crm_consumer.redis.aclose()
        for task in (ticker, crm_retention):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await admin.stop()
        await self.transports.close()
        self.media.close()
        driver.close()
        await writer.close()
        await store.close()
        log.info("stopped")
        return 0

    def stop(self) -> None:
        self._stop.set()

    async def _tick(self) -> None:
        next_purge = self.clock.now() + RETENTION_FIRST
        while True:
            await asyncio.sleep(1.0)
            try:
                self.engine.tick()
                self.engine.metrics.store_pending.set(self.writer.pending)
            except Exception:
                log.exception("housekeeping tick failed")
            if self.clock.now() >= next_purge:
                next_purge = self.clock.now() + RETENTION_EVERY
                await self._purge_recordings()

    async def _purge_recordings(self) -> None:
        """Recording retention: files older than recording.retention_days are deleted."""
        cfg = self.config.recording
        try:
            deleted = await asyncio.to_thread(purge_old_recordings, Path(cfg.dir),
                                              cfg.retention_days, self.clock.wall())
        except Exception:
            log.exception("recording retention failed")
            return
        for path in deleted:
            self.engine.bus.emit("recording.deleted", {"path": path, "reason": "retention"})
        if deleted:
            log.info("old recordings deleted", count=len(deleted),
                     retention_days=cfg.retention_days)

    async def _crm_retention(self) -> None:
        await asyncio.sleep(RETENTION_FIRST)
        while True:
            pruned = await self.prune_crm_events()
            # a backlog bigger than one run's cap goes on a minute later, not an hour
            backlog = pruned is not None and not pruned.complete
            await asyncio.sleep(RETENTION_FIRST if backlog else RETENTION_EVERY)

    async def prune_crm_events(self) -> Pruned | None:
        """CRM retention: processed_events and call_events rows older than
        crm.event_retention_days go (CDRs, tickets, recordings stay); a failure is logged
        and retried next hour.  None when off or failed."""
        days = self.crm.event_retention_days
        if not days:
            return None
        try:
            pruned = await self.crm.prune_events(self.clock.wall())
        except Exception:
            log.exception("crm event retention failed", retention_days=days)
            return None
        if pruned.processed_events or pruned.call_events or not pruned.complete:
            log.info("old crm events pruned", processed_events=pruned.processed_events,
                     call_events=pruned.call_events, complete=pruned.complete,
                     retention_days=days)
        return pruned

    def refresh_gauges(self) -> None:
        self.engine.metrics.store_pending.set(self.writer.pending)
        self.engine.tick_gauges()

    def reload(self) -> list[Problem]:
        """Load the config file again; on any problem the running config stays in force."""
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            for p in exc.problems:
                log.error("config reload refused", problem=str(p))
            return exc.problems
        old = self.config
        sections = changed_sections(old, new)
        ignored = [name for name in _RESTART_ONLY if _differs(old, new, name)]
        if ignored:
            log.warning("config changes that need a restart were not applied", keys=ignored)
            new = replace(new, sip=replace(new.sip, listen=old.sip.listen),
                          admin=replace(new.admin, listen=old.admin.listen),
                          store=old.store, events=old.events,
                          media=replace(new.media, bind=old.media.bind,
                                        rtp_ports=old.media.rtp_ports))
        self.config = new
        self.engine.apply_config(new)
        self.crm.event_retention_days = new.crm.event_retention_days
        configure_logging(new.logging.level, new.logging.format)
        log.info("config reloaded", changed=list(sections), digest=new.digest)
        return []


def _tune_gc() -> None:
    """Everything alive after start-up (config, accounts, restored bindings) stays alive:
    freeze it out of the collector's sight, and collect the young generation less often, so
    a full collection over tens of thousands of transactions and bindings stays rare."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)


def _nonce_secret(path: Path) -> bytes:
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except OSError:
        pass
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
    except OSError as exc:
        log.warning("cannot keep the nonce key; nonces will not survive a restart",
                    path=str(path), error=str(exc))
    return key


def _differs(old: Config, new: Config, dotted: str) -> bool:
    a: object = old
    b: object = new
    for part in dotted.split("."):
        a, b = getattr(a, part), getattr(b, part)
    return a != b
