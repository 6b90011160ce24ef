"""Checking what the HTTP layer passes in, before any SQL: every refusal is a ``CrmError``
naming the field as the request did.  Values may come as query-string text ("50", "true",
"1700000000.5") or as JSON values; both are accepted.  Also the opaque keyset cursors."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from .errors import CrmError, NotFound

MAX_LIMIT = 500
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class Unset:
    """The default of an optional change: absent, as opposed to an explicit None."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = Unset()


def limit(value: Any, default: int = 50) -> int:
    if value is None:
        return default
    n = integer("limit", value)
    if not 1 <= n <= MAX_LIMIT:
        raise CrmError("limit", f"must be between 1 and {MAX_LIMIT}")
    return n


def integer(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise CrmError(field, "must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
        return int(value)
    raise CrmError(field, "must be an integer")


def ident(what: str, value: Any) -> int:
    """An id from a URL: anything that is not a positive integer names nothing (404)."""
    try:
        n = integer("id", value)
    except CrmError:
        raise NotFound(what, value) from None
    if n < 1 or n >= 2**63:
        raise NotFound(what, value)
    return n


def ref_id(field: str, value: Any) -> int:
    """An id inside a request body or query: a wrong one is the request's fault (422)."""
    n = integer(field, value)
    if n < 1 or n >= 2**63:
        raise CrmError(field, "must be a positive id")
    return n


def timestamp(field: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise CrmError(field, "must be a time in epoch seconds")
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise CrmError(field, "must be a time in epoch seconds") from None
    if not math.isfinite(t) or t < 0:
        raise CrmError(field, "must be a finite, non-negative time in epoch seconds")
    return t


def time_range(since: Any, until: Any) -> tuple[float | None, float | None]:
    """The bounds of ``[since, until)``, either one open; ``until`` before ``since`` is
    refused."""
    lo, hi = timestamp("since", since), timestamp("until", until)
    if lo is not None and hi is not None and lo > hi:
        raise CrmError("until", "must not be before since")
    return lo, hi


def positive(field: str, value: Any, default: float) -> float:
    """A finite number above zero (a threshold in seconds...); ``default`` when absent."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise CrmError(field, "must be a positive number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise CrmError(field, "must be a positive number") from None
    if not math.isfinite(x) or x <= 0:
        raise CrmError(field, "must be a finite number above 0")
    return x


def choice(field: str, value: Any, allowed: Sequence[str]) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value not in allowed:
        raise CrmError(field, f"must be one of {', '.join(allowed)}")
    return value


def choices(field: str, value: Any, allowed: Sequence[str]) -> list[str] | None:
    """One value, a comma-separated list, or a list of values."""
    if value is None or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise CrmError(field, f"must be one or more of {', '.join(allowed)}")
    out = []
    for v in items:
        c = choice(field, v.strip() if isinstance(v, str) else v, allowed)
        if c is None:
            raise CrmError(field, f"must be one or more of {', '.join(allowed)}")
        out.append(c)
    return out


def flag(field: str, value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    raise CrmError(field, "must be true or false")


def text(field: str, value: Any, max_len: int, *, required: bool = False) -> str | None:
    """Stripped text, None for absent or blank (refused when ``required``)."""
    if value is None:
        s = ""
    elif isinstance(value, str):
        s = value.strip()
    else:
        raise CrmError(field, "must be text")
    if "\x00" in s:
        raise CrmError(field, "must not contain NUL characters")
    if len(s) > max_len:
        raise CrmError(field, f"must be at most {max_len} characters")
    if not s:
        if required:
            raise CrmError(field, "must not be empty")
        return None
    return s


def email(value: Any) -> str | None:
    s = text("email", value, 254)
    if s is not None and not EMAIL.fullmatch(s):
        raise CrmError("email", "not an e-mail address")
    return s


def encode_cursor(*key: Any) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: Any, shape: tuple[type, ...]) -> list[Any] | None:
    """The key a cursor holds, checked against the types its list puts in it."""
    if value is None or value == "":
        return None
    bad = CrmError("cursor", "not a cursor this list handed out")
    if not isinstance(value, str) or len(value) > 1000:
        raise bad
    try:
        key = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(key, list) or len(key) != len(shape):
        raise bad
    for i, (v, t) in enumerate(zip(key, shape, strict=True)):
        if t is float and isinstance(v, int) and not isinstance(v, bool):
            key[i] = v = float(v)
        if not isinstance(v, t) or isinstance(v, bool):
            raise bad
    return key
