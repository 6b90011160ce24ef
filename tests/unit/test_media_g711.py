"""G.711 encode/decode, silence and table transcoding."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.g711 import (
    Codec,
    alaw_to_ulaw,
    decode,
    encode,
    silence,
    transcode,
    ulaw_to_alaw,
)


def _pcm(samples: list[int]) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def test_codec_payload_types_and_names() -> None:
    assert Codec.PCMU.payload_type == 0
    assert Codec.PCMA.payload_type == 8
    assert Codec.from_name("pcmu/8000") is Codec.PCMU
    assert Codec.from_name("PCMA") is Codec.PCMA
    with pytest.raises(ValueError):
        Codec.from_name("G729")


def test_known_code_words() -> None:
    # Zero encodes to the textbook silence words; full scale to the extreme code words.
    assert encode(Codec.PCMU, _pcm([0])) == b"\xff"
    assert encode(Codec.PCMA, _pcm([0])) == b"\xd5"
    assert encode(Codec.PCMU, _pcm([32767, -32768])) == b"\x80\x00"
    assert silence(Codec.PCMU) == b"\xff" * 160
    assert silence(Codec.PCMA, 80) == b"\xd5" * 80


@pytest.mark.parametrize("codec", list(Codec))
def test_round_trip_error_is_small_for_a_sine(codec: Codec) -> None:
    pcm = [round(10000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(160)]
    back = struct.unpack("<160h", decode(codec, encode(codec, _pcm(pcm))))
    for orig, got in zip(pcm, back, strict=True):
        # G.711 quantisation: < 1/16 relative error above the linear segment.
        assert abs(orig - got) <= max(abs(orig) / 16, 32)


@pytest.mark.parametrize("codec", list(Codec))
def test_decode_is_little_endian_and_two_bytes_per_sample(codec: Codec) -> None:
    data = encode(codec, _pcm([1000, -1000]))
    pcm = decode(codec, data)
    assert len(pcm) == 4
    a, b = struct.unpack("<2h", pcm)
    assert 900 < a < 1100 and -1100 < b < -900


@given(st.binary(max_size=400))
def test_transcoding_matches_decode_then_encode(data: bytes) -> None:
    assert ulaw_to_alaw(data) == encode(Codec.PCMA, decode(Codec.PCMU, data))
    assert alaw_to_ulaw(data) == encode(Codec.PCMU, decode(Codec.PCMA, data))
    assert transcode(data, Codec.PCMU, Codec.PCMA) == ulaw_to_alaw(data)
    assert transcode(data, Codec.PCMA, Codec.PCMU) == alaw_to_ulaw(data)
    assert transcode(data, Codec.PCMU, Codec.PCMU) is data


def test_silence_transcodes_to_silence() -> None:
    assert ulaw_to_alaw(silence(Codec.PCMU)) == silence(Codec.PCMA)
    # A-law has no zero code word (0xD5 is +8), so the other way round it is only near-silence.
    back = struct.unpack("<160h", decode(Codec.PCMU, alaw_to_ulaw(silence(Codec.PCMA))))
    assert max(abs(v) for v in back) <= 8


@pytest.mark.parametrize("codec", list(Codec))
def test_odd_length_pcm_is_rejected(codec: Codec) -> None:
    with pytest.raises(ValueError):
        encode(codec, b"\x00\x00\x00")
