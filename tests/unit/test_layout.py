"""The project's shape: top-level packages import from this checkout (their names are also
names of unrelated PyPI distributions), and the pure cores stay free of I/O and clocks."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.conftest import ROOT

PURE = ("sip", "media", "ivr", "queues")
FORBIDDEN = {"asyncio", "socket", "time", "redis", "asyncpg", "aiosqlite", "sqlalchemy",
             "aiohttp", "selectors", "threading", "subprocess", "acd"}


@pytest.mark.parametrize("name", ["sip", "media", "ivr", "queues", "acd"])
def test_packages_import_from_this_repository(name: str) -> None:
    mod = importlib.import_module(name)
    assert mod.__file__ is not None
    assert Path(mod.__file__).resolve().parent == ROOT / name


@pytest.mark.parametrize("package", PURE)
def test_pure_cores_do_no_io(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                if n.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports {n}")
    assert not offenders, "\n".join(offenders)


def test_every_module_has_a_docstring() -> None:
    missing = []
    for package in (*PURE, "acd"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            if ast.get_docstring(tree) is None and path.stat().st_size > 0:
                missing.append(str(path.relative_to(ROOT)))
    assert not missing, missing
