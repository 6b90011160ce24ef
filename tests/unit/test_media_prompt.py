"""Prompt pre-encoding, PromptCache invalidation and the Player cursor."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from media.audiofile import AudioFileError, WavWriter
from media.g711 import Codec, decode, silence
from media.prompt import Player, Prompt, PromptCache, load_prompt

AUDIO = Path("/work/shared/peers/audio")


def ramp(samples: int) -> bytes:
    return struct.pack(f"<{samples}h", *((i * 37) % 20000 - 10000 for i in range(samples)))


def test_frames_are_20ms_and_padded_with_silence() -> None:
    p = Prompt(ramp(400), "r")
    assert p.frame_count == 3 and p.duration == pytest.approx(0.05)
    for codec in Codec:
        frames = p.frames(codec)
        assert len(frames) == 3 and all(len(f) == 160 for f in frames)
        assert frames[2][80:] == silence(codec, 80)
        # frames are the clip itself, encoded
        pcm = b"".join(decode(codec, f) for f in frames)[:800]
        got = struct.unpack("<400h", pcm)
        want = struct.unpack("<400h", ramp(400))
        assert all(abs(a - b) <= max(abs(b) / 16, 32) for a, b in zip(got, want, strict=True))
    assert p.frames(Codec(0)) is p.frames(Codec.PCMU)


def test_empty_and_odd_pcm() -> None:
    assert Prompt(b"").frame_count == 0
    with pytest.raises(ValueError):
        Prompt(b"\x00")


def test_player_once_loop_stop_and_codec_switch() -> None:
    a, b = Prompt(ramp(320), "a"), Prompt(ramp(160), "b")
    once = Player([a, b])
    got = [once.next_frame(Codec.PCMU) for _ in range(4)]
    assert got == [*a.frames(Codec.PCMU), b.frames(Codec.PCMU)[0], None]
    assert once.finished and once.position == pytest.approx(0.06)

    moh = Player(a, loop=True)
    seq = [moh.next_frame(Codec.PCMA if i % 2 else Codec.PCMU) for i in range(5)]
    assert seq == [
        a.frames(Codec.PCMU)[0],
        a.frames(Codec.PCMA)[1],
        a.frames(Codec.PCMU)[0],
        a.frames(Codec.PCMA)[1],
        a.frames(Codec.PCMU)[0],
    ]
    moh.stop()
    assert moh.next_frame(Codec.PCMU) is None and moh.finished


def test_player_over_nothing_finishes_even_when_looping() -> None:
    assert Player(Prompt(b""), loop=True).next_frame(Codec.PCMU) is None
    assert Player([], loop=True).finished


def write_prompt(path: Path, samples: int) -> None:
    with WavWriter(path) as w:
        w.write(ramp(samples))


def test_cache_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "welcome.wav"
    write_prompt(path, 800)
    cache = PromptCache()
    first = cache.get(path)
    assert cache.get(str(path)) is first and cache.loads == 1 and path in cache
    write_prompt(path, 1600)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    second = cache.get(path)
    assert second is not first and second.frame_count == 10 and cache.loads == 2
    assert len(cache) == 1
    cache.invalidate(path)
    assert path not in cache


def test_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"p{i}.wav")
        write_prompt(paths[-1], 160)
    cache = PromptCache(max_entries=2)
    cache.get(paths[0])
    cache.get(paths[1])
    cache.get(paths[0])  # p0 now most recently used
    cache.get(paths[2])
    assert paths[0] in cache and paths[1] not in cache and paths[2] in cache


def test_cache_and_loader_report_missing_files(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError):
        PromptCache().get(tmp_path / "missing.wav")
    with pytest.raises(AudioFileError):
        load_prompt(tmp_path / "missing.wav")


@pytest.mark.skipif(not AUDIO.is_dir(), reason="shared test audio not present")
def test_shared_prompt() -> None:
    p = load_prompt(AUDIO / "prompt-en-8k.wav")
    assert 2.0 < p.duration < 10.0
    assert p.frame_count == -(-len(p.pcm) // 320)
