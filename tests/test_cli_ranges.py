"""The CLI writes some limits as literals (it keeps its import light: no server or db
modules); they must stay the ones the server configuration enforces."""

from __future__ import annotations

import click
import pytest

from wirelab.cli import main
from wirelab.db import MAX_POOL_SIZE, POOL_SIZE
from wirelab.server._config import AUTH_CACHE_MAX, ONLY_CHOICES


def _option(command: str, name: str) -> click.Option:
    cmd = main.commands[command]
    return next(p for p in cmd.params if isinstance(p, click.Option) and name in p.opts)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_the_pool_size_option_matches_the_database_limits(command: str) -> None:
    option = _option(command, "--database-pool-size")
    assert isinstance(option.type, click.IntRange)
    assert (option.type.min, option.type.max, option.default) == (1, MAX_POOL_SIZE, POOL_SIZE)


def test_the_token_cache_option_matches_the_server_bound() -> None:
    option = _option("serve", "--auth-cache-seconds")
    assert isinstance(option.type, click.FloatRange)
    assert (option.type.min, option.type.max) == (0, AUTH_CACHE_MAX)


def test_the_only_option_offers_what_the_server_serves_alone() -> None:
    option = _option("serve", "--only")
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == ONLY_CHOICES
