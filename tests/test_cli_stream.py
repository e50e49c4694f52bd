"""End-to-end tests of ``wirelab stream``: click's runner and the real console script, against
a live server, plus a tiny HTTP server that sends hand-made (broken or hostile) streams."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import blake3
import pytest
from click.testing import CliRunner, Result

from wirelab._cli_stream import StreamProgress
from wirelab.cli import main
from wirelab.client import Client
from wirelab.framing import StreamEncoder
from wirelab.testing._live import LiveServer

FAST = ["--min-interval", "0", "--max-interval", "0", "--min-size", "100", "--max-size", "5000"]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The download folder (``tmp_path`` itself also holds the server's data folder)."""
    return tmp_path / "dl"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["stream", *args], env=env)


def one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wirelab: error: "), result.stderr
    return lines[0]


def make_body(files: Sequence[bytes], names: Sequence[str], corrupt: int | None = None) -> bytes:
    """A stream of int16 files; file ``corrupt`` (if any) gets a wrong digest."""
    enc = StreamEncoder()
    out = bytearray(enc.start(seed=3, count=len(files), params={"seed": 3}))
    for i, (data, name) in enumerate(zip(files, names, strict=True)):
        out += enc.file_start(
            index=i, name=name, size=len(data), dtype="int16", byteorder="little", offset=0.0
        )
        out += enc.data(data)
        digest = hashlib.sha256(data + (b"!" if i == corrupt else b"")).hexdigest()
        out += enc.file_end(digest)
    if corrupt is None:
        out += enc.end()
    return bytes(out)


@contextmanager
def fake_server(body: bytes) -> Iterator[str]:
    """An HTTP server answering every GET with ``body`` as a wirelab stream."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.wirelab.stream; version=1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


class TestDownload:
    def test_saves_verified_files_and_manifest(self, server: LiveServer, out: Path) -> None:
        out = out / "new"
        result = run("--url", server.url, "--count", "4", "--seed", "11", *FAST, "--out", str(out))
        assert result.exit_code == 0, result.stderr
        assert result.stdout.startswith("saved 4 files") and "seed 11" in result.stdout
        with Client(server.url) as client:
            expected = client.manifest(count=4, seed=11, min_interval=0, max_interval=0,
                                       min_size=100, max_size=5000)  # fmt: skip
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["complete"] is True and manifest["seed"] == 11
        assert manifest["url"] == server.url and manifest["count"] == 4
        assert manifest["params"] == expected["params"]
        assert manifest["total_bytes"] == expected["total_bytes"]
        for saved, planned in zip(manifest["files"], expected["files"], strict=True):
            assert {k: saved[k] for k in planned} == planned
            assert saved["dtype"] == "int16" and saved["byteorder"] == "little"
            path = out / planned["name"]
            assert path.stat().st_size == planned["size"]
            assert blake3.blake3(path.read_bytes()).hexdigest() == planned["blake3"]
        assert sorted(p.name for p in out.iterdir()) == sorted(
            ["manifest.json", *(f["name"] for f in expected["files"])]
        )

    @pytest.mark.parametrize(
        ("digest", "label"), [([], "BLAKE3"), (["--digest", "sha256"], "SHA-256")]
    )
    def test_verify_passes_then_names_a_corrupt_file(
        self, server: LiveServer, out: Path, digest: list[str], label: str
    ) -> None:
        """BLAKE3 by default; ``--digest sha256`` writes the manifest older versions wrote
        (a ``sha256`` member per file), which --verify still checks."""
        args = ("--url", server.url, "--count", "3", *FAST, *digest, "--out", str(out))
        assert run(*args).exit_code == 0
        member = "sha256" if digest else "blake3"
        assert all(member in f for f in json.loads((out / "manifest.json").read_text())["files"])
        result = run("--verify", str(out))
        assert result.exit_code == 0 and "all 3 files intact" in result.stdout
        victim = out / "000001.int16"
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 1
        victim.write_bytes(data)
        result = run("--verify", str(out))
        assert result.exit_code == 1
        assert result.stdout == f"corrupt: 000001.int16: {label} does not match the manifest\n"
        assert "1 problem(s); 2 of 3 listed files intact" in one_error_line(result)
        report = json.loads(run("--verify", str(out), "--json").stdout)
        assert report["ok"] is False and report["problems"][0]["name"] == "000001.int16"

    def test_json_summary(self, server: LiveServer, out: Path) -> None:
        result = run("--url", server.url, "--count", "3", *FAST, "--out", str(out), "--json")
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout)
        manifest = json.loads((out / "manifest.json").read_text())
        assert summary["ok"] is True and summary["files"] == 3
        assert summary["bytes"] == manifest["total_bytes"] and summary["seed"] == manifest["seed"]
        assert summary["out"] == str(out) and summary["elapsed_s"] >= 0
        assert summary["mb_per_s"] >= 0 and result.stderr == ""

    def test_refuses_an_existing_download_unless_overwrite(
        self, server: LiveServer, out: Path
    ) -> None:
        args = ["--url", server.url, *FAST, "--out", str(out)]
        assert run(*args, "--count", "4").exit_code == 0
        result = run(*args, "--count", "2")
        assert result.exit_code == 1 and "--overwrite" in one_error_line(result)
        assert run(*args, "--count", "2", "--overwrite").exit_code == 0
        assert sorted(p.name for p in out.iterdir()) == [
            "000000.int16",
            "000001.int16",
            "manifest.json",
        ]

    def test_environment_variables(self, server: LiveServer, out: Path) -> None:
        env = {"WIRELAB_URL": server.url, "WIRELAB_STREAM_COUNT": "2",
               "WIRELAB_STREAM_MIN_INTERVAL": "0", "WIRELAB_STREAM_MAX_INTERVAL": "0",
               "WIRELAB_STREAM_DTYPE": "int8"}  # fmt: skip
        result = run("--out", str(out), "--min-size", "10", "--max-size", "1000", env=env)
        assert result.exit_code == 0, result.stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert [f["name"] for f in manifest["files"]] == ["000000.int8", "000001.int8"]


class TestFailures:
    def test_http_error_is_one_line(self, server: LiveServer, out: Path) -> None:
        result = run("--url", server.url, "--count", "1000000", "--out", str(out))
        assert result.exit_code == 1 and result.stdout == ""
        assert one_error_line(result).startswith("wirelab: error: HTTP 422 from /v1/stream: count")
        assert not (out / "manifest.json").exists()
        result = run("--url", server.url, "--count", "1000000", "--out", str(out), "--json")
        summary = json.loads(result.stdout)
        assert summary["ok"] is False and summary["error"].startswith("HTTP 422")

    def test_unreachable_server(self, tmp_path: Path) -> None:
        with fake_server(b"") as url:
            pass  # the port is free again
        result = run("--url", url, "--out", str(tmp_path))
        assert result.exit_code == 1
        assert "cannot connect to" in one_error_line(result)

    @pytest.mark.parametrize(
        "args",
        [
            ["--dtype", "int64"],
            ["--count", "-1"],
            ["--speed", "0"],
            ["--seed", "x"],
            ["--timeout", "0"],
            ["--url", "127.0.0.1:8080"],
        ],
    )
    def test_bad_option_values_are_usage_errors(self, tmp_path: Path, args: list[str]) -> None:
        result = run(*args, "--out", str(tmp_path))
        assert result.exit_code == 2 and "Invalid value" in result.stderr

    def test_conflicting_or_missing_modes(self, tmp_path: Path) -> None:
        assert run().exit_code == 2
        result = run("--verify", str(tmp_path), "--count", "3")
        assert result.exit_code == 2 and "--verify cannot be combined with --count" in result.stderr
        assert run("--verify", str(tmp_path / "nope")).exit_code == 2

    def test_verify_without_manifest(self, tmp_path: Path) -> None:
        result = run("--verify", str(tmp_path))
        assert result.exit_code == 1 and "no manifest.json" in one_error_line(result)

    def test_failure_mid_stream_keeps_verified_files(self, tmp_path: Path) -> None:
        files = [b"\x01\x00" * 50, b"\x02\x00" * 60, b"\x03\x00" * 70, b"\x04\x00" * 80]
        body = make_body(files, [f"{i:06d}.int16" for i in range(4)], corrupt=2)
        with fake_server(body) as url:
            result = run("--url", url, "--out", str(tmp_path))
        assert result.exit_code == 1
        assert "file 2: sha256 mismatch" in one_error_line(result)
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        assert manifest["complete"] is False and manifest["count"] == 4
        assert [f["name"] for f in manifest["files"]] == ["000000.int16", "000001.int16"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "000000.int16",
            "000001.int16",
            "manifest.json",
        ]  # no .part left behind
        result = run("--verify", str(tmp_path))
        assert result.exit_code == 1 and result.stdout.startswith("incomplete: manifest.json")

    def test_server_names_are_not_trusted(self, tmp_path: Path) -> None:
        files = [b"\x00\x00" * 5] * 4
        names = ["manifest.json", "x.int16", "000002.int16.part", "000009.int16"]
        out = tmp_path / "dl"
        with fake_server(make_body(files, names)) as url:
            result = run("--url", url, "--out", str(out))
        assert result.exit_code == 0, result.stderr
        saved = sorted(p.name for p in out.iterdir())
        assert saved == ["000000.bin", "000001.bin", "000002.bin", "000003.bin", "manifest.json"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["dl"]
        assert run("--verify", str(out)).exit_code == 0


class TestConsoleScript:
    def test_real_command_against_a_live_server(self, server: LiveServer, out: Path) -> None:
        script = Path(sys.executable).with_name("wirelab")
        command = str(script) if script.exists() else shutil.which("wirelab")
        assert command is not None, "the wirelab console script is not installed"
        args = [command, "stream", "--url", server.url, "--count", "3", "--speed", "1000"]
        done = subprocess.run(
            [*args, "--max-size", "4096", "--out", str(out), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["ok"] is True and summary["files"] == 3 and done.stderr == ""
        check = subprocess.run(
            [command, "stream", "--verify", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0 and "all 3 files intact" in check.stdout
        bad = subprocess.run(
            [command, "stream", "--url", server.url, "--count", "-5", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert bad.returncode == 2


class TestProgress:
    def test_bar_on_a_terminal(self) -> None:
        from rich.console import Console

        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=True, width=100)
        with StreamProgress(enabled=True, console=console) as progress:
            progress.started(2)
            for _ in range(2):
                progress.data(1500)
                progress.file_done()
        text = buffer.getvalue()
        assert "2/2" in text and "3.0 kB" in text

    def test_nothing_elsewhere(self) -> None:
        from rich.console import Console

        buffer = io.StringIO()
        with StreamProgress(enabled=True, console=Console(file=buffer)) as progress:
            progress.started(1)
            progress.data(10)
            progress.file_done()
        assert not progress.enabled and buffer.getvalue() == ""
