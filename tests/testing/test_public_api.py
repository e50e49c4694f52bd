"""The curated public names of wirelab.testing: every one resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import wirelab.testing


@pytest.mark.parametrize("name", wirelab.testing.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(wirelab.testing, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wirelab.testing.Nope


def test_importing_the_package_is_cheap() -> None:
    code = "import sys, wirelab.testing; print('asyncio' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
