"""Persistence of the ACD: SQL store (SQLite or PostgreSQL) and its write-behind queue.

``store = await Store.open(url)`` migrates and connects; ``WriteBehind(store)`` is
what the call path talks to (``submit`` never waits for the database).
"""

from .ops import (
    AgentStateRow,
    BindingRow,
    DeleteAor,
    DeleteBinding,
    StoreOp,
    TrunkStateRow,
    UpsertAgentState,
    UpsertBinding,
    UpsertQueueTuning,
    UpsertTrunkState,
)
from .sql import DEFAULT_URL, Store
from .writer import OpSink, WriteBehind

__all__ = [
    "DEFAULT_URL",
    "AgentStateRow",
    "BindingRow",
    "DeleteAor",
    "DeleteBinding",
    "OpSink",
    "Store",
    "StoreOp",
    "TrunkStateRow",
    "UpsertAgentState",
    "UpsertBinding",
    "UpsertQueueTuning",
    "UpsertTrunkState",
    "WriteBehind",
]
