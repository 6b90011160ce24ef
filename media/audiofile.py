"""WAV files: a reader for the formats prompts arrive in, converting to what the media path
uses (8 kHz, 16-bit LE, mono), and `WavWriter`, an incremental 8 kHz 16-bit writer for
voicemail and call recordings.

The reader walks RIFF chunks itself because the stdlib `wave` reads integer PCM only. It
accepts format tags 1 (PCM 8/16/24/32-bit), 3 (IEEE float 32/64), 6 (A-law), 7 (mu-law) and
WAVE_FORMAT_EXTENSIBLE with those sub-formats, any sample rate, any channel count (averaged
to mono). Resampling uses soxr (a proper anti-aliasing filter; audioop.ratecv would fold
everything above 4 kHz back into the band). soxr's interface is numpy arrays and numpy is a
hard dependency of soxr, so this load-time module uses numpy; nothing on the per-packet path
does. Runs once per prompt load: call it off the event loop.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soxr

from media._audioop import audioop

__all__ = [
    "TARGET_RATE",
    "AudioFileError",
    "WavFormat",
    "WavWriter",
    "load_audio_8k",
    "read_wav",
    "resample_pcm16",
    "wav_to_pcm16_mono",
]

TARGET_RATE = 8000
MIN_RATE, MAX_RATE = 2000, 768000

PCM, IEEE_FLOAT, ALAW, MULAW, EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
# Every KSDATAFORMAT_SUBTYPE_* GUID for a classic format tag is the tag followed by this tail.
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
_WIDTHS = {PCM: (1, 2, 3, 4), IEEE_FLOAT: (4, 8), ALAW: (1,), MULAW: (1,)}

_CHUNK = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")


class AudioFileError(Exception):
    """An audio file that cannot be used, with the path and a human-readable reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WavFormat:
    format_tag: int  # resolved: an EXTENSIBLE file reports its sub-format here
    channels: int
    sample_rate: int
    bits_per_sample: int
    block_align: int

    @property
    def sample_width(self) -> int:
        """Bytes per sample in the container (24-bit-in-32 files say 4 here)."""
        return self.block_align // self.channels


def _parse_fmt(path: str, body: bytes) -> WavFormat:
    if len(body) < _FMT.size:
        raise AudioFileError(path, f"fmt chunk of {len(body)} bytes is too short")
    tag, channels, rate, _byte_rate, block_align, bits = _FMT.unpack_from(body)
    if tag == EXTENSIBLE:
        if len(body) < 40:
            raise AudioFileError(path, "WAVE_FORMAT_EXTENSIBLE fmt chunk is too short")
        guid = body[24:40]
        if guid[2:] != _GUID_TAIL:
            raise AudioFileError(path, f"unsupported extensible sub-format {guid.hex()}")
        tag = struct.unpack_from("<H", guid)[0]
    if tag not in _WIDTHS:
        raise AudioFileError(path, f"unsupported WAV format tag {tag:#x}")
    if channels < 1:
        raise AudioFileError(path, "fmt chunk says 0 channels")
    # Outside this range a file is broken, not exotic; and a 1 Hz header on a big data chunk
    # would make the resampler allocate thousands of times the file size.
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFileError(path, f"unsupported sample rate {rate} Hz")
    fmt = WavFormat(tag, channels, rate, bits, block_align)
    if block_align % channels or fmt.sample_width not in _WIDTHS[tag]:
        raise AudioFileError(
            path, f"unsupported sample layout: {bits} bits in {block_align}-byte frames"
        )
    return fmt


def read_wav(path: str | os.PathLike[str]) -> tuple[WavFormat, bytes]:
    """The format and the raw sample bytes (whole frames only) of a RIFF/WAVE file.

    Unknown chunks are skipped (honouring the pad byte after odd-sized chunks); a data chunk
    whose size runs past the end of the file, as left by a writer that crashed, is read to
    the end of the file."""
    spath = os.fspath(path)
    try:
        with open(spath, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise AudioFileError(spath, exc.strerror or str(exc)) from exc
    if len(raw) < 12 or raw[8:12] != b"WAVE" or raw[:4] not in (b"RIFF", b"RIFX", b"RF64"):
        raise AudioFileError(spath, "not a RIFF/WAVE file")
    if raw[:4] != b"RIFF":
        raise AudioFileError(spath, f"{raw[:4].decode()} WAV files are not supported")
    fmt: WavFormat | None = None
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(raw):
        cid, size = _CHUNK.unpack_from(raw, pos)
        start = pos + 8
        end = start + size
        if cid == b"fmt ":
            if end > len(raw):
                raise AudioFileError(spath, "truncated fmt chunk")
            fmt = _parse_fmt(spath, raw[start:end])
        elif cid == b"data" and data is None:
            data = raw[start : min(end, len(raw))]
        pos = end + (size & 1)
    if fmt is None:
        raise AudioFileError(spath, "no fmt chunk")
    if data is None:
        raise AudioFileError(spath, "no data chunk")
    return fmt, data[: len(data) - len(data) % fmt.block_align]


def _to_float_mono(fmt: WavFormat, data: bytes) -> np.ndarray:
    width = fmt.sample_width
    samples: np.ndarray
    if fmt.format_tag in (ALAW, MULAW):
        lin = audioop.alaw2lin(data, 2) if fmt.format_tag == ALAW else audioop.ulaw2lin(data, 2)
        samples = np.frombuffer(lin, dtype="=i2") / np.float32(32768.0)
    elif fmt.format_tag == IEEE_FLOAT:
        samples = np.frombuffer(data, dtype="<f4" if width == 4 else "<f8")
        samples = np.nan_to_num(samples.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    elif width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(data, dtype="<i2") / np.float32(32768.0)
    elif width == 3:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)  # sign lands in bit 31
        samples = ints / np.float32(2147483648.0)
    else:
        samples = np.frombuffer(data, dtype="<i4") / np.float32(2147483648.0)
    samples = samples.astype(np.float32, copy=False)
    if fmt.channels > 1:
        samples = samples.reshape(-1, fmt.channels).mean(axis=1, dtype=np.float32)
    return samples


def _float_to_pcm16(samples: np.ndarray) -> bytes:
    scaled = np.clip(np.rint(samples * 32768.0), -32768, 32767)
    return scaled.astype("<i2").tobytes()


def wav_to_pcm16_mono(fmt: WavFormat, data: bytes, rate: int = TARGET_RATE) -> bytes:
    """Decode samples in `fmt` to 16-bit LE mono PCM at `rate`."""
    if (fmt.format_tag, fmt.sample_width, fmt.channels, fmt.sample_rate) == (PCM, 2, 1, rate):
        return bytes(data)  # already in the target form: no rounding trip through float
    samples = _to_float_mono(fmt, data)
    if fmt.sample_rate != rate and len(samples):
        samples = soxr.resample(samples, fmt.sample_rate, rate, quality="HQ")
    return _float_to_pcm16(samples)


def load_audio_8k(path: str | os.PathLike[str]) -> bytes:
    """A WAV file as 8 kHz 16-bit LE mono PCM. AudioFileError for anything unusable."""
    fmt, data = read_wav(path)
    return wav_to_pcm16_mono(fmt, data)


def resample_pcm16(pcm: bytes, rate_in: int, rate_out: int = TARGET_RATE) -> bytes:
    """Resample 16-bit LE mono PCM with soxr's high-quality (anti-aliased) converter."""
    if rate_in == rate_out:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / np.float32(32768.0)
    return _float_to_pcm16(soxr.resample(samples, rate_in, rate_out, quality="HQ"))


class WavWriter:
    """Incremental 16-bit PCM WAV writer (8 kHz by default, mono or stereo).

    The RIFF and data sizes are written as zero at open and fixed up by `flush()` and
    `close()`, so calling `flush()` now and then leaves a playable file if the process dies.
    For call recordings, `write_stereo(caller, agent)` puts the caller on the left channel
    and the agent on the right.
    """

    def __init__(
        self, path: str | os.PathLike[str], channels: int = 1, sample_rate: int = TARGET_RATE
    ) -> None:
        if channels not in (1, 2):
            raise ValueError("WavWriter writes mono or stereo")
        self.path = os.fspath(path)
        self.channels = channels
        self.sample_rate = sample_rate
        self._data_bytes = 0
        try:
            self._fh: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise AudioFileError(self.path, exc.strerror or str(exc)) from exc
        self._fh.write(self._header())

    def _header(self) -> bytes:
        block = 2 * self.channels
        return b"".join(
            (
                _CHUNK.pack(b"RIFF", 36 + self._data_bytes),
                b"WAVE",
                _CHUNK.pack(b"fmt ", 16),
                _FMT.pack(
                    PCM, self.channels, self.sample_rate, self.sample_rate * block, block, 16
                ),
                _CHUNK.pack(b"data", self._data_bytes),
            )
        )

    @property
    def frames_written(self) -> int:
        return self._data_bytes // (2 * self.channels)

    @property
    def duration(self) -> float:
        return self.frames_written / self.sample_rate

    def write(self, pcm: bytes) -> None:
        """Interleaved 16-bit LE frames (for stereo: L, R, L, R, ...)."""
        if self._fh is None:
            raise ValueError("write to a closed WavWriter")
        if len(pcm) % (2 * self.channels):
            raise ValueError("partial frame")
        self._fh.write(pcm)
        self._data_bytes += len(pcm)

    def write_stereo(self, left: bytes, right: bytes) -> None:
        """Two mono 16-bit LE buffers as one stereo span; the shorter is padded with silence."""
        if self.channels != 2:
            raise ValueError("write_stereo on a mono WavWriter")
        if len(left) != len(right):
            n = max(len(left), len(right))
            left, right = left.ljust(n, b"\x00"), right.ljust(n, b"\x00")
        # Factors of exactly 1 and 0 and adding to zeros are exact in any byte order.
        self.write(
            audioop.add(audioop.tostereo(left, 2, 1, 0), audioop.tostereo(right, 2, 0, 1), 2)
        )

    def flush(self) -> None:
        if self._fh is None:
            return
        here = self._fh.tell()
        self._fh.seek(0)
        self._fh.write(self._header())
        self._fh.seek(here)
        self._fh.flush()

    def close(self) -> None:
        if self._fh is None:
            return
        self.flush()
        self._fh.close()
        self._fh = None

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
