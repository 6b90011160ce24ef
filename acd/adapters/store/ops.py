"""Rows and write operations of the store: plain frozen values, no I/O.

Owns the vocabulary shared by the SQL store and the write-behind queue: the row
dataclasses that mirror the tables, the ``StoreOp`` union the store applies in one
transaction, and each op's coalescing identity (``key``, ``group``, ``clears``).

Coalescing contract, relied on by ``WriteBehind``: applying only the latest op per
``key`` gives the same end state as applying every op in order, and an op whose
``clears`` is G makes every earlier op whose ``group`` is G irrelevant.  A future op
type that is not idempotent by nature (e.g. inserting a CDR) must use a unique key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingRow:
    """One registrar binding (RFC 3261 §10.3), as stored in ``bindings``.

    ``contact`` and ``contact_params`` are kept exactly as received: the registrar
    compares URIs by RFC 3261 §19.1.4 rules, the store only by text, so the registrar
    must keep using the first text it stored for a binding as the key.
    ``id`` is assigned by the database and not part of equality.
    """

    aor: str
    contact: str
    contact_params: str
    call_id: str
    cseq: int
    expires_at: float
    registered_at: float
    updated_at: float
    source: str
    q: float | None = None
    user_agent: str | None = None
    instance_id: str | None = None
    reg_id: int | None = None
    id: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkStateRow:
    """Last known registration state of an outbound trunk, as stored in ``trunk_state``."""

    name: str
    state: str
    last_change: float
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateRow:
    """An agent's availability as last set, as stored in ``agent_state``: "available",
    "logged_out" or a not-available reason, what set it (``reason``), and when (wall time)."""

    agent: str
    status: str
    updated_at: float
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class UpsertBinding:
    """Insert the binding, or overwrite every column of the one with the same (aor, contact)."""

    row: BindingRow

    @property
    def key(self) -> Key:
        return ("binding", self.row.aor, self.row.contact)

    @property
    def group(self) -> Key | None:
        return ("binding", self.row.aor)

    @property
    def clears(self) -> Key | None:
        return None


@dataclass(frozen=True, slots=True)
class DeleteBinding:
    """Remove one binding; removing a missing one is not an error."""

    aor: str
    contact: str

    @property
    def key(self) -> Key:
        return ("binding", self.aor, self.contact)

    @property
    def group(self) -> Key | None:
        return ("binding", self.aor)

    @property
    def clears(self) -> Key | None:
        return None


@dataclass(frozen=True, slots=True)
class DeleteAor:
    """Remove every binding of an address-of-record (REGISTER with ``Contact: *``)."""

    aor: str

    @property
    def key(self) -> Key:
        return ("aor", self.aor)

    @property
    def group(self) -> Key | None:
        return None

    @property
    def clears(self) -> Key | None:
        return ("binding", self.aor)


class _Standalone:
    """An op in no group, clearing none: only its own key coalesces it."""

    __slots__ = ()

    @property
    def group(self) -> Key | None:
        return None

    @property
    def clears(self) -> Key | None:
        return None


@dataclass(frozen=True, slots=True)
class UpsertTrunkState(_Standalone):
    """Insert or overwrite the state of one trunk."""

    row: TrunkStateRow

    @property
    def key(self) -> Key:
        return ("trunk", self.row.name)


@dataclass(frozen=True, slots=True)
class UpsertQueueTuning(_Standalone):
    """The admin API's changes to one queue (JSON), replacing the ones stored before."""

    name: str
    changes: str
    updated_at: float

    @property
    def key(self) -> Key:
        return ("queue_tuning", self.name)


@dataclass(frozen=True, slots=True)
class UpsertAgentState(_Standalone):
    """Insert or overwrite the availability of one agent."""

    row: AgentStateRow

    @property
    def key(self) -> Key:
        return ("agent_state", self.row.agent)


StoreOp = (UpsertBinding | DeleteBinding | DeleteAor | UpsertTrunkState | UpsertQueueTuning
           | UpsertAgentState)
