"""`urandom_pool`: cryptographically random bytes from the OS, read in blocks.

Tags, branches and Call-IDs must be cryptographically random (RFC 3261 §19.3). Reading them
with one getrandom() system call each (secrets.token_bytes) cost 4% of the daemon's CPU at
1,000 registrations/s; reading 4 KiB at a time and handing out slices gives the same bytes
for a system call per few hundred identifiers. The pool is per process: after a fork the
child must not reuse the parent's unread bytes, so the fork hook discards them.
"""

from __future__ import annotations

import os

__all__ = ["urandom_pool"]

BLOCK = 4096


class _Pool:
    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self.discard()

    def discard(self) -> None:
        self._buf = b""
        self._pos = 0

    def __call__(self, n: int) -> bytes:
        pos = self._pos
        end = pos + n
        if end > len(self._buf):
            if n > BLOCK:
                return os.urandom(n)
            self._buf = os.urandom(BLOCK)
            pos, end = 0, n
        self._pos = end
        return self._buf[pos:end]


urandom_pool = _Pool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=urandom_pool.discard)
