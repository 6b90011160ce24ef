"""The event spool file: round trips, crash leftovers (torn last line, garbage line, stale or
mismatched checkpoint), replay progress across reopen, and the single-writer lock."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.adapters.bus.spool import Spool, SpoolLocked, encode
from acd.events import Event


def ev(i: int, **data: Any) -> Event:
    return Event("call.started", {"i": i, **data}, uuid.uuid4().hex, i, 1_700_000_000.0 + i,
                 "node-a", f"call-{i}")


def lines(events: list[Event]) -> list[str]:
    out = [encode(e) for e in events]
    assert None not in out
    return [s for s in out if s is not None]


def drain(spool: Spool, batch: int = 3) -> list[Event]:
    got: list[Event] = []
    while spool.pending:
        b = spool.read(batch)
        got += b.events()
        spool.commit(b.mark)
    return got


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
events_st = st.builds(
    Event,
    type=st.text(min_size=1, max_size=30),
    data=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    id=st.uuids().map(lambda u: u.hex),
    seq=st.integers(1, 2**53),
    ts=st.floats(0, 4e9, allow_nan=False),
    node=st.text(min_size=1, max_size=12),
    call_id=st.none() | st.text(max_size=40),
    version=st.integers(1, 5),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(events_st, max_size=6), max_size=5),
       read_size=st.integers(1, 7))
def test_arbitrary_events_round_trip_in_order(tmp_path: Path, batches: list[list[Event]],
                                              read_size: int) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.spool"
    spool = Spool(path)
    for b in batches:
        spool.append(lines(b))
    spool.sync()
    expected = [e for b in batches for e in b]
    assert spool.pending == len(expected)
    assert drain(spool, read_size) == expected
    assert path.stat().st_size == 0 and not spool.checkpoint_path.exists()
    spool.close()


def test_a_torn_last_line_is_cut_off_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "ev.spool"
    first = [ev(i) for i in range(3)]
    s = Spool(path)
    s.append(lines(first))
    s.close()
    whole = encode(ev(3))
    assert whole is not None
    with path.open("ab") as f:
        f.write(whole.encode()[: len(whole) // 2])  # a crash in the middle of write(2)
    s = Spool(path)
    s.open()
    assert s.torn == 1 and s.pending == 3
    later = [ev(4), ev(5)]
    s.append(lines(later))  # appends must not glue onto the torn half
    assert drain(s) == first + later
    assert s.corrupt == 0


def test_an_unreadable_line_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "ev.spool"
    a, b = ev(1), ev(2)
    s = Spool(path)
    s.append(lines([a]))
    s.append(["{not json", json.dumps({"type": "x"}), "\x00\x00\x00"])
    s.append(lines([b]))
    assert s.pending == 5
    first = s.read(10)
    assert first.events() == [a, b] and s.corrupt == 3
    s.read(10)  # reading the same lines again does not count them twice
    assert s.corrupt == 3
    s.commit(first.mark)
    assert s.pending == 0 and path.stat().st_size == 0


def test_replay_progress_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ev.spool"
    events = [ev(i) for i in range(10)]
    s = Spool(path)
    s.append(lines(events))
    b = s.read(4)
    s.commit(b.mark)
    s.read(3)  # read but never committed: a crash between XADD and checkpoint
    s.close()
    s = Spool(path)
    s.open()
    assert s.pending == 6
    assert drain(s) == events[4:]


@pytest.mark.parametrize("checkpoint", [
    '{"offset": 99999, "crc": 1}',  # past the end
    '{"offset": 5, "crc": 1}',  # not on a line boundary
    "garbage",
    None,  # right offset, wrong line: the spool was emptied and refilled after the checkpoint
])
def test_a_checkpoint_that_does_not_match_replays_everything(tmp_path: Path,
                                                             checkpoint: str | None) -> None:
    path = tmp_path / "ev.spool"
    events = [ev(i) for i in range(6)]
    s = Spool(path)
    s.append(lines(events))
    b = s.read(2)
    s.commit(b.mark)
    s.close()
    if checkpoint is None:
        # same lengths, other ids: the offset lands on a line boundary, the CRC differs
        other = [Event(e.type, e.data, uuid.uuid4().hex, e.seq, e.ts, e.node, e.call_id)
                 for e in events]
        path.write_text("".join(f"{x}\n" for x in lines(other)))
        events = other
    else:
        s.checkpoint_path.write_text(checkpoint)
    s = Spool(path)
    s.open()
    assert drain(s) == events  # duplicates rather than loss


def test_appending_during_replay_keeps_order_and_empties_at_the_end(tmp_path: Path) -> None:
    s = Spool(tmp_path / "ev.spool")
    old, new = [ev(i) for i in range(5)], [ev(i) for i in range(5, 8)]
    s.append(lines(old))
    b = s.read(5)
    s.append(lines(new))  # offer() spilling while a replay batch is in flight
    s.commit(b.mark)
    assert s.pending == 3 and s.checkpoint_path.exists()
    assert drain(s) == new
    assert s.path.stat().st_size == 0


def test_commit_out_of_order_is_refused(tmp_path: Path) -> None:
    s = Spool(tmp_path / "ev.spool")
    s.append(lines([ev(1), ev(2)]))
    m = s.append(lines([ev(3)]))
    with pytest.raises(ValueError):
        s.commit(m)


def test_a_long_line_is_read_whole(tmp_path: Path) -> None:
    s = Spool(tmp_path / "ev.spool")
    big = ev(1, blob="x" * 3_000_000)
    s.append(lines([big, ev(2)]))
    assert drain(s, 1)[0] == big


def test_one_writer_per_spool(tmp_path: Path) -> None:
    a = Spool(tmp_path / "ev.spool")
    a.open()
    with pytest.raises(SpoolLocked):
        Spool(tmp_path / "ev.spool").open()
    a.close()
    b = Spool(tmp_path / "ev.spool")
    b.open()
    b.close()


def test_head_ts_is_the_oldest_unreplayed_event(tmp_path: Path) -> None:
    s = Spool(tmp_path / "ev.spool")
    assert s.head_ts() is None
    s.append(lines([ev(1), ev(2)]))
    assert s.head_ts() == ev(1).ts
    s.commit(s.read(1).mark)
    assert s.head_ts() == ev(2).ts


def test_unserialisable_data_is_reported_not_raised() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    assert encode(Event("x", loop, "id", 1, 0.0, "n")) is None


def test_recount_trusts_the_file(tmp_path: Path) -> None:
    s = Spool(tmp_path / "ev.spool")
    s.append(lines([ev(1), ev(2)]))
    s.pending = 7  # out of step, e.g. after a write that failed half-way and could not be undone
    s.recount()
    assert s.pending == 2
    s.commit(s.read(5).mark)
    s.pending = 3
    s.recount()
    assert s.pending == 0 and s.path.stat().st_size == 0
