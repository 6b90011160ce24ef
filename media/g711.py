"""G.711 (PCMU / PCMA): the codec enum, linear PCM <-> G.711 conversion, silence frames and
direct mu-law <-> A-law transcoding.

Linear PCM everywhere in media/ means signed 16-bit little-endian mono bytes. Encoding and
decoding delegate to `audioop` (C); transcoding is a single `bytes.translate` with a 256-entry
table, so the bridge can convert a 160-byte frame in well under a microsecond.
"""

from __future__ import annotations

import sys
from enum import IntEnum

from media._audioop import audioop

__all__ = [
    "Codec",
    "alaw_to_ulaw",
    "decode",
    "encode",
    "silence",
    "transcode",
    "ulaw_to_alaw",
]

# audioop works in native byte order; media/ speaks little-endian on the wire and on disk.
_BIG_ENDIAN_HOST = sys.byteorder == "big"


class Codec(IntEnum):
    """A G.711 law, valued by its static RTP payload type (RFC 3551)."""

    PCMU = 0
    PCMA = 8

    @property
    def payload_type(self) -> int:
        return int(self)

    @classmethod
    def from_name(cls, name: str) -> Codec:
        """'PCMU', 'pcma', 'PCMU/8000' -> Codec; ValueError for anything else."""
        key = name.split("/", 1)[0].strip().upper()
        try:
            return cls[key]
        except KeyError:
            raise ValueError(f"not a G.711 codec: {name!r}") from None


def _to_native(pcm: bytes) -> bytes:
    return audioop.byteswap(pcm, 2) if _BIG_ENDIAN_HOST else pcm


def encode(codec: Codec, pcm: bytes) -> bytes:
    """16-bit LE linear PCM -> G.711 bytes (one byte per sample). ValueError for an odd
    length: half a sample is a framing bug upstream, not something to drop silently."""
    if len(pcm) & 1:
        raise ValueError("linear PCM must be whole 16-bit samples")
    pcm = _to_native(pcm)
    if codec is Codec.PCMU:
        return audioop.lin2ulaw(pcm, 2)
    return audioop.lin2alaw(pcm, 2)


def decode(codec: Codec, data: bytes) -> bytes:
    """G.711 bytes -> 16-bit LE linear PCM (two bytes per input byte)."""
    pcm = audioop.ulaw2lin(data, 2) if codec is Codec.PCMU else audioop.alaw2lin(data, 2)
    return _to_native(pcm)


# Composition through linear PCM is exact for every code word, which is what G.711's own
# tables approximate; computed once here instead of hard-coding 512 magic numbers.
_ALL_CODES = bytes(range(256))
_U2A = audioop.lin2alaw(audioop.ulaw2lin(_ALL_CODES, 2), 2)
_A2U = audioop.lin2ulaw(audioop.alaw2lin(_ALL_CODES, 2), 2)

_SILENCE_BYTE = {
    Codec.PCMU: audioop.lin2ulaw(b"\x00\x00", 2),  # 0xFF
    Codec.PCMA: audioop.lin2alaw(b"\x00\x00", 2),  # 0xD5
}
_SILENCE_20MS = {codec: byte * 160 for codec, byte in _SILENCE_BYTE.items()}


def ulaw_to_alaw(data: bytes) -> bytes:
    return data.translate(_U2A)


def alaw_to_ulaw(data: bytes) -> bytes:
    return data.translate(_A2U)


def transcode(data: bytes, src: Codec, dst: Codec) -> bytes:
    """Re-encode a G.711 payload from one law to the other (identity when equal)."""
    if src is dst:
        return data
    return data.translate(_U2A if src is Codec.PCMU else _A2U)


def silence(codec: Codec, samples: int = 160) -> bytes:
    """A frame of digital silence; the 20 ms one is cached."""
    if samples == 160:
        return _SILENCE_20MS[codec]
    return _SILENCE_BYTE[codec] * samples
