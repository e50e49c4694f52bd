"""``wirelab media fetch | jobs | show | cancel`` against a live server and the test media:
progress lines, verified downloads, ``--json`` objects (errors too), Ctrl-C advice."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from wirelab.cli import main
from wirelab.media.testing import MediaServer, TestMedia

from .conftest import Media, wait_job


@pytest.fixture
def env(media: Media, tmp_path: Path) -> dict[str, str]:
    """alice's client environment: the server URL and token, own config folders."""
    return {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "WIRELAB_URL": media.server.url,
        "WIRELAB_TOKEN": media.alice.headers["Authorization"].removeprefix("Bearer "),
        "WIRELAB_CONFIG": "",
        "WIRELAB_TOKEN_FILE": "",
        "WIRELAB_CACERT": "",
    }


def submit(media: Media, **body: str) -> dict[str, Any]:
    """alice's job, submitted over HTTP."""
    response = media.alice.post("/v1/media/jobs", json=body)
    assert response.status_code == 202, response.text
    doc: dict[str, Any] = response.json()
    return doc


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["media", *args], env=env)


def one_json(result: Result) -> dict[str, Any]:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    doc: dict[str, Any] = json.loads(lines[0])
    return doc


def error_line(result: Result) -> str:
    # CliRunner captures the whole process's stderr, and the test media server's threads
    # may report a connection that a canceled ffmpeg dropped: only the CLI's lines count.
    lines = [line for line in result.stderr.splitlines() if line.startswith("wirelab")]
    assert len(lines) == 1 and lines[0].startswith("wirelab: error: "), result.stderr
    return lines[0]


@pytest.mark.distributed
def test_fetch_shows_progress_downloads_verifies_and_says_where(
    env: dict[str, str], source: MediaServer, test_media: TestMedia, tmp_path: Path
) -> None:
    out = tmp_path / "clip.mp4"
    result = run(env, "fetch", source.url(test_media.hls), "--start", "2", "--end", "00:06",
                 "--accuracy", "exact", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"saved {out} (") and "SHA-256 verified" in result.stdout
    # Without a terminal the bar is one line per state and phase, ending with success.
    progress = result.stderr.splitlines()
    assert progress[0].startswith("job ") and ": queued" in progress[0]
    assert any("running" in line for line in progress)
    assert ": succeeded" in progress[-1] and progress[-1].endswith(" 100%")
    job_id = progress[0].split()[1].rstrip(":")
    again = run(env, "fetch", source.url(test_media.hls), "--end", "3", "--out", str(out))
    assert again.exit_code == 5 and "exists" in error_line(again)  # data, not usage
    assert again.stderr.count("job ") == 0  # refused before any job was submitted
    shown = one_json(run(env, "show", job_id, "--json"))
    assert shown["ok"] is True and shown["job"]["state"] == "succeeded"
    assert hashlib.sha256(out.read_bytes()).hexdigest() == shown["job"]["result"]["sha256"]


def test_fetch_json_is_one_object_and_files_go_into_a_folder(
    env: dict[str, str], source: MediaServer, test_media: TestMedia, tmp_path: Path
) -> None:
    result = run(env, "fetch", source.url(test_media.mp4), "--end", "2", "--accuracy", "fast",
                 "--container", "mkv", "--out", str(tmp_path), "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = one_json(result)
    assert doc["ok"] is True and doc["resumed_from"] == 0
    path = Path(doc["path"])
    assert path.parent == tmp_path and path.suffix == ".mkv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == doc["sha256"]
    assert path.stat().st_size == doc["size"] == doc["job"]["result"]["size"]
    assert result.stderr == ""  # --json: no progress lines either
    written = path.stat().st_mtime_ns

    again = run(env, "fetch", source.url(test_media.mp4), "--end", "2", "--accuracy", "fast",
                "--container", "mkv", "--out", str(tmp_path), "--json")  # fmt: skip
    # The same job again: the identical file is there already, so nothing is rewritten.
    assert again.exit_code == 0, again.output
    assert one_json(again)["job"]["id"] == doc["job"]["id"] and one_json(again)["path"] == str(path)
    assert path.stat().st_mtime_ns == written


def test_fetch_errors_are_json_objects(
    env: dict[str, str], source: MediaServer, test_media: TestMedia, tmp_path: Path
) -> None:
    bad_range = run(env, "fetch", source.url(test_media.mp4), "--start", "9", "--end", "3",
                    "--json")  # fmt: skip
    assert bad_range.exit_code == 2  # the server refused the request: usage
    doc = one_json(bad_range)
    assert doc["ok"] is False and doc["status"] == 422 and "before end" in doc["error"]
    assert "before end" in error_line(bad_range)

    failed = run(env, "fetch", source.url("missing.mp4"), "--end", "2", "--out",
                 str(tmp_path / "x.mp4"), "--json")  # fmt: skip
    assert failed.exit_code == 1
    doc = one_json(failed)
    assert doc["ok"] is False and doc["job"]["state"] == "failed"
    assert doc["job"]["error"]["message"] in doc["error"]
    assert not (tmp_path / "x.mp4").exists()

    no_token = run({**env, "WIRELAB_TOKEN": ""}, "jobs", "--json")
    assert no_token.exit_code == 3
    assert one_json(no_token) == {
        "ok": False,
        "error": error_line(no_token)[16:],
        "error_kind": "auth",
        "exit_code": 3,
    }

    refused = run({**env, "WIRELAB_URL": "http://127.0.0.1:9"}, "show", "abc", "--json")
    assert refused.exit_code == 4 and one_json(refused)["ok"] is False
    assert one_json(refused)["error_kind"] == "network"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["http://a/b", "--video-id", "v"],
        ["--job", "j", "--start", "3"],
    ],
)
def test_fetch_usage_errors(env: dict[str, str], args: list[str]) -> None:
    result = run(env, "fetch", *args, "--json")
    assert result.exit_code == 2
    assert one_json(result)["ok"] is False


def test_jobs_show_and_cancel(
    env: dict[str, str], media: Media, source: MediaServer, test_media: TestMedia
) -> None:
    assert run(env, "jobs").stdout.strip() == "no jobs"
    done = submit(media, source=source.url(test_media.mp4), end="1", accuracy="fast")
    wait_job(media.alice, done["id"])
    slow = submit(media, source=source.url("slow/" + test_media.hls), start="2", end="20")

    listed = one_json(run(env, "jobs", "--json"))
    assert listed["ok"] is True and [j["id"] for j in listed["jobs"]] == [slow["id"], done["id"]]
    only = one_json(run(env, "jobs", "--state", "succeeded", "--json"))
    assert [j["id"] for j in only["jobs"]] == [done["id"]]
    lines = run(env, "jobs").stdout.splitlines()
    assert len(lines) == 2 and lines[1].startswith(done["id"]) and "succeeded" in lines[1]
    assert "state:" in run(env, "show", done["id"]).stdout

    canceled = run(env, "cancel", slow["id"], "--json")
    assert canceled.exit_code == 0, canceled.output
    doc = one_json(canceled)
    assert doc["ok"] is True and doc["was"] in ("queued", "running")
    assert wait_job(media.alice, slow["id"])[0]["state"] == "canceled"

    deleted = run(env, "cancel", done["id"])
    assert deleted.stdout.strip() == f"deleted the result of job {done['id']} (succeeded)"
    missing = run(env, "show", done["id"], "--json")
    assert missing.exit_code == 5
    assert one_json(missing)["status"] == 404 and "404" in error_line(missing)


def test_fetch_over_the_cli_is_isolated_per_user(
    env: dict[str, str], media: Media, source: MediaServer, test_media: TestMedia
) -> None:
    job = submit(media, source=source.url(test_media.mp4), end="1", accuracy="fast")
    bob = {**env, "WIRELAB_TOKEN": media.bob.headers["Authorization"].removeprefix("Bearer ")}
    for command in (["show", job["id"]], ["cancel", job["id"]], ["fetch", "--job", job["id"]]):
        result = run(bob, *command, "--json")
        assert result.exit_code == 5 and one_json(result)["status"] == 404


def test_ctrl_c_during_fetch_says_how_to_resume_and_cancel(
    env: dict[str, str], source: MediaServer, test_media: TestMedia, tmp_path: Path
) -> None:
    out = tmp_path / "clip.mp4"
    argv = [sys.executable, "-m", "wirelab", "media", "fetch", source.url("slow/" + test_media.hls),
            "--start", "1", "--end", "9", "--out", str(out)]  # fmt: skip
    # A process started with SIGINT ignored (a background job of a non-interactive shell,
    # as CI scripts run) passes that on, and Python then leaves Ctrl-C ignored: the
    # fetch would run to its end. The child must start with Ctrl-C handled, as in a
    # terminal: a handler in this process is reset to the default by exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # "job ID: queued 0%": the job exists on the server
    assert first.startswith("job "), first
    job_id = first.split()[1].rstrip(":")
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130
    advice = rest.splitlines()[-1]
    assert advice.startswith("wirelab: error: interrupted")
    assert f"wirelab media fetch --job {job_id}" in advice
    assert f"wirelab media cancel {job_id}" in advice

    resumed = run(env, "fetch", "--job", job_id, "--out", str(out), "--json")
    assert resumed.exit_code == 0, resumed.output
    doc = one_json(resumed)
    assert doc["job"]["id"] == job_id and doc["path"] == str(out)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == doc["sha256"]
