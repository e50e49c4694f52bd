"""`wirelab stream` over https: --cacert trusts a CA, --insecure skips the check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from wirelab.cli import main
from wirelab.framing import StreamEncoder
from wirelab.testing import BadCert, RecvUntil, ScriptedServer, ScriptError, Send


def http_stream(files: list[bytes]) -> bytes:
    """A whole HTTP/1.1 response carrying ``files`` in the wirelab stream format."""
    enc = StreamEncoder()
    body = enc.start(seed=1, count=len(files), params={})
    for i, data in enumerate(files):
        body += enc.file_start(index=i, name=f"{i:06d}.int8", size=len(data), dtype="int8",
                               byteorder="little", offset=0.0)  # fmt: skip
        body += enc.data(data) + enc.file_end(hashlib.sha256(data).hexdigest())
    body += enc.end()
    head = (
        "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.wirelab.stream; version=1\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


SCRIPT = [RecvUntil(b"\r\n\r\n"), Send(http_stream([b"abc", b"defg"]))]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["stream", *args])
    return result.exit_code, result.output


def test_cacert_trusts_the_servers_ca(tmp_path: Path) -> None:
    with ScriptedServer(script=SCRIPT, tls=True) as server:
        ca = tmp_path / "ca.pem"
        server.ca.cert_pem.write_to_path(str(ca))
        url = f"https://localhost:{server.port}"
        code, out = run("--url", url, "--cacert", str(ca), "--out", str(tmp_path / "o"),
                        "--json")  # fmt: skip
        server.join(5)
    assert code == 0, out
    assert json.loads(out.splitlines()[-1])["files"] == 2
    assert (tmp_path / "o" / "000001.int8").read_bytes() == b"defg"


def test_without_the_ca_the_certificate_is_refused(tmp_path: Path) -> None:
    # The server sees the client abort the handshake ("unknown ca"); join() waits for the
    # server to have handled it (leaving the block would stop it first) and raises it.
    with (
        pytest.raises(ScriptError, match="unknown ca"),
        ScriptedServer(script=[RecvUntil(b"\r\n\r\n")], tls=True) as server,
    ):
        code, out = run("--url", f"https://localhost:{server.port}", "--out", str(tmp_path / "o"))
        server.join(5)
    assert code == 4  # a network error
    assert "CERTIFICATE_VERIFY_FAILED" in out and len(out.strip().splitlines()) == 1


def test_insecure_accepts_a_bad_certificate(tmp_path: Path) -> None:
    with ScriptedServer(script=SCRIPT, tls=BadCert.EXPIRED) as server:
        code, out = run("--url", f"https://localhost:{server.port}", "--insecure",
                        "--out", str(tmp_path / "o"))  # fmt: skip
        server.join(5)
    assert code == 0, out


@pytest.mark.parametrize("args", [["--cacert", "CA", "--insecure"], ["--cacert", "CA"]])
def test_bad_tls_options_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    args = [str(ca) if a == "CA" else a for a in args]
    code, out = run("--url", "https://localhost:1", *args, "--out", str(tmp_path / "o"))
    assert code == 2, out
