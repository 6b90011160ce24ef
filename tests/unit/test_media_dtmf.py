"""RFC 4733 telephone-events and in-band Goertzel DTMF detection."""

from __future__ import annotations

import math
import random
import struct
import wave
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.dtmf import (
    DIGITS,
    GoertzelDetector,
    TelephoneEvent,
    TelephoneEventReceiver,
    TelephoneEventSender,
    build_event,
    digit_event,
    parse_event,
)
from media.rtp import RtpParseError

AUDIO = Path("/work/shared/peers/audio")
RATE = 8000
LOW = dict(
    zip(
        DIGITS,
        (941, 697, 697, 697, 770, 770, 770, 852, 852, 852, 941, 941, 697, 770, 852, 941),
        strict=True,
    )
)
HIGH = dict(
    zip(
        DIGITS,
        (
            1336,
            1209,
            1336,
            1477,
            1209,
            1336,
            1477,
            1209,
            1336,
            1477,
            1209,
            1477,
            1633,
            1633,
            1633,
            1633,
        ),
        strict=True,
    )
)


def pcm(samples: list[float]) -> bytes:
    return struct.pack(f"<{len(samples)}h", *(max(-32768, min(32767, round(v))) for v in samples))


def tone(
    digit: str, ms: float, amp: float = 6000.0, low_db: float = 0.0, high_db: float = 0.0
) -> list[float]:
    lo, hi = amp * 10 ** (low_db / 20), amp * 10 ** (high_db / 20)
    return [
        lo * math.sin(2 * math.pi * LOW[digit] * i / RATE)
        + hi * math.sin(2 * math.pi * HIGH[digit] * i / RATE + 1.0)
        for i in range(int(ms * RATE / 1000))
    ]


def silence(ms: float) -> list[float]:
    return [0.0] * int(ms * RATE / 1000)


def detect(audio: bytes, frame: int = 320) -> str:
    det = GoertzelDetector()
    return "".join(det.feed(audio[i : i + frame]) for i in range(0, len(audio), frame))


# ------------------------------------------------------------------ RFC 4733 payloads


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_event_round_trip(event: int, end: bool, volume: int, duration: int) -> None:
    payload = build_event(event, end, volume, duration)
    assert len(payload) == 4
    assert parse_event(payload) == TelephoneEvent(event, end, volume, duration)


def test_event_known_bytes_and_errors() -> None:
    assert build_event(11, True, 10, 800) == bytes.fromhex("0b8a0320")
    assert parse_event(bytes.fromhex("0b8a0320")).digit == "#"
    assert parse_event(bytes.fromhex("10000000")).digit is None  # flash
    with pytest.raises(RtpParseError):
        parse_event(b"\x01\x02")
    with pytest.raises(ValueError):
        build_event(1, False, 64, 0)
    assert digit_event("d") == 15
    with pytest.raises(ValueError):
        digit_event("E")


def test_sender_plan_for_100_ms() -> None:
    plan = TelephoneEventSender().plan("7", duration_ms=100)
    assert [p.duration for p in plan] == [160, 320, 480, 640, 800, 800, 800]
    assert [p.marker for p in plan] == [True] + [False] * 6
    assert [p.end for p in plan] == [False] * 4 + [True] * 3
    assert {parse_event(p.payload).event for p in plan} == {7}
    assert {p.advance for p in plan} == {160}


def feed_all(rx: TelephoneEventReceiver, packets: list[tuple[int, bool, bytes]]) -> str:
    return "".join(d for ts, m, p in packets if (d := rx.feed(ts, m, p)) is not None)


def digit_packets(digit: str, ts: int) -> list[tuple[int, bool, bytes]]:
    return [(ts, p.marker, p.payload) for p in TelephoneEventSender().plan(digit, 120)]


def test_receiver_emits_each_digit_once() -> None:
    rx = TelephoneEventReceiver()
    packets = []
    for i, digit in enumerate(DIGITS):
        packets += digit_packets(digit, 1000 + 4000 * i)
    assert feed_all(rx, packets) == DIGITS


def test_receiver_survives_lost_start_and_duplicated_end_packets() -> None:
    rx = TelephoneEventReceiver()
    pkts = digit_packets("4", 500)
    assert feed_all(rx, pkts[2:] + pkts[-1:] * 3) == "4"
    # Same digit again under a new timestamp is a new key press.
    assert feed_all(rx, digit_packets("4", 2500)) == "4"
    # Only end packets arrive: still reported, once.
    assert feed_all(rx, digit_packets("9", 9000)[-3:]) == "9"


def test_receiver_ignores_non_dtmf_events_and_long_press_segments() -> None:
    rx = TelephoneEventReceiver()
    assert rx.feed(10, True, build_event(16, False, 10, 160)) is None
    assert rx.feed(100, True, build_event(5, False, 10, 0xFFFF)) == "5"
    # RFC 4733 2.5.1.3: the held key continues with a new timestamp and no marker
    assert rx.feed(100 + 0xFFFF, False, build_event(5, False, 10, 800)) is None
    assert rx.feed(100 + 0xFFFF, False, build_event(5, True, 10, 1600)) is None
    assert rx.feed(200000, True, build_event(5, False, 10, 160)) == "5"


@given(
    st.lists(st.sampled_from(DIGITS), min_size=1, max_size=10),
    st.randoms(use_true_random=False),
    st.integers(0, 0xFFFFFFFF),
)
def test_receiver_with_loss_duplication_and_reordering_within_digits(
    digits: list[str], rnd: random.Random, ts0: int
) -> None:
    rx = TelephoneEventReceiver()
    out = ""
    for i, digit in enumerate(digits):
        pkts = digit_packets(digit, (ts0 + 2400 * i) & 0xFFFFFFFF)
        kept = [p for p in pkts if rnd.random() > 0.3] or pkts[-1:]
        kept += rnd.sample(kept, k=min(2, len(kept)))
        rnd.shuffle(kept)
        out += feed_all(rx, kept)
    assert out == "".join(digits)


# ------------------------------------------------------------------ in-band detection


@pytest.mark.parametrize("frame", [160, 320, 77, 1000])
def test_all_sixteen_keys_any_frame_size(frame: int) -> None:
    audio: list[float] = silence(50)
    for d in DIGITS:
        audio += tone(d, 60) + silence(60)
    assert detect(pcm(audio), frame * 2) == DIGITS


def test_keys_in_noise() -> None:
    rnd = random.Random(7)
    audio: list[float] = silence(40)
    for d in DIGITS:
        audio += tone(d, 70, amp=4000) + silence(50)
    noisy = [v + rnd.gauss(0, 800) for v in audio]  # about 11 dB SNR
    assert detect(pcm(noisy)) == DIGITS


def test_low_level_keys_and_below_threshold() -> None:
    assert detect(pcm(silence(20) + tone("3", 80, amp=300) + silence(40))) == "3"
    assert detect(pcm(silence(20) + tone("3", 80, amp=60) + silence(40))) == ""


@pytest.mark.parametrize(("ms", "expected"), [(20, ""), (40, "8"), (45, "8")])
def test_duration_rule_at_every_alignment(ms: int, expected: str) -> None:
    for offset in range(0, 102, 9):
        audio = pcm(silence(1)[:offset] + silence(30) + tone("8", ms) + silence(60))
        assert detect(audio) == expected, offset


def test_twist_limits() -> None:
    # Normal twist (high group weaker) up to 8 dB, reverse twist up to 4 dB.
    assert detect(pcm(tone("5", 80, high_db=-6) + silence(40))) == "5"
    assert detect(pcm(tone("5", 80, high_db=-11) + silence(40))) == ""
    assert detect(pcm(tone("5", 80, low_db=-3) + silence(40))) == "5"
    assert detect(pcm(tone("5", 80, low_db=-7) + silence(40))) == ""


def test_repeat_needs_a_gap_and_long_press_reports_once() -> None:
    assert detect(pcm(tone("2", 600) + silence(40))) == "2"
    assert detect(pcm(tone("2", 60) + silence(40) + tone("2", 60) + silence(40))) == "22"
    # a 5 ms dropout inside one press is not a new key press
    assert detect(pcm(tone("2", 60) + silence(5) + tone("2", 60) + silence(40))) == "2"


def test_rejects_single_tones_and_synthesised_speech() -> None:
    one_k = [8000 * math.sin(2 * math.pi * 1000 * i / RATE) for i in range(RATE)]
    assert detect(pcm(one_k)) == ""
    assert detect(pcm([8000 * math.sin(2 * math.pi * 697 * i / RATE) for i in range(RATE)])) == ""
    # Vowel-like: 150 Hz fundamental with harmonics and formant-shaped amplitudes, gliding.
    vowel = []
    for i in range(2 * RATE):
        f0 = 120 + 40 * math.sin(2 * math.pi * 0.7 * i / RATE)
        phase = 2 * math.pi * f0 * i / RATE
        vowel.append(
            sum(
                3000 / k * (1.6 if 5 <= k <= 9 else 1.0) * math.sin(k * phase) for k in range(1, 25)
            )
        )
    assert detect(pcm(vowel)) == ""


def test_music_chords_are_not_digits() -> None:
    # Harmonic chords through DTMF-ish frequencies: each note carries overtones.
    chords = []
    for base in (220.0, 246.9, 261.6, 293.7, 329.6):
        for i in range(RATE // 4):
            chords.append(
                sum(
                    2500 / h * math.sin(2 * math.pi * base * h * r * i / RATE)
                    for r in (1.0, 1.26, 1.5)
                    for h in (1, 2, 3, 4)
                )
            )
    assert detect(pcm(chords)) == ""


def read_wav(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
        return w.readframes(w.getnframes())


@pytest.mark.skipif(not AUDIO.is_dir(), reason="shared test audio not present")
def test_shared_audio_files() -> None:
    assert detect(read_wav(AUDIO / "dtmf-1234567890star-hash-8k.wav")) == "1234567890*#"
    assert detect(read_wav(AUDIO / "dtmf-9-8k.wav"), 160) == "9"
    assert detect(read_wav(AUDIO / "prompt-en-8k.wav")) == ""
    assert detect(read_wav(AUDIO / "tone-1khz-2s-8k.wav")) == ""
    if (AUDIO / "caller-speech-8k.wav").exists():
        assert detect(read_wav(AUDIO / "caller-speech-8k.wav")) == ""
