"""Event bus adapters: Redis Streams publishing with a local spool for outages, a consumer
group reader, and `make_bus`, which builds what `config.events` asks for.

    bus, publisher = make_bus(cfg.events, cfg.node_id, clock.wall)

"inproc" gives the plain in-process EventBus and no publisher; a redis:// URL gives the same
EventBus with a RedisStreamPublisher subscribed to it (not yet started: `await
publisher.start()` on the event loop, `await publisher.stop()` at shutdown).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from acd.adapters.bus.consumer import (
    ConsumerStats,
    Handler,
    RedisStreamConsumer,
    SeenIds,
    is_transient,
    permanent_failure,
)
from acd.adapters.bus.metrics import ConsumerCollector, PublisherCollector
from acd.adapters.bus.publisher import PublisherStats, RedisStreamPublisher
from acd.adapters.bus.spool import Spool, SpoolLocked
from acd.config_platform import EventsConfig
from acd.events import EventBus

__all__ = ["ConsumerCollector", "ConsumerStats", "Handler", "PublisherCollector",
           "PublisherStats", "RedisStreamConsumer", "RedisStreamPublisher", "SeenIds", "Spool",
           "SpoolLocked", "is_transient", "make_bus", "permanent_failure", "spool_path"]

SPOOL_DIR = Path("var")  # beside the nonce key; relative to the daemon's working directory


def spool_path(stream: str, spool_dir: Path | str = SPOOL_DIR) -> Path:
    """Where the spool of `stream` lives: one file per stream, named after it."""
    return Path(spool_dir) / f"events-{re.sub(r'[^A-Za-z0-9_.-]', '_', stream)}.spool"


def make_bus(config: EventsConfig, node: str, wall: Callable[[], float], *,
             spool_dir: Path | str = SPOOL_DIR,
             **publisher_options: Any) -> tuple[EventBus, RedisStreamPublisher | None]:
    bus = EventBus(node, wall)
    if config.bus == "inproc":
        return bus, None
    publisher = RedisStreamPublisher.from_url(config.bus, config.stream,
                                              spool_path(config.stream, spool_dir),
                                              maxlen=config.maxlen, wall=wall,
                                              **publisher_options)
    publisher.attach(bus)
    return bus, publisher
