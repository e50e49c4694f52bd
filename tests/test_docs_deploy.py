"""The deployment examples of docs/deploy.md (Docker Compose, systemd) name only settings
that the command they run reads, with values it accepts. (Docker and systemd do not run
here: the examples are parsed, and their settings given to the real CLI's parser.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from wirelab.cli import main

DOC = Path(__file__).parents[1] / "docs" / "deploy.md"


def _blocks(language: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def _command(*names: str) -> click.Command:
    command: click.Command = main
    for name in names:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def _envvars(command: click.Command) -> set[str]:
    found: set[str] = set()
    for param in command.params:
        envvar = getattr(param, "envvar", None)
        found.update([envvar] if isinstance(envvar, str) else envvar or [])
    return found


def _check_settings(
    command: click.Command, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ``WIRELAB_*`` name in ``env`` is an option of ``command``, and the command's
    parser accepts the values (a bad number or choice raises ``click.BadParameter``)."""
    names = {name for name in env if name.startswith("WIRELAB_")}
    unknown = names - _envvars(command)
    assert not unknown, f"{command.name} reads no {sorted(unknown)}"
    with monkeypatch.context() as mp:
        for name in names:
            mp.setenv(name, env[name])
        command.make_context(command.name, [], auto_envvar_prefix=None).close()


def _compose() -> dict[str, Any]:
    blocks = [b for b in _blocks("yaml") if "services:" in b]
    assert len(blocks) == 1, "one compose example"
    loaded: dict[str, Any] = yaml.safe_load(blocks[0])
    return loaded


def _wirelab_services(compose: dict[str, Any]) -> dict[str, tuple[list[str], dict[str, str]]]:
    """``{service: (wirelab command words, environment)}`` of the services running wirelab."""
    found = {}
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command[:1] == ["wirelab"]:
            env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
            found[name] = (command[1:], env)
    return found


def test_compose_settings_exist_and_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _wirelab_services(_compose())
    assert {"migrate", "server", "worker"} <= services.keys()
    for words, env in services.values():
        _check_settings(_command(*words), env, monkeypatch)


def test_compose_servers_and_workers_share_their_stores_and_media_settings() -> None:
    compose = _compose()
    assert {"postgres", "redis", "minio"} <= compose["services"].keys()
    services = _wirelab_services(compose)
    server, worker = services["server"][1], services["worker"][1]
    assert server["WIRELAB_DATABASE_URL"].startswith("postgresql://")
    assert server["WIRELAB_STORAGE_URL"].startswith("s3://")
    assert server["WIRELAB_COORDINATION_URL"].startswith("redis://")
    assert server["WIRELAB_JOBS_URL"].startswith("redis://")
    shared = [n for n in server if n.startswith(("WIRELAB_MEDIA_", "AWS_"))] + [
        "WIRELAB_DATABASE_URL",
        "WIRELAB_STORAGE_URL",
        "WIRELAB_JOBS_URL",
        "WIRELAB_JOBS_QUEUE",
    ]
    assert {n: worker.get(n) for n in shared} == {n: server[n] for n in shared}
    assert services["migrate"][1]["WIRELAB_DATABASE_URL"] == server["WIRELAB_DATABASE_URL"]


def test_systemd_settings_exist_and_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    units = [b for b in _blocks("ini") if "ExecStart=" in b]
    assert units, "a systemd example"
    for unit in units:
        env = dict(re.findall(r"^Environment=(\w+)=(.*)$", unit, re.M))
        assert env, "the unit sets its options through the environment"
        command = re.search(r"^ExecStart=\S*/wirelab ([a-z ]+)$", unit, re.M)
        assert command is not None
        _check_settings(_command(*command.group(1).split()), env, monkeypatch)


def test_a_misspelled_setting_would_be_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AssertionError, match="WIRELAB_DATABASE_ULR"):
        _check_settings(_command("serve"), {"WIRELAB_DATABASE_ULR": "x"}, monkeypatch)
    with pytest.raises(click.BadParameter, match=r"0 is not in the range 1<=x<=1000"):
        _check_settings(_command("serve"), {"WIRELAB_DATABASE_POOL_SIZE": "0"}, monkeypatch)
