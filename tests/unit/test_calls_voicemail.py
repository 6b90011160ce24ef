"""Voicemail as a hotline destination: greeting and beep, a recording of the caller's leg
under voicemail.dir, and each way it ends ('#', maximum length, silence, hang-up, a failed
recording) with one voicemail.recorded and one call.ended."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from .callfakes import CallRig, FakeEndpoint, OutCall, Phone, demo_with, wall_at

WALL = wall_at("2026-03-04T10:00:00+07:00")
LOUD = struct.pack("<160h", *([8000, -8000] * 80))
QUIET = bytes(320)


def vm_rig(tmp_path: Path, max_seconds: int = 120, silence: int = 10) -> CallRig:
    text = demo_with(
        ('"19002000":\n    destination: {queue: sales}',
         '"19002000":\n    destination: {voicemail: sales-box}'),
        ("dir: recordings/voicemail", f"dir: {tmp_path}"),
        ("max_seconds: 120", f"max_seconds: {max_seconds}"),
        ("silence_seconds: 10", f"silence_seconds: {silence}"),
    )
    return CallRig(text, wall=WALL)


def leave_message(rig: CallRig) -> tuple[OutCall, FakeEndpoint]:
    c = Phone.trunk(rig).call("19002000")
    assert c.statuses == [100, 200]
    c.ack()
    ep = rig.media.allocated[0]
    assert ep.played() == [("voicemail", "beep")]
    assert ep.recorders == []  # not while the greeting plays
    ep.finish_prompt()
    return c, ep


def bye_from_engine(c: OutCall) -> None:
    c.read()
    byes = [r for r in c.received if r.method == "BYE"]
    assert len(byes) == 1
    c.answer_request(byes[0])


def nothing_left(rig: CallRig) -> None:
    assert rig.call_state() == {}
    rig.advance(40.0)
    assert rig.engine.layer.clients == {} and rig.engine.layer.servers == {}
    assert rig.call_state() == {}


def test_hash_ends_the_recording_and_publishes_it(tmp_path: Path) -> None:
    rig = vm_rig(tmp_path)
    c, ep = leave_message(rig)
    (rec,) = ep.recorders
    call_ref = rig.events_of("call.started")[0].data["call"]
    assert rec.path == tmp_path / "sales-box" / f"20260304T030000Z-{call_ref[:12]}.wav"
    assert rec.path.resolve().is_relative_to(tmp_path.resolve())
    assert ep.count("record") == 1
    assert rec.tap is not None
    for _ in range(12):  # the caller speaks for 12 s
        rec.tap(LOUD, "in")
        rig.advance(1.0)
    assert not rec.stopped
    rec.duration = 12.0
    ep.dtmf("#")
    assert rec.stopped
    (recorded,) = rig.events_of("voicemail.recorded")
    assert recorded.data == {"call": call_ref, "mailbox": "sales-box", "path": str(rec.path),
                             "duration": 12.0, "caller": "+84912345678", "reason": "dtmf"}
    bye_from_engine(c)
    ended = rig.events_of("call.ended")
    assert len(ended) == 1
    assert (ended[0].data["reason"], ended[0].data["hangup_by"]) == ("voicemail", "caller")
    nothing_left(rig)
    assert len(rig.events_of("voicemail.recorded")) == 1


def test_hash_during_the_greeting_skips_it(tmp_path: Path) -> None:
    rig = vm_rig(tmp_path)
    c = Phone.trunk(rig).call("19002000")
    c.ack()
    ep = rig.media.allocated[0]
    c.info("#")
    assert ep.playing is None
    assert len(ep.recorders) == 1
    ep.dtmf("#")
    assert rig.events_of("voicemail.recorded")[0].data["reason"] == "dtmf"


def test_recording_stops_at_max_seconds(tmp_path: Path) -> None:
    rig = vm_rig(tmp_path, max_seconds=30, silence=30)
    c, ep = leave_message(rig)
    (rec,) = ep.recorders
    for _ in range(29):
        assert rec.tap is not None
        rec.tap(LOUD, "in")
        rig.advance(1.0)
    assert not rec.stopped
    rig.advance(1.0)
    assert rec.stopped
    assert rig.events_of("voicemail.recorded")[0].data["reason"] == "max_length"
    bye_from_engine(c)
    nothing_left(rig)


def test_recording_stops_after_the_silence_seconds(tmp_path: Path) -> None:
    rig = vm_rig(tmp_path, silence=10)
    c, ep = leave_message(rig)
    (rec,) = ep.recorders
    assert rec.tap is not None
    for _ in range(5):  # talking, last heard 4 s in
        rec.tap(LOUD, "in")
        rig.advance(1.0)
    for _ in range(8):  # then quiet; what we send (direction out) is not the caller talking
        rec.tap(QUIET, "in")
        rec.tap(LOUD, "out")
        rig.advance(1.0)
    assert not rec.stopped  # 9 s of silence
    rig.advance(1.0)
    assert rec.stopped
    assert rig.events_of("voicemail.recorded")[0].data["reason"] == "silence"
    bye_from_engine(c)
    nothing_left(rig)


def test_caller_hanging_up_keeps_the_message(tmp_path: Path) -> None:
    rig = vm_rig(tmp_path)
    c, ep = leave_message(rig)
    (rec,) = ep.recorders
    rec.duration = 4.0
    c.bye()
    assert rec.stopped
    (recorded,) = rig.events_of("voicemail.recorded")
    assert (recorded.data["reason"], recorded.data["duration"]) == ("hangup", 4.0)
    assert rig.events_of("call.ended")[0].data["hangup_by"] == "caller"
    nothing_left(rig)


def test_caller_hanging_up_during_the_greeting_records_nothing(tmp_path: Path) -> None:
    rig = vm_rig(tmp_path)
    c = Phone.trunk(rig).call("19002000")
    c.ack()
    ep = rig.media.allocated[0]
    c.bye()
    assert ep.recorders == []
    assert rig.events_of("voicemail.recorded") == []
    nothing_left(rig)


@pytest.mark.parametrize("when", ["at start", "while writing"])
def test_a_failed_recording_is_reported_and_ends_the_call(tmp_path: Path, when: str) -> None:
    rig = vm_rig(tmp_path)
    c = Phone.trunk(rig).call("19002000")
    c.ack()
    ep = rig.media.allocated[0]
    if when == "at start":
        def refuse(path: object, on_error: object = None, tap: object = None) -> None:
            raise OSError("disk full")

        ep.record = refuse  # type: ignore[method-assign,assignment]
        ep.finish_prompt()
    else:
        ep.finish_prompt()
        (rec,) = ep.recorders
        assert rec.on_error is not None
        rec.on_error(OSError("disk full"))
    (failed,) = rig.events_of("recording.failed")
    assert failed.data["kind"] == "voicemail" and "disk full" in failed.data["error"]
    bye_from_engine(c)
    assert len(rig.events_of("call.ended")) == 1
    nothing_left(rig)
