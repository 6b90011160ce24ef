"""Structured logging: structlog rendering JSON (or console) lines on stderr.

Every line about a SIP message carries `call_id` and `src`; they are passed explicitly by
the engine rather than through context variables because one event-loop callback handles
many messages in a row.

The registrar logs every binding change, thousands a second under load, so the JSON path
is kept cheap without changing a byte of its output: one writer shared by every logger
(structlog's factory made a PrintLogger, and looked up its file lock, per log call), the
timestamp formatted from a per-second prefix, and a JSON encoder without `json.dumps`'
per-call set-up.
"""

from __future__ import annotations

import json
import json.encoder
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog
from structlog.processors import _json_fallback_handler
from structlog.typing import EventDict, WrappedLogger

__all__ = ["configure_logging"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}

# the C encoder json.dumps uses (absent only in unusual builds; not in typeshed)
_c_make_encoder: Callable[..., Any] | None = getattr(json.encoder, "c_make_encoder", None)
_encode_str = json.encoder.encode_basestring_ascii


class _UtcIsoStamper:
    """`timestamp` as structlog's TimeStamper(fmt="iso", utc=True) writes it
    ("2024-05-01T12:00:00.123456Z", no fraction at a whole second), with the date and time
    formatted once per second rather than through a datetime per line."""

    __slots__ = ("_prefix", "_sec")

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        now = time.time()
        sec = int(now)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        us = int((now - sec) * 1_000_000)
        event_dict["timestamp"] = f"{self._prefix}.{us:06d}Z" if us else f"{self._prefix}Z"
        return event_dict


def _render_json(logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
    """What structlog's JSONRenderer() returns (json.dumps with its fallback handler)."""
    if _c_make_encoder is None:  # pragma: no cover
        return json.dumps(event_dict, default=_json_fallback_handler)
    # a fresh markers dict per line, as json.dumps has: it detects circular values, and one
    # left over from a failed line must not poison the next
    encode = _c_make_encoder({}, _json_fallback_handler, _encode_str, None, ": ", ", ",
                             False, False, True)
    return "".join(encode(event_dict, 0))


class _Pipeline:
    """What configure_logging installed, kept to tell whether it is still in force."""

    __slots__ = ("factory", "min_level", "processors", "snapshot", "wrapper", "writer")

    def __init__(self, processors: list[Any], wrapper: Any, factory: Any, min_level: int,
                 writer: structlog.WriteLogger) -> None:
        self.processors = processors
        self.snapshot = list(processors)
        self.wrapper = wrapper
        self.factory = factory
        self.min_level = min_level
        self.writer = writer

    def in_force(self) -> bool:
        cfg = structlog.get_config()
        procs = self.processors
        # capture_logs (tests) edits the list in place; anyone's configure() replaces objects
        return (cfg["processors"] is procs and cfg["wrapper_class"] is self.wrapper
                and cfg["logger_factory"] is self.factory and procs == self.snapshot)


_pipeline: _Pipeline | None = None


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    global _pipeline
    renderer: structlog.typing.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = _render_json
    # WriteLogger writes what PrintLogger printed (the line and a newline, flushed); one
    # instance serves every logger until the next configuration
    writer = structlog.WriteLogger(sys.stderr)

    def factory(*args: Any) -> structlog.WriteLogger:
        return writer

    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _UtcIsoStamper(),
        structlog.processors.format_exc_info,
        renderer,
    ]
    min_level = _LEVELS.get(level, logging.INFO)
    wrapper = structlog.make_filtering_bound_logger(min_level)
    structlog.configure(processors=processors, wrapper_class=wrapper, logger_factory=factory,
                        cache_logger_on_first_use=False)
    _pipeline = _Pipeline(processors, wrapper, factory, min_level, writer)


class HotLogger:
    """A module logger for lines written thousands of times a second (a binding change per
    registration). structlog assembles a bound logger for every line it is asked to log;
    while configure_logging's configuration is in force, `info` builds the event dict as
    structlog's would and runs the very same processors and writer itself, which is the
    same line for a fraction of the cost (bench.engine_register: about 10% of a
    registration). Under any other configuration (capture_logs in tests, someone else's
    configure) and for every other method it is structlog's own logger."""

    __slots__ = ("_proxy",)

    def __init__(self, name: str) -> None:
        self._proxy = structlog.get_logger(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._proxy, name)

    def info(self, event: str, **kw: Any) -> Any:
        p = _pipeline
        if p is None or not p.in_force():
            return self._proxy.info(event, **kw)
        if p.min_level > logging.INFO:
            return None
        writer = p.writer
        event_dict: Any = dict(kw)
        event_dict["event"] = event
        try:
            for proc in p.processors:
                event_dict = proc(writer, "info", event_dict)
        except structlog.DropEvent:
            return None
        return writer.msg(event_dict)
