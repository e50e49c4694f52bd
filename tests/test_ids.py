"""Random ids drawn in blocks (``wirelab._ids``): formats, no repeats, none shared with a
forked child."""

from __future__ import annotations

import multiprocessing
import re

from wirelab import _ids


def test_formats_match_the_secrets_module() -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", _ids.token_urlsafe(16))
    assert re.fullmatch(r"[0-9a-f]{32}", _ids.token_hex(16))
    assert len(_ids.random_bytes(5000)) == 5000  # more than a block: drawn directly


def test_no_id_repeats_across_blocks() -> None:
    ids = [_ids.token_hex(16) for _ in range(2000)]  # ~8 blocks
    assert len(set(ids)) == len(ids)
    draws = [_ids.random_bytes(7) for _ in range(1500)]  # blocks not a multiple of 7
    assert all(len(d) == 7 for d in draws)
    assert len(set(draws)) == len(draws)


def _child_ids(queue: multiprocessing.Queue[list[str]]) -> None:
    queue.put([_ids.token_hex(16) for _ in range(50)])


def test_a_forked_child_draws_its_own_bytes() -> None:
    _ids.token_hex(16)  # the parent holds a partly used block
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[str]] = context.Queue()
    child = context.Process(target=_child_ids, args=(queue,))
    child.start()
    theirs = queue.get(timeout=30)
    child.join(30)
    ours = [_ids.token_hex(16) for _ in range(50)]
    assert not set(ours) & set(theirs)
