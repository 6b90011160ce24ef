"""Registrar bindings (RFC 3261 §10.3, RFC 5626 instance matching).

`Registrar` holds the bindings of every address-of-record and applies a REGISTER
atomically: the whole request succeeds or nothing changes. It knows nothing of
authentication or transport; the engine authenticates first and persists the changes it
gets back. Times are wall-clock seconds (epoch), because bindings outlive restarts.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import Enum

from sip.headers import NameAddr, format_params, parse_params
from sip.uri import URI, uri_equal

__all__ = ["Binding", "BindingChange", "ChangeKind", "Registrar", "RegisterOutcome",
           "RegistrarPolicy"]


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    default_expires: int = 3600
    min_expires: int = 60
    max_expires: int = 7200


@dataclass(slots=True, eq=False)
class Binding:
    aor: str
    contact: str  # the Contact URI exactly as received
    uri: URI
    params: str  # the contact header params exactly as received (";expires=..;+sip.instance=..")
    call_id: str
    cseq: int
    expires_at: float
    registered_at: float
    updated_at: float
    source: str  # "transport:ip:port" the REGISTER came from: where requests to it go
    q: float | None = None
    user_agent: str | None = None
    instance_id: str | None = None
    reg_id: int | None = None
    # qualify (OPTIONS ping) state, not persisted
    reachable: bool | None = None
    rtt: float | None = None
    last_qualified: float | None = None

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))

    def contact_header(self, now: float) -> str:
        """Contact value for a 200 OK: the stored params with expires set to what is left."""
        params = [(k, v) for k, v in parse_params(self.params) if k.lower() != "expires"]
        params.append(("expires", str(self.remaining(now))))
        return f"<{self.contact}>{format_params(params)}"


class ChangeKind(Enum):
    ADDED = "added"
    REFRESHED = "refreshed"
    REMOVED = "removed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class BindingChange:
    kind: ChangeKind
    binding: Binding
    reason: str = ""
    previous: Binding | None = None  # REFRESHED: the binding it replaced


@dataclass(slots=True)
class RegisterOutcome:
    status: int
    reason: str | None = None
    bindings: list[Binding] = field(default_factory=list)
    changes: list[BindingChange] = field(default_factory=list)
    min_expires: int | None = None


def _parse_q(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        q = float(value)
    except ValueError:
        raise ValueError(f"bad q value {value!r}") from None
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q value {value!r} out of range")
    return q


def _instance(na: NameAddr) -> tuple[str | None, int | None]:
    inst = na.param("+sip.instance")
    if inst is not None:
        inst = inst.strip('"')
    reg = na.param("reg-id")
    return inst, (int(reg) if reg and reg.isdigit() else None)


class Registrar:
    """Bindings by AOR, with an expiry heap."""

    def __init__(self, policy: RegistrarPolicy = RegistrarPolicy()) -> None:
        self.policy = policy
        self._aors: dict[str, list[Binding]] = {}
        self._expiry: list[tuple[float, int, Binding]] = []
        self._seq = 0
        self._count = 0

    # queries -----------------------------------------------------------------------------
    def lookup(self, aor: str) -> list[Binding]:
        """Bindings of an AOR, highest q first, then most recently refreshed."""
        bs = self._aors.get(aor, [])
        return sorted(bs, key=lambda b: (-(b.q if b.q is not None else 1.0), -b.updated_at))

    def has_bindings(self, aor: str) -> bool:
        """Whether an AOR has any binding (`lookup` sorts them, this does not)."""
        return aor in self._aors  # _set drops an AOR with its last binding

    def aors(self) -> list[str]:
        return list(self._aors)

    def all_bindings(self) -> list[Binding]:
        return [b for bs in self._aors.values() for b in bs]

    def __len__(self) -> int:
        return self._count

    # changes -----------------------------------------------------------------------------
    def restore(self, binding: Binding) -> None:
        """Put back a binding loaded from the store (no event)."""
        self._aors.setdefault(binding.aor, []).append(binding)
        self._count += 1
        self._push_expiry(binding)

    def _push_expiry(self, b: Binding) -> None:
        self._seq += 1
        heapq.heappush(self._expiry, (b.expires_at, self._seq, b))

    def register(
        self,
        aor: str,
        contacts: list[NameAddr],
        expires_header: int | None,
        call_id: str,
        cseq: int,
        source: str,
        now: float,
        *,
        user_agent: str | None = None,
        max_contacts: int = 10,
    ) -> RegisterOutcome:
        pol = self.policy
        current = self._aors.get(aor, [])
        if not contacts:
            return RegisterOutcome(200, bindings=self.lookup(aor))

        if any(c.is_wildcard for c in contacts):
            if len(contacts) != 1 or expires_header != 0:
                return RegisterOutcome(400, "Wildcard Contact needs Expires: 0 and no other Contact")
            # §10.3 step 6: one binding of this Call-ID with a CSeq not below ours aborts the
            # whole request; keeping just that binding would half-apply it
            if any(b.call_id == call_id and cseq <= b.cseq for b in current):
                return RegisterOutcome(400, "Out of order CSeq for an existing binding")
            removed = [BindingChange(ChangeKind.REMOVED, b, "unregistered") for b in current]
            self._set(aor, [])
            return RegisterOutcome(200, changes=removed)

        # validate everything before changing anything
        plan: list[tuple[NameAddr, int, float | None]] = []
        for na in contacts:
            raw = na.param("expires")
            if raw is not None:
                if not raw.isdigit():
                    return RegisterOutcome(400, "Bad Contact expires")
                expires = int(raw)
                if expires > 2**32 - 1:
                    return RegisterOutcome(400, "Contact expires too large")
            elif expires_header is not None:
                expires = expires_header
            else:
                expires = pol.default_expires
            if 0 < expires < pol.min_expires:
                return RegisterOutcome(423, min_expires=pol.min_expires)
            try:
                q = _parse_q(na.param("q"))
            except ValueError as exc:
                return RegisterOutcome(400, str(exc))
            plan.append((na, min(expires, pol.max_expires), q))

        updated = list(current)
        changes: list[BindingChange] = []
        for na, expires, q in plan:
            if na.uri is None:
                continue
            inst, reg_id = _instance(na)
            existing = self._find(updated, na, inst, reg_id)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                return RegisterOutcome(400, "Out of order CSeq for an existing binding")
            if expires == 0:
                if existing is not None:
                    updated.remove(existing)
                    changes.append(BindingChange(ChangeKind.REMOVED, existing, "unregistered"))
                continue
            params = format_params(na.params)
            if existing is not None:
                updated.remove(existing)
                # the text first stored stays the binding's key (the store compares text,
                # the registrar URIs by §19.1.4), unless an instance-id moved it elsewhere
                same = uri_equal(existing.uri, na.uri)
                b = Binding(aor, existing.contact if same else na.uri_text,
                            existing.uri if same else na.uri, params, call_id, cseq,
                            now + expires, existing.registered_at, now, source, q, user_agent,
                            inst, reg_id, existing.reachable, existing.rtt,
                            existing.last_qualified)
                changes.append(BindingChange(ChangeKind.REFRESHED, b, previous=existing))
            else:
                b = Binding(aor, na.uri_text, na.uri, params, call_id, cseq, now + expires, now,
                            now, source, q, user_agent, inst, reg_id)
                changes.append(BindingChange(ChangeKind.ADDED, b))
            updated.append(b)

        while len(updated) > max_contacts:
            # a phone that changed address re-registers with a new Call-ID long before its
            # old binding expires: make room by dropping the stalest binding
            oldest = min(updated, key=lambda x: x.updated_at)
            updated.remove(oldest)
            changes.append(BindingChange(ChangeKind.REMOVED, oldest, "max_contacts"))

        self._set(aor, updated)
        for ch in changes:
            if ch.kind is not ChangeKind.REMOVED:
                self._push_expiry(ch.binding)
        return RegisterOutcome(200, bindings=self.lookup(aor), changes=changes)

    def _find(self, bindings: list[Binding], na: NameAddr, inst: str | None,
              reg_id: int | None) -> Binding | None:
        for b in bindings:
            if inst is not None and b.instance_id == inst and b.reg_id == reg_id:
                return b
        for b in bindings:
            if (inst is None or b.instance_id is None) and na.uri is not None \
                    and uri_equal(b.uri, na.uri):
                return b
        return None

    def _set(self, aor: str, bindings: list[Binding]) -> None:
        old = self._aors.get(aor)
        self._count += len(bindings) - (len(old) if old is not None else 0)
        if bindings:
            self._aors[aor] = bindings
        else:
            self._aors.pop(aor, None)

    def remove(self, aor: str, contact: str) -> Binding | None:
        bs = self._aors.get(aor, [])
        for b in bs:
            if b.contact == contact:
                self._set(aor, [x for x in bs if x is not b])
                return b
        return None

    def expire(self, now: float) -> list[BindingChange]:
        """Remove and return every binding whose time is up."""
        out: list[BindingChange] = []
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, _, b = heapq.heappop(heap)
            bs = self._aors.get(b.aor)
            if bs is None or not any(x is b for x in bs) or b.expires_at > now:
                continue  # refreshed or removed since this entry was pushed
            self._set(b.aor, [x for x in bs if x is not b])
            out.append(BindingChange(ChangeKind.EXPIRED, b))
        return out

    def next_expiry(self) -> float | None:
        heap = self._expiry
        while heap:
            when, _, b = heap[0]
            bs = self._aors.get(b.aor)
            if bs is not None and any(x is b for x in bs) and b.expires_at == when:
                return when
            heapq.heappop(heap)
        return None


def describe_source(transport: str, ip: str, port: int) -> str:
    return f"{transport}:{ip}:{port}" if ":" not in ip else f"{transport}:[{ip}]:{port}"


def parse_source(text: str) -> tuple[str, str, int]:
    transport, _, rest = text.partition(":")
    if rest.startswith("["):
        end = rest.index("]")
        return transport, rest[1:end], int(rest[end + 2 :])
    ip, _, port = rest.rpartition(":")
    return transport, ip, int(port)

