"""DTMF: RFC 4733 telephone-event payloads (parse/build, a receiver that turns the packet
stream into digits exactly once, a sender's packet plan) and in-band detection of DTMF tones
in 8 kHz linear PCM (`GoertzelDetector`).

Digits are the characters of `DIGITS`, indexed by RFC 4733 event code 0..15.
"""

from __future__ import annotations

import functools
import math
import struct
import sys
from array import array
from dataclasses import dataclass
from typing import NamedTuple

from media._audioop import audioop
from media.rtppacket import RtpParseError

__all__ = [
    "DIGITS",
    "EventPacketPlan",
    "GoertzelDetector",
    "TelephoneEvent",
    "TelephoneEventReceiver",
    "TelephoneEventSender",
    "build_event",
    "digit_event",
    "parse_event",
]

DIGITS = "0123456789*#ABCD"
_EVENT = struct.Struct("!BBH")
_M32 = 0xFFFFFFFF


class TelephoneEvent(NamedTuple):
    event: int  # 0..255; 0..15 are DTMF digits
    end: bool
    volume: int  # 0..63, power level in -dBm0
    duration: int  # timestamp units (1/8000 s for 8 kHz audio)

    @property
    def digit(self) -> str | None:
        return DIGITS[self.event] if self.event < 16 else None


def digit_event(digit: str) -> int:
    """'0'..'9', '*', '#', 'A'..'D' (case-insensitive) -> event code; ValueError otherwise."""
    code = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return code


def parse_event(payload: bytes) -> TelephoneEvent:
    """The first (usually only) event of a telephone-event payload. RtpParseError if short."""
    try:
        event, flags, duration = _EVENT.unpack_from(payload)
    except struct.error:
        raise RtpParseError("telephone-event payload shorter than 4 bytes") from None
    return TelephoneEvent(event, flags > 0x7F, flags & 0x3F, duration)


def build_event(event: int, end: bool, volume: int, duration: int) -> bytes:
    if not (0 <= event <= 255 and 0 <= volume <= 63 and 0 <= duration <= 0xFFFF):
        raise ValueError("telephone-event field out of range")
    return _EVENT.pack(event, (0x80 if end else 0) | volume, duration)


class TelephoneEventReceiver:
    """Turns the telephone-event packets of one stream into digits, each exactly once.

    An event is identified by its RTP timestamp: the first packet seen for a new timestamp
    emits the digit (so a lost start packet costs nothing), and every later packet of that
    event, including the repeated end packets, is ignored. A key held past the 16-bit
    duration limit continues under a new timestamp without the marker (RFC 4733 2.5.1.3);
    that segment is recognised and not reported again.
    """

    def __init__(self, history: int = 16) -> None:
        self._history = history
        self._recent: dict[int, None] = {}  # insertion-ordered set of event timestamps
        self._last_ts = -1
        self._last_event = -1
        self._last_duration = 0
        self._last_ended = True

    def feed(self, timestamp: int, marker: bool, payload: bytes) -> str | None:
        """One telephone-event packet's timestamp, marker bit and payload -> the new digit or
        None. Non-DTMF events (flash, tones) are ignored. RtpParseError for a short payload."""
        ev = parse_event(payload)
        if timestamp in self._recent:
            if timestamp == self._last_ts:
                self._last_duration = max(self._last_duration, ev.duration)
                self._last_ended = self._last_ended or ev.end
            return None
        continuation = (
            not marker
            and ev.event == self._last_event
            and not self._last_ended
            and self._last_duration >= 0x8000
            and 0 < (timestamp - self._last_ts) & _M32 <= 0x10000 + 8000
        )
        self._recent[timestamp] = None
        if len(self._recent) > self._history:
            del self._recent[next(iter(self._recent))]
        self._last_ts, self._last_event = timestamp, ev.event
        self._last_duration, self._last_ended = ev.duration, ev.end
        if continuation or ev.event > 15:
            return None
        return DIGITS[ev.event]


@dataclass(frozen=True, slots=True)
class EventPacketPlan:
    """One packet of a digit: send it with `RtpSender.event_packet(payload, start=marker,
    samples=advance)`, one per packet interval. All packets of a digit share one timestamp."""

    payload: bytes
    marker: bool
    end: bool
    duration: int
    advance: int


class TelephoneEventSender:
    """Plans the RFC 4733 packets for one digit: a start packet with the marker bit, an update
    per packet interval with the growing duration, then `end_repeats` end packets carrying
    the final duration (the end packet is repeated because a lost one would leave the far
    end's key stuck down)."""

    def __init__(
        self, *, volume: int = 10, interval: int = 160, end_repeats: int = 3, clock_rate: int = 8000
    ) -> None:
        if interval <= 0 or end_repeats < 1:
            raise ValueError("interval and end_repeats must be positive")
        self.volume = volume
        self.interval = interval
        self.end_repeats = end_repeats
        self.clock_rate = clock_rate

    def plan(self, digit: str, duration_ms: int = 100) -> list[EventPacketPlan]:
        event = digit_event(digit)
        total = min(0xFFFF, max(self.interval, duration_ms * self.clock_rate // 1000))
        packets: list[EventPacketPlan] = []
        duration = self.interval
        while duration < total:
            payload = build_event(event, False, self.volume, duration)
            packets.append(EventPacketPlan(payload, not packets, False, duration, self.interval))
            duration += self.interval
        final = build_event(event, True, self.volume, total)
        for _ in range(self.end_repeats):
            packets.append(EventPacketPlan(final, not packets, True, total, self.interval))
        return packets


# ---------------------------------------------------------------------------- in-band DTMF

_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
_BIG_ENDIAN_HOST = sys.byteorder == "big"


def _db_ratio(db: float) -> float:
    return float(10.0 ** (db / 10.0))


@functools.cache
def _references(sample_rate: int, n: int) -> tuple[tuple[bytes, float, bytes, float], ...]:
    """Cosine and sine references of the eight DTMF frequencies, with their norms: the same
    for every detector (one per call leg listening in-band), so computed once."""
    refs = []
    for freq in _ROWS + _COLS:
        w = 2.0 * math.pi * freq / sample_rate
        cos_ref = array("h", (round(16383 * math.cos(w * i)) for i in range(n)))
        sin_ref = array("h", (round(16383 * math.sin(w * i)) for i in range(n)))
        # findfactor(x, r) = sum(x*r) / sum(r*r): multiply by sum(r*r) to undo that, and
        # by 2 / (N * 16383) so that re**2 + im**2 is the tone's squared amplitude.
        cos_norm = sum(v * v for v in cos_ref) * 2.0 / (n * 16383)
        sin_norm = sum(v * v for v in sin_ref) * 2.0 / (n * 16383)
        refs.append((cos_ref.tobytes(), cos_norm, sin_ref.tobytes(), sin_norm))
    return tuple(refs)


class GoertzelDetector:
    """In-band DTMF detector for 8 kHz 16-bit LE mono PCM, fed frames of any size.

    Analyses windows of 102 samples (12.75 ms; the length spandsp uses, which resolves the
    73 Hz row spacing) every 51 samples. Per window it measures the eight DTMF frequencies by
    correlating with precomputed cosine/sine references: `audioop.findfactor` returns the
    normalised cross-correlation computed in C, which is exactly the Goertzel/DFT term at that
    frequency, at a fraction of a Python loop's cost. A window is a hit for a key when

    - the strongest row and column tones are each above `min_level` (amplitude, of 32768),
    - each beats the other tones of its group by `relative_peak_db`,
    - twist: the row tone exceeds the column tone by at most `normal_twist_db`, and the column
      tone the row tone by at most `reverse_twist_db`,
    - the two tones carry at least `energy_fraction` of the window's energy (speech and music
      spread theirs; a lone tone such as 1 kHz has nothing in one group; a window the tone
      only partly covers fails too, which is what makes the duration rule below exact).

    A key is reported once `PRESS_WINDOWS` (4) consecutive windows hit it: a tone of 40 ms
    contains four whole windows at any alignment and is always reported; a 20 ms tone can
    make at most three and never is. The key is released after `RELEASE_WINDOWS` (3)
    consecutive windows without it, so a single noisy window inside a long tone does not
    report the key twice, while the usual 40 ms inter-digit pause is ample to repeat it.
    """

    BLOCK = 102
    HOP = 51
    PRESS_WINDOWS = 4
    RELEASE_WINDOWS = 3

    def __init__(
        self,
        *,
        sample_rate: int = 8000,
        min_level: float = 120.0,
        relative_peak_db: float = 8.0,
        normal_twist_db: float = 8.0,
        reverse_twist_db: float = 4.0,
        energy_fraction: float = 0.7,
    ) -> None:
        if sample_rate != 8000:
            raise ValueError("GoertzelDetector works on 8 kHz audio")
        self._refs = _references(sample_rate, self.BLOCK)
        self._min_power = min_level * min_level
        self._peak = _db_ratio(relative_peak_db)
        self._normal_twist = _db_ratio(normal_twist_db)
        self._reverse_twist = _db_ratio(reverse_twist_db)
        self._fraction = energy_fraction
        self.reset()

    def reset(self) -> None:
        self._pending = b""
        self._run_digit: str | None = None
        self._run = 0
        self._misses = 0
        self._current: str | None = None

    def feed(self, pcm: bytes) -> str:
        """Feed the next PCM bytes; returns the digits whose key press completed detection in
        this chunk (usually '')."""
        data = self._pending + pcm if self._pending else pcm
        size, hop = self.BLOCK * 2, self.HOP * 2
        out = ""
        last = len(data) - size
        at = 0
        while at <= last:
            hit = self._classify(data[at : at + size])
            at += hop
            if hit is not None and hit == self._run_digit:
                self._run += 1
            else:
                self._run_digit, self._run = hit, 1
            if hit is not None and hit == self._current:
                self._misses = 0
                continue
            self._misses += 1
            if self._current is not None and self._misses >= self.RELEASE_WINDOWS:
                self._current = None
            if hit is not None and self._current is None and self._run >= self.PRESS_WINDOWS:
                self._current = hit
                self._misses = 0
                out += hit
        self._pending = bytes(data[at:])
        return out

    def _classify(self, block: bytes) -> str | None:
        if _BIG_ENDIAN_HOST:
            block = audioop.byteswap(block, 2)
        rms = audioop.rms(block, 2)
        # Mean square of a sine is amp**2 / 2; with two tones at the minimum level the block
        # mean square is at least min_power. Most silent frames stop here.
        if rms * rms < self._min_power:
            return None
        ff = audioop.findfactor
        powers = []
        for cos_ref, cos_norm, sin_ref, sin_norm in self._refs:
            re = ff(block, cos_ref) * cos_norm
            im = ff(block, sin_ref) * sin_norm
            powers.append(re * re + im * im)
        rows, cols = powers[:4], powers[4:]
        r_best = max(range(4), key=rows.__getitem__)
        c_best = max(range(4), key=cols.__getitem__)
        row, col = rows[r_best], cols[c_best]
        if row < self._min_power or col < self._min_power:
            return None
        if row > col * self._normal_twist or col > row * self._reverse_twist:
            return None
        for i in range(4):
            if i != r_best and rows[i] * self._peak > row:
                return None
            if i != c_best and cols[i] * self._peak > col:
                return None
        # A tone's mean square is amp**2 / 2; compare with the block's mean square.
        if (row + col) * 0.5 < self._fraction * rms * rms:
            return None
        return _KEYPAD[r_best][c_best]
