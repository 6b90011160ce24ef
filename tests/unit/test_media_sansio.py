"""House rule: media/ is sans-IO. No event loop, sockets or wall clock in any module there,
and numpy only where soxr already needs it (loading audio files)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MEDIA = Path(__file__).resolve().parents[2] / "media"
FORBIDDEN = {"asyncio", "socket", "time", "selectors", "threading", "datetime"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(MEDIA.glob("*.py")), ids=lambda p: p.name)
def test_media_module_is_sans_io(path: Path) -> None:
    names = imported_modules(path)
    assert not names & FORBIDDEN
    if path.name != "audiofile.py":
        assert "numpy" not in names and "soxr" not in names
    assert ast.get_docstring(ast.parse(path.read_text())), "module docstring says what it owns"
