"""sip.entropy: the block-buffered OS randomness behind tags, branches, Call-IDs and nonces."""

from __future__ import annotations

import os

import pytest

from sip.entropy import BLOCK, _Pool


def test_slices_are_fresh_bytes_of_the_asked_length_across_refills() -> None:
    pool = _Pool()
    got = [pool(n) for n in (6, 8, 12, 16) * (3 * BLOCK // 42)]  # several blocks' worth
    assert [len(b) for b in got] == [6, 8, 12, 16] * (3 * BLOCK // 42)
    assert len(set(got)) == len(got)  # no slice handed out twice
    assert len(pool(BLOCK + 1)) == BLOCK + 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_reuse_the_parents_unread_bytes() -> None:
    from sip.entropy import urandom_pool

    urandom_pool(8)  # the pool holds a block now
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(w, urandom_pool(16))
        os._exit(0)
    os.close(w)
    child = os.read(r, 16)
    os.close(r)
    os.waitpid(pid, 0)
    assert len(child) == 16 and child != urandom_pool(16)
