"""The JSON log lines: what structlog's stock JSON pipeline wrote, byte for byte, but for
the timestamp's instant."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator

import pytest
import structlog

from acd.logs import HotLogger, configure_logging


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    configure_logging("info", "json")
    yield buf
    structlog.reset_defaults()


def test_json_line_matches_json_dumps(stderr: io.StringIO) -> None:
    log = structlog.get_logger("t")
    values = {"aor": "1001", "contact": "sip:\u00fc@h;x=\"q\"\\", "n": 3, "rtt": 0.5,
              "ok": True, "reason": None, "keys": ["a", 1], "obj": object}
    log.info("binding added", **values)
    log.debug("not shown", **values)
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 1
    got = json.loads(lines[0])
    stamp = got["timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", stamp)
    expected = {**values, "obj": repr(object), "event": "binding added", "level": "info",
                "timestamp": stamp}
    assert lines[0] == json.dumps(expected)


def test_exceptions_are_rendered(stderr: io.StringIO) -> None:
    log = structlog.get_logger("t")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed", call_id="c")
    got = json.loads(stderr.getvalue())
    assert got["level"] == "error" and "ValueError: boom" in got["exception"]


def test_reconfiguring_changes_the_level(stderr: io.StringIO,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    log = structlog.get_logger("t")
    monkeypatch.setattr(sys, "stderr", stderr)  # pytest puts its own back for each phase
    configure_logging("warning", "json")
    log.info("hidden")
    log.warning("shown")
    assert [json.loads(x)["event"] for x in stderr.getvalue().splitlines()] == ["shown"]


def _without_time(line: str) -> dict[str, object]:
    d = json.loads(line)
    d.pop("timestamp")
    return d


def test_hot_logger_writes_what_structlog_writes(stderr: io.StringIO) -> None:
    values = {"aor": "1001", "contact": "sip:1001@h", "src": "udp:1.2.3.4:5", "call_id": "c",
              "reason": None}
    HotLogger("acd.registrar").info("binding added", **values)
    structlog.get_logger("acd.registrar").info("binding added", **values)
    hot, stock = stderr.getvalue().splitlines()
    assert list(json.loads(hot)) == list(json.loads(stock))  # same keys, same order
    assert _without_time(hot) == _without_time(stock)


def test_hot_logger_follows_capture_and_level(stderr: io.StringIO,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    hot = HotLogger("acd.registrar")
    with structlog.testing.capture_logs() as captured:
        hot.info("binding added", aor="1001")
    assert captured == [{"aor": "1001", "event": "binding added", "log_level": "info"}]
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging("warning", "json")
    hot.info("hidden")
    hot.warning("shown")
    assert [json.loads(x)["event"] for x in stderr.getvalue().splitlines()] == ["shown"]
