"""HTTPS: ``wirelab serve --tls-certfile --tls-keyfile`` for every capability, checked by
the CLI's ``--cacert`` against a throwaway CA (and refused without it)."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trustme
from click.testing import CliRunner, Result

from wirelab.cli import main
from wirelab.testing._live import LiveServer
from wirelab.testing._tls import TLSFiles, write_tls_files


@pytest.fixture
def tls_files(tmp_path: Path) -> TLSFiles:
    return write_tls_files(tmp_path / "tls")


def trusting(files: TLSFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(files.ca))


@pytest.fixture
def https_server(server_factory: Callable[..., LiveServer], tls_files: TLSFiles) -> LiveServer:
    return server_factory(tls_certfile=tls_files.cert, tls_keyfile=tls_files.key)


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wirelab: error: "), result.stderr
    return lines[0]


def test_the_live_server_speaks_https_only(https_server: LiveServer, tls_files: TLSFiles) -> None:
    assert https_server.url.startswith("https://127.0.0.1:")
    r = httpx.get(https_server.url + "/healthz", verify=trusting(tls_files))
    assert r.status_code == 200 and r.json()["status"] == "ok"
    plain = https_server.url.replace("https://", "http://")
    with pytest.raises(httpx.RemoteProtocolError):  # plain HTTP is not answered
        httpx.get(plain + "/healthz")


def test_stream_over_https_with_cacert(
    https_server: LiveServer, tls_files: TLSFiles, tmp_path: Path
) -> None:
    out = tmp_path / "stream"
    result = cli("stream", "--url", https_server.url, "--cacert", str(tls_files.ca),
                 "--out", str(out), "--count", "3", "--seed", "7", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["files"] == 3
    assert len([p for p in out.iterdir() if p.name != "manifest.json"]) == 3


def test_stream_without_cacert_fails_verification(https_server: LiveServer, tmp_path: Path) -> None:
    result = cli("stream", "--url", https_server.url, "--out", str(tmp_path / "o"),
                 "--count", "1")  # fmt: skip
    assert result.exit_code == 1
    assert "CERTIFICATE_VERIFY_FAILED" in error_line(result)


def test_relay_send_and_receive_over_https(
    https_server: LiveServer, tls_files: TLSFiles, tmp_path: Path
) -> None:
    data_dir = str(https_server.app.state.config.data_dir)
    tokens = {
        name: json.loads(cli("users", "add", name, "--data-dir", data_dir, "--json").stdout)[
            "token"
        ]
        for name in ("alice", "bob")
    }
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "WIRELAB_URL": https_server.url,
        "WIRELAB_CACERT": str(tls_files.ca),  # the env var of --cacert
        "WIRELAB_CONFIG": "",
        "WIRELAB_TOKEN_FILE": "",
    }
    data = os.urandom(300_000)
    (tmp_path / "a.bin").write_bytes(data)
    sent = cli("send", str(tmp_path / "a.bin"), "--to", "bob", "--json",
               env={**env, "WIRELAB_TOKEN": tokens["alice"]})  # fmt: skip
    assert sent.exit_code == 0, sent.output
    got = cli("receive", "--out", str(tmp_path / "in"), "--json",
              env={**env, "WIRELAB_TOKEN": tokens["bob"]})  # fmt: skip
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["files"][0]["acknowledged"] is True
    assert (tmp_path / "in" / "a.bin").read_bytes() == data

    refused = cli("inbox", env={**env, "WIRELAB_TOKEN": tokens["bob"], "WIRELAB_CACERT": ""})
    assert refused.exit_code == 1
    assert "CERTIFICATE_VERIFY_FAILED" in error_line(refused)


def serve_process(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wirelab", "serve", "--log-level", "info"],
        env={**os.environ, "WIRELAB_PORT": "0", "WIRELAB_DATA_DIR": str(tmp_path / "d"), **env},
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_takes_the_tls_files_from_the_environment(
    tmp_path: Path, tls_files: TLSFiles
) -> None:
    proc = serve_process(
        tmp_path, WIRELAB_TLS_CERTFILE=str(tls_files.cert), WIRELAB_TLS_KEYFILE=str(tls_files.key)
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if m := re.search(r"running on (\S+)", line):
                break
        else:
            pytest.fail("the server exited before it was ready")
        url = m.group(1)
        assert url.startswith("https://127.0.0.1:")
        assert httpx.get(url + "/healthz", verify=trusting(tls_files)).status_code == 200
        proc.terminate()
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.mark.parametrize("given", ["WIRELAB_TLS_CERTFILE", "WIRELAB_TLS_KEYFILE"])
def test_one_tls_file_without_the_other_is_a_usage_error(
    tmp_path: Path, tls_files: TLSFiles, given: str
) -> None:
    path = tls_files.cert if given.endswith("CERTFILE") else tls_files.key
    r = serve_process(tmp_path, **{given: str(path)})
    _, err = r.communicate(timeout=60)
    assert r.returncode == 2
    assert "--tls-certfile and --tls-keyfile go together" in err


def test_a_key_that_does_not_match_is_one_readable_error(
    tmp_path: Path, tls_files: TLSFiles
) -> None:
    other = trustme.CA().issue_cert("127.0.0.1")
    wrong_key = tmp_path / "other.key"
    other.private_key_pem.write_to_path(str(wrong_key))
    r = serve_process(
        tmp_path, WIRELAB_TLS_CERTFILE=str(tls_files.cert), WIRELAB_TLS_KEYFILE=str(wrong_key)
    )
    _, err = r.communicate(timeout=60)
    assert r.returncode == 1
    assert err.startswith("wirelab: error: cannot load the TLS certificate")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
