"""The two ways a CRM call can be refused, for the HTTP layer to map: ``CrmError`` (the
request itself is wrong: 422, naming the field) and ``NotFound`` (no such thing: 404)."""

from __future__ import annotations


class CrmError(ValueError):
    """A value the service refuses; ``field`` names it as the request did (``limit``,
    ``phone``, ``status``...), ``reason`` says why in words for a person."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(LookupError):
    """``what`` (``contact``, ``ticket``, ``recording``, ``cdr``) with ``key`` does not exist."""

    def __init__(self, what: str, key: object) -> None:
        super().__init__(f"no {what} {key!r}")
        self.what = what
        self.key = key
