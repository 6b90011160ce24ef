"""WAV reading in every supported layout (files generated here), soxr resampling including
an aliasing check, and the incremental WavWriter."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media._audioop import audioop
from media.audiofile import (
    AudioFileError,
    WavFormat,
    WavWriter,
    load_audio_8k,
    read_wav,
    resample_pcm16,
)

AUDIO = Path("/work/shared/peers/audio")
GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


def sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> list[float]:
    return [amp * math.sin(2 * math.pi * freq * i / rate) for i in range(int(rate * seconds))]


def encode_samples(values: list[float], tag: int, width: int) -> bytes:
    """Float samples in [-1, 1) -> raw bytes in a WAV layout, written independently of the
    code under test."""
    if tag == 3:
        return struct.pack(f"<{len(values)}{'f' if width == 4 else 'd'}", *values)
    if tag in (6, 7):
        lin = struct.pack(f"<{len(values)}h", *(round(v * 32767) for v in values))
        return audioop.lin2alaw(lin, 2) if tag == 6 else audioop.lin2ulaw(lin, 2)
    if width == 1:
        return bytes(round(v * 127) + 128 for v in values)
    scale = (1 << (8 * width - 1)) - 1
    return b"".join(round(v * scale).to_bytes(width, "little", signed=True) for v in values)


def make_wav(
    path: Path,
    channels_data: list[list[float]],
    rate: int,
    tag: int = 1,
    width: int = 2,
    extensible: bool = False,
    extra_chunks: bytes = b"",
    data_size: int | None = None,
) -> Path:
    channels = len(channels_data)
    frames = list(zip(*channels_data, strict=True))
    data = encode_samples([v for frame in frames for v in frame], tag, width)
    block = channels * width
    if extensible:
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, width * 8)
        fmt += struct.pack("<HHI", 22, width * 8, 0) + struct.pack("<H", tag) + GUID_TAIL
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, width * 8)
        if tag != 1:
            fmt += b"\x00\x00"  # cbSize, as non-PCM writers add
    body = b"WAVE" + extra_chunks + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data
    if len(data) % 2:
        body += b"\x00"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def samples16(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def amplitude(pcm: bytes, freq: float, rate: int = 8000) -> float:
    """Amplitude (of 1.0) of one frequency, by correlation over the middle of the signal."""
    x = samples16(pcm)
    x = x[len(x) // 4 : 3 * len(x) // 4]
    w = 2 * math.pi * freq / rate
    re = sum(v * math.cos(w * i) for i, v in enumerate(x))
    im = sum(v * math.sin(w * i) for i, v in enumerate(x))
    return 2 * math.hypot(re, im) / len(x) / 32768


@pytest.mark.parametrize(
    ("rate", "tag", "width", "channels", "extensible"),
    [
        (8000, 1, 2, 1, False),
        (44100, 3, 4, 2, False),  # float32 stereo
        (16000, 1, 3, 1, False),  # 24-bit
        (8000, 7, 1, 1, False),  # mu-law
        (8000, 6, 1, 1, False),  # A-law
        (11025, 1, 1, 1, False),  # 8-bit unsigned
        (48000, 1, 4, 2, False),  # 32-bit int stereo
        (22050, 3, 8, 1, False),  # float64
        (48000, 1, 3, 2, True),  # extensible 24-bit stereo
        (32000, 3, 4, 1, True),  # extensible float
        (8000, 7, 1, 2, True),  # extensible mu-law stereo
        (6000, 1, 2, 1, False),  # below 8 kHz: upsampled
        (3000, 1, 2, 1, False),  # well below 8 kHz
    ],
)
def test_formats_load_to_8k_mono(
    tmp_path: Path, rate: int, tag: int, width: int, channels: int, extensible: bool
) -> None:
    tone = sine(1000, rate, 0.5)
    data = [tone] + [[0.0] * len(tone)] * (channels - 1)
    path = make_wav(tmp_path / "x.wav", data, rate, tag, width, extensible)
    fmt, _raw = read_wav(path)
    assert (fmt.format_tag, fmt.channels, fmt.sample_rate, fmt.sample_width) == (
        tag,
        channels,
        rate,
        width,
    )
    pcm = load_audio_8k(path)
    assert abs(len(pcm) // 2 - 4000) <= 2
    # tone on one channel only: the downmix averages channels
    assert amplitude(pcm, 1000) == pytest.approx(0.5 / channels, rel=0.03)
    assert amplitude(pcm, 2000) < 0.01


def test_8k_16bit_mono_is_passed_through_exactly(tmp_path: Path) -> None:
    values = sine(440, 8000, 0.1, amp=0.9)
    path = make_wav(tmp_path / "a.wav", [values], 8000)
    assert load_audio_8k(path) == encode_samples(values, 1, 2)


def test_unknown_and_odd_sized_chunks_are_skipped(tmp_path: Path) -> None:
    odd = b"LIST" + struct.pack("<I", 5) + b"abcde" + b"\x00"  # odd size + pad byte
    junk = b"JUNK" + struct.pack("<I", 4) + b"1234"
    path = make_wav(tmp_path / "c.wav", [sine(1000, 8000, 0.2)], 8000, extra_chunks=odd + junk)
    assert amplitude(load_audio_8k(path), 1000) == pytest.approx(0.5, rel=0.01)


def test_truncated_data_chunk_reads_what_is_there(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "t.wav", [sine(1000, 8000, 0.1)], 8000, data_size=10**6)
    fmt, data = read_wav(path)
    assert fmt == WavFormat(1, 1, 8000, 16, 2) and len(data) == 1600


def _bad(tmp_path: Path, content: bytes) -> Path:
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    return p


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"ID3\x03" + bytes(40), "not a RIFF/WAVE"),
        (b"RIFX" + bytes(4) + b"WAVE", "RIFX"),
        (b"RIFF" + bytes(4) + b"WAVE" + b"data" + bytes(4), "no fmt chunk"),
        (b"RIFF" + bytes(4) + b"WAVEfmt \x04\x00\x00\x00\x01\x00\x01\x00", "too short"),
        (
            b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00"
            + struct.pack("<HHIIHH", 0x55, 1, 8000, 1000, 1, 0),
            "format tag 0x55",
        ),
        (
            b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00"
            + struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16),
            "no data chunk",
        ),
        (
            b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00"
            + struct.pack("<HHIIHH", 1, 1, 1, 2, 2, 16),
            "sample rate 1 Hz",
        ),
        (
            b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00"
            + struct.pack("<HHIIHH", 1, 0, 8000, 2, 2, 16),
            "0 channels",
        ),
        (
            b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00"
            + struct.pack("<HHIIHH", 1, 1, 8000, 40000, 5, 40),
            "sample layout",
        ),
        (
            b"RIFF\x00\x00\x00\x00WAVEfmt \x28\x00\x00\x00"
            + struct.pack("<HHIIHH", 0xFFFE, 1, 8000, 16000, 2, 16)
            + struct.pack("<HHI", 22, 16, 0)
            + bytes(16),
            "extensible sub-format",
        ),
    ],
)
def test_errors_name_the_file_and_the_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = _bad(tmp_path, content)
    with pytest.raises(AudioFileError) as info:
        load_audio_8k(path)
    assert info.value.path == str(path)
    assert reason in info.value.reason


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError):
        load_audio_8k(tmp_path / "nope.wav")


def test_resampling_suppresses_aliases() -> None:
    # A 6 kHz tone is above the 4 kHz Nyquist limit of 8 kHz audio: it must vanish.
    tone48 = encode_samples(sine(6000, 48000, 1.0), 1, 2)
    ours = resample_pcm16(tone48, 48000, 8000)
    folded = audioop.ratecv(tone48, 2, 1, 48000, 8000, None)[0]
    assert amplitude(folded, 2000) > 0.1  # the naive converter folds it to 2 kHz ...
    n = len(ours) // 2
    middle = ours[n // 4 * 2 : 3 * n // 4 * 2]  # leave out the filter's start and end
    residue = audioop.rms(middle, 2) / 32768 * math.sqrt(2)
    assert 20 * math.log10(max(residue, 1e-9) / 0.5) < -40  # ... soxr removes it
    # while an in-band tone passes unchanged in level
    passed = resample_pcm16(encode_samples(sine(3000, 48000, 1.0), 1, 2), 48000)
    assert amplitude(passed, 3000) == pytest.approx(0.5, rel=0.02)


def test_resample_identity() -> None:
    pcm = encode_samples(sine(500, 8000, 0.05), 1, 2)
    assert resample_pcm16(pcm, 8000, 8000) is pcm


def test_writer_mono_and_incremental_flush(tmp_path: Path) -> None:
    path = tmp_path / "vm.wav"
    frame = encode_samples(sine(1000, 8000, 0.02), 1, 2)
    with WavWriter(path) as w:
        w.write(frame)
        w.flush()
        with wave.open(str(path)) as r:  # readable mid-recording
            assert r.getnframes() == 160
        w.write(frame)
        assert w.frames_written == 320 and w.duration == pytest.approx(0.04)
    with wave.open(str(path)) as r:
        assert (r.getnchannels(), r.getsampwidth(), r.getframerate()) == (1, 2, 8000)
        assert r.readframes(320) == frame * 2
    assert load_audio_8k(path) == frame * 2
    with pytest.raises(ValueError):
        w.write(frame)


def test_writer_stereo_caller_left_agent_right(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    caller = struct.pack("<3h", 1, -2, 32767)
    agent = struct.pack("<2h", -32768, 5)
    with WavWriter(path, channels=2) as w:
        w.write_stereo(caller, agent)
        with pytest.raises(ValueError):
            w.write(b"\x00\x00")  # half a stereo frame
    with wave.open(str(path)) as r:
        assert r.getnchannels() == 2 and r.getnframes() == 3
        assert struct.unpack("<6h", r.readframes(3)) == (1, -32768, -2, 5, 32767, 0)
    with WavWriter(tmp_path / "m.wav") as mono, pytest.raises(ValueError):
        mono.write_stereo(caller, caller)


@pytest.mark.skipif(not AUDIO.is_dir(), reason="shared test audio not present")
def test_shared_prompt_loads_unchanged() -> None:
    with wave.open(str(AUDIO / "prompt-en-8k.wav")) as r:
        expected = r.readframes(r.getnframes())
    assert load_audio_8k(AUDIO / "prompt-en-8k.wav") == expected


fmt_bodies = st.builds(
    lambda tag, ch, rate, block, bits, tail: (
        struct.pack("<HHIIHH", tag, ch, rate, 0, block, bits) + tail
    ),
    st.sampled_from([1, 3, 6, 7, 0xFFFE, 0x55, 0]),
    st.integers(0, 3),
    st.integers(0, 96000),
    st.integers(0, 16),
    st.integers(0, 64),
    st.binary(max_size=30),
)
chunks = st.one_of(
    fmt_bodies.map(lambda b: b"fmt " + struct.pack("<I", len(b)) + b),
    st.binary(max_size=64).map(lambda b: b"data" + struct.pack("<I", len(b)) + b),
    st.tuples(
        st.binary(min_size=4, max_size=4), st.integers(0, 2**32 - 1), st.binary(max_size=20)
    ).map(lambda t: t[0] + struct.pack("<I", t[1]) + t[2]),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(chunks, max_size=5), st.binary(max_size=8))
def test_reader_raises_only_audio_file_error(
    tmp_path: Path, parts: list[bytes], tail: bytes
) -> None:
    body = b"WAVE" + b"".join(parts) + tail
    path = tmp_path / "fuzz.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    try:
        pcm = load_audio_8k(path)
    except AudioFileError:
        return
    assert len(pcm) % 2 == 0
