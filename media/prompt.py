"""Prompts: audio clips converted once at load time to 8 kHz and pre-encoded into 20 ms
PCMU and PCMA frames, a cache that reloads a file when it changes on disk, and `Player`, the
cursor that hands out one frame per tick (once, or looping for music on hold).

Sending a prompt frame then costs a tuple index: no encoding on the per-packet path.
Loading reads and decodes files (blocking): do it off the event loop.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence

from media.audiofile import AudioFileError, load_audio_8k
from media.g711 import Codec, encode

__all__ = ["FRAME_SAMPLES", "Player", "Prompt", "PromptCache", "load_prompt"]

FRAME_SAMPLES = 160  # 20 ms at 8 kHz
_FRAME_PCM_BYTES = 2 * FRAME_SAMPLES


class Prompt:
    """An immutable clip: 8 kHz 16-bit LE mono PCM plus its G.711 frames for both laws. The
    last frame is padded with silence to a whole 20 ms."""

    __slots__ = ("_frames", "name", "pcm")

    def __init__(self, pcm: bytes, name: str = "") -> None:
        if len(pcm) % 2:
            raise ValueError("PCM must be whole 16-bit samples")
        self.name = name
        self.pcm = pcm
        padded = pcm + bytes(-len(pcm) % _FRAME_PCM_BYTES)
        self._frames: dict[Codec, tuple[bytes, ...]] = {}
        for codec in Codec:
            # One encode call for the whole clip, then slicing: G.711 is sample-by-sample.
            encoded = encode(codec, padded)
            self._frames[codec] = tuple(
                encoded[i : i + FRAME_SAMPLES] for i in range(0, len(encoded), FRAME_SAMPLES)
            )

    def frames(self, codec: Codec) -> Sequence[bytes]:
        """The 160-byte frames in `codec` (a Codec or its payload type 0/8)."""
        return self._frames[codec]

    @property
    def frame_count(self) -> int:
        return len(self._frames[Codec.PCMU])

    @property
    def duration(self) -> float:
        """Seconds of audio in the clip, before padding to whole frames."""
        return len(self.pcm) / (2 * 8000)

    def __repr__(self) -> str:
        return f"Prompt({self.name!r}, {self.duration:.2f}s)"


def load_prompt(path: str | os.PathLike[str]) -> Prompt:
    """Read any supported WAV file into a Prompt. AudioFileError when it cannot be used."""
    return Prompt(load_audio_8k(path), name=os.fspath(path))


class PromptCache:
    """Loaded prompts keyed by (path, mtime, size): a file replaced on disk is loaded anew on
    the next `get`, and the stale version is dropped. Least recently used entries are
    evicted beyond `max_entries`."""

    def __init__(
        self,
        max_entries: int = 256,
        loader: Callable[[str], Prompt] = load_prompt,
    ) -> None:
        self.max_entries = max_entries
        self._loader = loader
        self._entries: OrderedDict[str, tuple[int, int, Prompt]] = OrderedDict()
        self.loads = 0

    def get(self, path: str | os.PathLike[str]) -> Prompt:
        spath = os.fspath(path)
        try:
            st = os.stat(spath)
        except OSError as exc:
            raise AudioFileError(spath, exc.strerror or str(exc)) from exc
        entry = self._entries.get(spath)
        if entry is not None and entry[:2] == (st.st_mtime_ns, st.st_size):
            self._entries.move_to_end(spath)
            return entry[2]
        prompt = self._loader(spath)
        self.loads += 1
        self._entries[spath] = (st.st_mtime_ns, st.st_size, prompt)
        self._entries.move_to_end(spath)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return prompt

    def invalidate(self, path: str | os.PathLike[str]) -> None:
        self._entries.pop(os.fspath(path), None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str | os.PathLike) and os.fspath(path) in self._entries


class Player:
    """A play cursor over one prompt or a sequence of prompts (played back to back).

    `next_frame(codec)` returns the next 20 ms frame or None once finished; with `loop=True`
    it starts over forever (music on hold) until `stop()`. The codec may differ from call to
    call (re-INVITE): the position is counted in frames, not bytes.
    """

    __slots__ = ("_fi", "_pi", "_prompts", "_stopped", "frames_played", "loop")

    def __init__(self, prompts: Prompt | Sequence[Prompt], *, loop: bool = False) -> None:
        self._prompts: tuple[Prompt, ...] = (
            (prompts,) if isinstance(prompts, Prompt) else tuple(prompts)
        )
        self.loop = loop
        self._pi = 0
        self._fi = 0
        self.frames_played = 0
        # Looping over nothing would spin forever: an empty programme is finished at once.
        self._stopped = not any(p.frame_count for p in self._prompts)

    @property
    def finished(self) -> bool:
        return self._stopped

    @property
    def position(self) -> float:
        """Seconds played so far (counting every loop)."""
        return self.frames_played * FRAME_SAMPLES / 8000

    def stop(self) -> None:
        """Barge-in or hang-up: no more frames."""
        self._stopped = True

    def next_frame(self, codec: Codec) -> bytes | None:
        while not self._stopped:
            frames = self._prompts[self._pi].frames(codec)
            if self._fi < len(frames):
                frame = frames[self._fi]
                self._fi += 1
                self.frames_played += 1
                return frame
            self._fi = 0
            self._pi += 1
            if self._pi == len(self._prompts):
                self._pi = 0
                self._stopped = not self.loop
        return None
