"""Recording through the media engine on the fake loop, with the real writer thread: stereo
files with the caller left and the agent right, mono recordings with an extra tap, and a
slow or failing disk that stops the recording, reports it, and never holds up the call."""

from __future__ import annotations

import struct
import threading
import time
import wave
from pathlib import Path

from acd.runtime.media import RecordingError
from acd.runtime.rtprecorder import Recorder
from media.g711 import Codec, decode, encode
from media.prompt import Prompt
from tests.unit.test_rtp_runtime import Rig, rtp


def level_frame(codec: Codec, value: int) -> bytes:
    return encode(codec, struct.pack("<h", value) * 160)


def wait_closed(r: Rig, rec: Recorder) -> None:
    deadline = time.monotonic() + 5
    while not rec.file_closed:
        assert time.monotonic() < deadline, "the writer thread never closed the file"
        time.sleep(0.002)
        r.loop.poll()


def test_stereo_recording_caller_left_agent_right(tmp_path: Path) -> None:
    r = Rig()
    a, pa = r.leg(remote=("192.0.2.1", 4000), codec=Codec.PCMU)
    b, pb = r.leg(remote=("192.0.2.2", 4000), codec=Codec.PCMA)
    a.bridge(b)
    rec = r.engine.record(tmp_path / "calls" / "c1.wav", a, b)
    for i in range(50):  # one second from each side, the agent 7 ms behind
        r.to(a, pa, rtp(level_frame(Codec.PCMU, 1000), i, 160 * i))
        r.loop.advance(0.007)
        r.to(b, pb, rtp(level_frame(Codec.PCMA, -3000), i, 160 * i, pt=8))
        r.loop.advance(0.013)
    assert len(pb.take()) == 50 and len(pa.take()) == 50  # the bridge carried on
    duration = rec.stop()
    assert rec.stop() == duration  # idempotent
    wait_closed(r, rec)
    with wave.open(str(tmp_path / "calls" / "c1.wav")) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        frames = w.readframes(w.getnframes())
    assert w.getnframes() == round(duration * 8000) and 0.98 <= duration <= 1.02
    pcm = struct.unpack(f"<{len(frames) // 2}h", frames)
    left, right = pcm[0::2], pcm[1::2]
    want_l = struct.unpack("<h", decode(Codec.PCMU, level_frame(Codec.PCMU, 1000))[:2])[0]
    want_r = struct.unpack("<h", decode(Codec.PCMA, level_frame(Codec.PCMA, -3000))[:2])[0]
    assert left.count(want_l) >= 7800 and right.count(want_r) >= 7800
    assert set(left) <= {want_l, 0} and set(right) <= {want_r, 0}
    assert rec.failed is None and r.engine.stats()["recordings"] == 0


def test_a_recording_is_told_only_what_arrives(tmp_path: Path) -> None:
    # a bridged, recorded call: the recording listens to what each party sends ("in"), so
    # the packets relayed out to the other party are not decoded for it a second time
    r = Rig()
    a, pa = r.leg(remote=("192.0.2.1", 4000), codec=Codec.PCMU)
    b, pb = r.leg(remote=("192.0.2.2", 4000), codec=Codec.PCMU)
    a.bridge(b)
    heard: list[tuple[str, str]] = []
    b.add_tap(lambda pcm, d: heard.append(("both", d)))
    b.add_tap(lambda pcm, d: heard.append(("in", d)), out=False)
    rec = r.engine.record(tmp_path / "c.wav", a, b)
    assert (len(a._taps), len(a._out_taps), len(b._taps), len(b._out_taps)) == (1, 0, 3, 1)
    r.to(a, pa, rtp(level_frame(Codec.PCMU, 1000), 0, 0))  # a -> relayed out of b
    r.to(b, pb, rtp(level_frame(Codec.PCMU, 1000), 0, 0))  # arrives at b
    assert sorted(heard) == [("both", "in"), ("both", "out"), ("in", "in")]
    rec.stop()
    wait_closed(r, rec)
    assert (len(a._taps), len(a._out_taps), len(b._taps), len(b._out_taps)) == (0, 0, 2, 1)


def test_mono_recording_with_a_tap(tmp_path: Path) -> None:
    r = Rig()
    ep, peer = r.leg()
    heard: list[tuple[int, str]] = []
    rec = ep.record(tmp_path / "vm.wav", tap=lambda pcm, d: heard.append((len(pcm), d)))
    ep.play(Prompt(bytes(640)))
    for i in range(25):
        r.to(ep, peer, rtp(level_frame(Codec.PCMU, 500), i, 160 * i))
        r.loop.advance(0.02)
    assert rec.stop() == 0.5
    wait_closed(r, rec)
    with wave.open(str(tmp_path / "vm.wav")) as w:
        assert w.getnchannels() == 1 and w.getnframes() == 4000
    assert heard.count((320, "in")) == 25 and heard.count((320, "out")) == 2
    r.to(ep, peer, rtp(level_frame(Codec.PCMU, 500), 99, 160 * 99))
    assert len(heard) == 27  # the tap went with the recording


class BlockedSink:
    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate
        self.closed = False

    def write(self, pcm: bytes) -> None:
        self.gate.wait(5)

    def write_stereo(self, left: bytes, right: bytes) -> None:
        self.gate.wait(5)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_a_stuck_disk_fills_the_queue_fails_the_recording_and_the_call_goes_on() -> None:
    gate = threading.Event()
    sinks: list[BlockedSink] = []

    def open_wav(path: str, channels: int) -> BlockedSink:
        sinks.append(BlockedSink(gate))
        return sinks[-1]

    r = Rig(recording_queue=3, open_wav=open_wav)
    a, pa = r.leg(remote=("192.0.2.1", 4000))
    b, pb = r.leg(remote=("192.0.2.2", 4000))
    a.bridge(b)
    errors: list[BaseException] = []
    rec = r.engine.record("/nonexistent/x.wav", a, b, on_error=errors.append)
    t0 = time.monotonic()
    for i in range(100):  # 2 s of audio: far more than 3 queued spans of 200 ms
        r.to(a, pa, rtp(level_frame(Codec.PCMU, 100), i, 160 * i))
        r.loop.advance(0.02)
    assert time.monotonic() - t0 < 1.0  # nothing waited for the disk
    assert len(errors) == 1 and isinstance(errors[0], RecordingError)
    assert rec.failed is errors[0] and rec.stopped
    assert len(pb.take()) == 100  # every packet was relayed
    gate.set()
    wait_closed(r, rec)
    assert sinks[0].closed and len(errors) == 1
    rec.stop()


def test_a_write_error_is_reported_once_on_the_loop(tmp_path: Path) -> None:
    class FullDisk(BlockedSink):
        def write(self, pcm: bytes) -> None:
            raise OSError(28, "No space left on device")

    r = Rig(open_wav=lambda path, ch: FullDisk(threading.Event()))
    ep, peer = r.leg()
    errors: list[BaseException] = []
    rec = ep.record(tmp_path / "x.wav", on_error=errors.append)
    for i in range(60):
        r.to(ep, peer, rtp(level_frame(Codec.PCMU, 100), i, 160 * i))
        r.loop.advance(0.02)
        time.sleep(0.001)  # let the writer thread run
    wait_closed(r, rec)
    assert len(errors) == 1 and isinstance(errors[0], OSError) and rec.stopped
    assert ep.stats["packets_in"] == 60


def test_engine_close_finishes_recordings(tmp_path: Path) -> None:
    r = Rig()
    ep, peer = r.leg()
    rec = ep.record(tmp_path / "y.wav")
    r.to(ep, peer, rtp(level_frame(Codec.PCMU, 100), 1, 160))
    r.engine.close()
    assert rec.stopped
    wait_closed(r, rec)
    assert r.engine._writer is not None and r.engine._writer.done.wait(5)
