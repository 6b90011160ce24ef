"""Recording retention: files older than the configured days go, newer ones stay, empty
folders are removed, and 0 days keeps everything."""

from __future__ import annotations

import os
from pathlib import Path

from acd.recording import purge_old_recordings

DAY = 86400.0


def _wav(path: Path, age_days: float, now: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


def test_old_recordings_are_deleted_and_empty_folders_removed(tmp_path: Path) -> None:
    now = 2_000_000_000.0
    old = _wav(tmp_path / "2026-01-01" / "a.wav", 91, now)
    fresh = _wav(tmp_path / "2026-03-01" / "b.wav", 89, now)
    other = _wav(tmp_path / "2026-01-01" / "notes.txt", 200, now)
    deleted = purge_old_recordings(tmp_path, 90, now)
    assert deleted == [str(old)]
    assert not old.exists() and fresh.exists() and other.exists()
    assert (tmp_path / "2026-01-01").is_dir()  # still holds notes.txt
    other.unlink()
    assert purge_old_recordings(tmp_path, 90, now) == []
    assert not (tmp_path / "2026-01-01").exists()


def test_zero_days_keeps_everything(tmp_path: Path) -> None:
    now = 2_000_000_000.0
    kept = _wav(tmp_path / "x.wav", 10_000, now)
    assert purge_old_recordings(tmp_path, 0, now) == []
    assert kept.exists()
    assert purge_old_recordings(tmp_path / "missing", 30, now) == []
