"""The plan's generator is numpy's ``PCG64(SeedSequence([seed, 0]))``, bit for bit.

The plan (sizes and waits) is part of the reproducibility contract: a seed gives the
files it always gave. ``plan_bits`` builds the generator from the seed's 32-bit words
instead of the list; these tests compare it with numpy's own for many seeds, and pin a
plan taken before the change.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirelab.stream import _plan
from wirelab.stream._params import MAX_SEED, StreamParams
from wirelab.stream._plan import iter_plan, plan_bits

# Seeds at every boundary of the word split (one word, two words, more than the pool).
EDGE_SEEDS = [0, 1, 2**32 - 1, 2**32, 2**32 + 1, 2**63 - 1, 2**64 - 1, 2**64, 2**160 + 3]


def reference(seed: int) -> np.random.PCG64:
    return np.random.PCG64(np.random.SeedSequence([seed, 0]))


@pytest.mark.parametrize("seed", EDGE_SEEDS)
def test_edge_seeds_give_numpys_state_and_outputs(seed: int) -> None:
    ours, theirs = plan_bits(seed), reference(seed)
    assert ours.state == theirs.state
    assert ours.random_raw(1000).tolist() == theirs.random_raw(1000).tolist()


@given(seed=st.integers(0, MAX_SEED))
def test_any_seed_gives_numpys_outputs(seed: int) -> None:
    assert plan_bits(seed).random_raw(8).tolist() == reference(seed).random_raw(8).tolist()


def test_many_consecutive_seeds_give_numpys_state() -> None:
    for seed in [*range(500), *range(2**32 - 250, 2**32 + 250)]:
        assert plan_bits(seed).state == reference(seed).state, seed


def test_plan_of_a_fixed_seed_is_unchanged() -> None:
    """Sizes and waits taken from the plan before plan_bits existed (PCG64: versions 1 and
    2 of the format, and the classic endpoints)."""
    seed = 123456789012345
    params = StreamParams(
        count=6, min_size=2, max_size=4096, min_interval=0.001, max_interval=2.0, seed=seed
    )
    plan = [(spec.size, spec.wait) for spec in iter_plan(params, seed, generator="pcg64")]
    assert plan == [
        (3534, 0.08983974616494543),
        (1210, 0.9447327352960074),
        (2076, 0.10962486746837254),
        (1034, 1.5305165971233297),
        (1838, 1.1064587587295107),
        (680, 0.1338474005205448),
    ]


def test_numpys_errstate_wrapper_is_skipped_and_nothing_overflows() -> None:
    """With this numpy, the plan's SeedSequence skips the errstate decorator (the check
    at import passed), and even with every floating-point error raising it seeds the
    same generator."""
    assert _plan._SeedSequence is not np.random.SeedSequence
    with np.errstate(all="raise"):
        for seed in EDGE_SEEDS:
            assert plan_bits(seed).state == reference(seed).state
