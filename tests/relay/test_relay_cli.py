"""``wirelab login | logout | send | inbox | receive`` against a live server."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from wirelab.cli import main
from wirelab.client import RelayClient

from ._progress import StopAfter
from .conftest import Relay


@pytest.fixture
def env(tmp_path: Path, relay: Relay) -> dict[str, str]:
    """A clean client environment: own config and state folders, the server's URL."""
    return {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "WIRELAB_URL": relay.server.url,
        "WIRELAB_TOKEN": "",
        "WIRELAB_CONFIG": "",
        "WIRELAB_TOKEN_FILE": "",
    }


def run(
    env: dict[str, str], *args: str, token: str | None = None, stdin: str | None = None
) -> Result:
    full = {**env, "WIRELAB_TOKEN": token} if token else env
    return CliRunner().invoke(main, list(args), env=full, input=stdin)


def one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wirelab: error: "), result.stderr
    return lines[0]


@pytest.mark.distributed
def test_send_inbox_receive_with_json(relay: Relay, env: dict[str, str], tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    b = tmp_path / "b.bin"
    a.write_text("hello")
    b.write_bytes(os.urandom(100_000))
    alice, bob = relay.tokens["alice"], relay.tokens["bob"]

    sent = run(env, "send", str(a), "--to", "bob", "--note", "hi", "--json", token=alice)
    assert sent.exit_code == 0, sent.output
    doc = json.loads(sent.stdout)
    assert doc["to"] == "bob" and doc["files"][0]["name"] == "a.txt"
    assert run(env, "send", str(b), "--to", "bob", token=alice).stdout.startswith("sent b.bin")

    listed = json.loads(run(env, "inbox", "--json", token=bob).stdout)
    assert [f["name"] for f in listed["files"]] == ["a.txt", "b.bin"]
    human = run(env, "inbox", token=bob).stdout.splitlines()
    assert len(human) == 2 and "a.txt" in human[0] and "“hi”" in human[0]

    out = tmp_path / "out"
    got = run(env, "receive", "--all", "--out", str(out), "--json", token=bob)
    assert got.exit_code == 0, got.output
    files = json.loads(got.stdout)["files"]
    assert [f["name"] for f in files] == ["a.txt", "b.bin"]
    assert all(f["acknowledged"] for f in files)
    assert (out / "a.txt").read_text() == "hello"
    assert (out / "b.bin").read_bytes() == b.read_bytes()
    assert run(env, "inbox", token=bob).stdout.strip() == "inbox empty"
    assert run(env, "receive", "--out", str(out), token=bob).stdout.strip() == "inbox empty"
    run(env, "send", str(a), "--to", "bob", token=alice)
    relay.bob.post("/v1/relay/inbox/next", params={"lease": 600})  # another receiver has it
    held = run(env, "receive", "--out", str(out), "--json", token=bob)
    assert json.loads(held.stdout) == {"ok": True, "files": [], "unavailable": 1}
    assert (
        "1 in your inbox are being received elsewhere"
        in run(env, "receive", "--out", str(out), token=bob).stdout
    )


def test_login_saves_a_private_config_used_by_the_other_commands(
    relay: Relay, env: dict[str, str], tmp_path: Path
) -> None:
    result = run(env, "login", stdin=relay.tokens["alice"] + "\n")
    assert result.exit_code == 0, result.output
    config = tmp_path / "config" / "wirelab" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = json.loads(config.read_text())
    assert saved == {"url": relay.server.url, "token": relay.tokens["alice"]}
    (tmp_path / "f").write_text("x")
    no_url = {k: v for k, v in env.items() if k != "WIRELAB_URL"}
    assert run(no_url, "send", str(tmp_path / "f"), "--to", "bob").exit_code == 0
    assert run(no_url, "logout").stdout.strip() == "Logged out."
    assert not config.exists()
    fails = run(no_url, "inbox")
    assert fails.exit_code == 3  # an authentication problem
    assert "no API token" in one_error_line(fails)


def test_login_refuses_a_wrong_token_and_saves_nothing(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, "login", stdin="wl_not-a-token\n")
    assert result.exit_code == 3
    line = one_error_line(result)
    assert "HTTP 401" in line and "the token came from --token-file standard input" in line
    assert not (tmp_path / "config" / "wirelab" / "config.json").exists()


def test_a_config_readable_by_others_is_refused(
    relay: Relay, env: dict[str, str], tmp_path: Path
) -> None:
    assert run(env, "login", stdin=relay.tokens["bob"]).exit_code == 0
    config = tmp_path / "config" / "wirelab" / "config.json"
    config.chmod(0o644)
    result = run(env, "inbox")
    assert result.exit_code == 2
    assert "readable by others" in one_error_line(result)


def test_token_file(relay: Relay, env: dict[str, str], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(relay.tokens["bob"] + "\n")
    result = run(env, "inbox", "--token-file", str(token_file), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == {"ok": True, "files": []}
    result = run(env, "inbox", "--token-file", "-", stdin=relay.tokens["bob"])
    assert result.exit_code == 0


@pytest.mark.parametrize(
    ("args", "fragment", "code"),
    [
        (["send", "MISSING", "--to", "bob"], "cannot send", 2),
        (
            ["send", "FILE", "--to", "nobody"],
            "HTTP 404 from /v1/relay/uploads: no user named 'nobody'",
            5,
        ),
        (["receive", "--out", "FILE/sub"], "Not a directory", 5),
    ],
)
def test_failures_are_one_line_with_their_exit_status(
    relay: Relay, env: dict[str, str], tmp_path: Path, args: list[str], fragment: str, code: int
) -> None:
    (tmp_path / "FILE").write_text("x")
    relay.alice.post(
        "/v1/relay/files",
        params={"to": "alice", "name": "n"},
        content=b"x",
        headers={
            "Wirelab-Sha256": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        },
    ).raise_for_status()
    args = [str(tmp_path / a) if a in ("MISSING", "FILE", "FILE/sub") else a for a in args]
    result = run(env, *args, token=relay.tokens["alice"])
    assert result.exit_code == code, result.output
    assert fragment in one_error_line(result)


def test_receive_does_not_overwrite_and_reports_in_json(
    relay: Relay, env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "same.txt").write_text("local")
    (tmp_path / "same.txt").write_text("remote")
    run(env, "send", str(tmp_path / "same.txt"), "--to", "bob", token=relay.tokens["alice"])
    result = run(env, "receive", "--out", str(out), "--json", token=relay.tokens["bob"])
    assert result.exit_code == 5
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and "--exists rename" in doc["error"] and doc["files"] == []
    assert (doc["error_kind"], doc["exit_code"]) == ("data", 5)
    assert (out / "same.txt").read_text() == "local"
    # The lease was given back: the file is offered again at once, not in 5 minutes; an
    # unattended run keeps both.
    again = run(
        env, "receive", "-a", "--exists", "rename", "-o", str(out), token=relay.tokens["bob"]
    )
    assert again.exit_code == 0, again.output
    assert (out / "same.txt").read_text() == "local"
    assert (out / "same (1).txt").read_text() == "remote"


def test_chunk_size_accepts_units_and_rejects_nonsense(
    relay: Relay, env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "f").write_bytes(os.urandom(3000))
    ok = run(
        env,
        "send",
        str(tmp_path / "f"),
        "--to",
        "bob",
        "--chunk-size",
        "1k",
        token=relay.tokens["alice"],
    )
    assert ok.exit_code == 0, ok.output
    bad = run(
        env,
        "send",
        str(tmp_path / "f"),
        "--to",
        "bob",
        "--chunk-size",
        "lots",
        token=relay.tokens["alice"],
    )
    assert bad.exit_code == 2 and "is not a size like" in bad.stderr


# --- the output contract: one JSON object, exit status by kind ---------------------------


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize(
    ("args", "token", "code", "kind"),
    [
        (["inbox"], "bob", 0, None),
        (["whoami"], "bob", 0, None),
        (["logout"], None, 0, None),
        (["receive", "-o", "OUT"], "bob", 0, None),
        (["send", "MISSING", "-t", "bob"], "alice", 2, "usage"),
        (["send", "FILE"], "alice", 2, "usage"),  # click: --to is missing
        (["inbox", "--url", "http://[::1"], "bob", 2, "usage"),
        (["inbox"], "wl_wrong", 3, "auth"),
        (["inbox"], None, 3, "auth"),
        (["inbox", "--url", "CLOSED"], "bob", 4, "network"),
        (["send", "FILE", "-t", "nobody"], "alice", 5, "data"),
        (["stream", "--verify", "OUT"], None, 2, "usage"),
        (["users", "list", "--data-dir", "OUT"], None, 5, "data"),
    ],
)
def test_json_is_one_object_with_ok_for_every_command(
    relay: Relay,
    env: dict[str, str],
    tmp_path: Path,
    args: list[str],
    token: str | None,
    code: int,
    kind: str | None,
) -> None:
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "OUT").mkdir()
    names = {"MISSING": tmp_path / "MISSING", "FILE": tmp_path / "FILE", "OUT": tmp_path / "OUT"}
    args = [str(names[a]) if a in names else a for a in args]
    args = [_closed_port_url() if a == "CLOSED" else a for a in args]
    result = run(env, *args, "--json", token=relay.tokens.get(token or "", token))
    assert result.exit_code == code, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    doc = json.loads(lines[0])
    assert doc["ok"] is (code == 0)
    if code:
        assert (doc["error_kind"], doc["exit_code"]) == (kind, code)
        assert doc["error"] and one_error_line(result).endswith(doc["error"])
    assert "Traceback" not in result.output


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "ftp://x", "http://"])
def test_malformed_urls_are_one_line_usage_errors(env: dict[str, str], url: str) -> None:
    result = run(env, "inbox", "--url", url, token="wl_x")
    assert result.exit_code == 2, result.output
    assert "--url" in result.stderr and "Traceback" not in result.output


def test_whoami_and_the_source_of_a_refused_token(relay: Relay, env: dict[str, str]) -> None:
    me = run(env, "whoami", token=relay.tokens["carol"])
    assert me.exit_code == 0 and me.stdout.startswith(f"carol on {relay.server.url}")
    refused = run(env, "whoami", token="wl_revoked")
    assert refused.exit_code == 3
    assert "the token came from $WIRELAB_TOKEN" in one_error_line(refused)


def test_send_a_folder_and_standard_input(
    relay: Relay, env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(b"a")
    (folder / "sub" / "b.jpg").write_bytes(b"b")
    sent = run(env, "send", str(folder), "-t", "bob", "--json", token=relay.tokens["alice"])
    assert sent.exit_code == 0, sent.output
    assert [f["name"] for f in json.loads(sent.stdout)["files"]] == ["a.jpg", "b.jpg"]
    piped = run(
        env, "send", "-", "--name", "notes.txt", "-t", "bob", token=relay.tokens["alice"],
        stdin="from a pipe\n",
    )  # fmt: skip
    assert piped.exit_code == 0, piped.output
    out = tmp_path / "out"
    got = run(env, "receive", "-a", "-o", str(out), token=relay.tokens["bob"])
    assert got.exit_code == 0, got.output
    assert (out / "notes.txt").read_text() == "from a pipe\n"
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.jpg", "notes.txt"]


def test_a_note_cannot_forge_an_inbox_line(
    relay: Relay, env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "f").write_text("x")
    forged = "hi\nfff  2026-01-01T00:00:00  admin  1 B  invoice.pdf\x1b[2K"
    run(
        env, "send", str(tmp_path / "f"), "-t", "bob", "--note", forged, token=relay.tokens["alice"]
    )
    listed = run(env, "inbox", token=relay.tokens["bob"])
    assert listed.exit_code == 0 and len(listed.stdout.splitlines()) == 1
    assert "hi\\nfff" in listed.stdout and "\x1b" not in listed.stdout


@pytest.mark.distributed
def test_receive_says_it_waits_and_that_it_resumed(
    relay: Relay, env: dict[str, str], tmp_path: Path
) -> None:
    waited = run(env, "receive", "-w", "0.2", "-o", str(tmp_path), token=relay.tokens["bob"])
    assert waited.exit_code == 0 and "waiting up to 0.2 s" in waited.stderr
    data = os.urandom(3 * 1024 * 1024)
    (tmp_path / "big").write_bytes(data)
    run(env, "send", str(tmp_path / "big"), "-t", "bob", token=relay.tokens["alice"])
    out = tmp_path / "out"
    with (
        RelayClient(relay.server.url, token=relay.tokens["bob"], state_dir=tmp_path) as bob,
        pytest.raises(KeyboardInterrupt),
    ):
        bob.receive(out, lease=600, progress=StopAfter(1024 * 1024))
    got = run(env, "receive", "-o", str(out), token=relay.tokens["bob"])  # no wait needed
    assert got.exit_code == 0, got.output
    assert "resumed at" in got.stdout and (out / "big").read_bytes() == data


def test_a_second_copy_is_refused_with_json_then_sent_with_again(
    relay: Relay, env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "r.pdf").write_bytes(b"%PDF")
    args = ["send", str(tmp_path / "r.pdf"), "-t", "bob", "--json"]
    assert run(env, *args, token=relay.tokens["alice"]).exit_code == 0
    twice = run(env, *args, token=relay.tokens["alice"])
    assert twice.exit_code == 5
    doc = json.loads(twice.stdout)
    assert "identical copy" in doc["error"] and "--again" in doc["error"]
    assert [f["name"] for f in doc["queued"]] == ["r.pdf"]
    assert run(env, *args, "--again", token=relay.tokens["alice"]).exit_code == 0
    assert (
        len(json.loads(run(env, "inbox", "--json", token=relay.tokens["bob"]).stdout)["files"]) == 2
    )


def test_serve_with_a_data_folder_it_cannot_create(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = run(env, "serve", "--port", "0", "--data-dir", str(tmp_path / "file" / "data"))
    assert result.exit_code == 5
    assert "cannot create the data folder" in one_error_line(result)
    as_json = run(env, "serve", "--data-dir", str(tmp_path / "file" / "data"), "--json")
    assert json.loads(as_json.stdout)["error_kind"] == "data"
