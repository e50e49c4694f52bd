"""The server's token cache (``auth_cache_seconds``) against a user removed by another
process (``wirelab users remove``): the removed user's token stops working within the
documented bound, and with no cache (SQLite's default) at once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from wirelab import UsageError
from wirelab.cli import main
from wirelab.server import ServerConfig

from .conftest import Relay


def _remove_in_another_process(relay: Relay, name: str) -> None:
    config = relay.server.app.state.config
    argv = [sys.executable, "-m", "wirelab", "users", "remove", name]
    argv += ["--data-dir", str(config.data_dir), "--database-url", config.metadata_url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def _inbox_status(relay: Relay) -> int:
    return relay.bob.get("/v1/relay/inbox").status_code


def test_a_removed_user_works_until_its_cached_token_expires(
    relay_factory: Callable[..., Relay],
) -> None:
    ttl = 1.0
    relay = relay_factory(auth_cache_seconds=ttl)
    assert _inbox_status(relay) == 200  # the token is cached now
    removed_at = time.monotonic()
    _remove_in_another_process(relay, "bob")
    # Past the bound the cache asks the database again (the sleep only makes sure the
    # bound has passed; a slow machine makes this later, never wrong).
    time.sleep(max(0.0, removed_at + ttl - time.monotonic()) + 0.05)
    assert _inbox_status(relay) == 401


def test_within_the_bound_the_cached_token_still_answers(
    relay_factory: Callable[..., Relay],
) -> None:
    relay = relay_factory(auth_cache_seconds=300)
    assert _inbox_status(relay) == 200
    _remove_in_another_process(relay, "bob")
    assert _inbox_status(relay) == 200  # the documented staleness: up to 300 s here
    assert relay.alice.get("/v1/relay/inbox").status_code == 200


def test_without_a_cache_a_removed_user_fails_at_once(relay_factory: Callable[..., Relay]) -> None:
    relay = relay_factory(auth_cache_seconds=0)
    assert _inbox_status(relay) == 200
    _remove_in_another_process(relay, "bob")
    assert _inbox_status(relay) == 401


def test_the_default_depends_on_the_metadata_store() -> None:
    sqlite = ServerConfig(database_url="sqlite:///x/wirelab.db")
    assert sqlite.token_cache_seconds == 0
    postgres = ServerConfig(database_url="postgresql://u@127.0.0.1/db")
    assert postgres.token_cache_seconds == 1.0
    chosen = ServerConfig(database_url="sqlite:///x.db", auth_cache_seconds=5)
    assert chosen.token_cache_seconds == 5


@pytest.mark.parametrize("seconds", [-1.0, 301.0])
def test_an_out_of_range_lifetime_is_refused(seconds: float) -> None:
    with pytest.raises(UsageError, match="token cache lifetime must be 0 to 300"):
        ServerConfig(auth_cache_seconds=seconds)


def test_the_cli_refuses_a_negative_lifetime() -> None:
    result = CliRunner().invoke(main, ["serve", "--auth-cache-seconds", "-1"])
    assert result.exit_code == 2
    assert "--auth-cache-seconds" in result.output
