"""Shared test configuration: paths, and the rule that a missing peer or service skips a test
locally but fails it in CI (where .ci/run sets ACD_REQUIRE_PEERS=1)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PEERS = SHARED / "peers"


def require(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (CI) when something a test needs is missing."""
    if condition:
        return
    if os.environ.get("ACD_REQUIRE_PEERS") == "1":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed (Debian: "
            f"{ {'sipp': 'sip-tester', 'baresip': 'baresip-core'}.get(name, name) })")
    assert path is not None
    return path


def require_peers_dir() -> Path:
    require(PEERS.is_dir(), f"peer scripts not found at {PEERS}")
    return PEERS
