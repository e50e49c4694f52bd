"""Media over HTTPS: ``wirelab media fetch --cacert`` against ``wirelab serve --tls-*``
(a throwaway CA), and the refusal without the CA."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from wirelab.cli import main
from wirelab.media import MediaSettings
from wirelab.media.testing import MediaServer, TestMedia
from wirelab.testing._live import LiveServer
from wirelab.testing._tls import write_tls_files

from .conftest import LOOPBACK, add_users


@pytest.mark.distributed
def test_fetch_over_https_with_cacert_and_refused_without(
    server_factory: Callable[..., LiveServer],
    source: MediaServer,
    test_media: TestMedia,
    tmp_path: Path,
) -> None:
    tls = write_tls_files(tmp_path / "tls")
    server = server_factory(
        media=MediaSettings(allow_network=LOOPBACK),
        tls_certfile=tls.cert,
        tls_keyfile=tls.key,
    )
    assert server.url.startswith("https://")
    env = {
        "WIRELAB_URL": server.url,
        "WIRELAB_TOKEN": add_users(server, "alice")["alice"],
        "WIRELAB_CONFIG": str(tmp_path / "none.json"),
        "WIRELAB_TOKEN_FILE": "",
    }
    out = tmp_path / "clip.mp4"
    args = ["media", "fetch", source.url(test_media.mp4), "--end", "2", "--accuracy", "fast",
            "--out", str(out), "--json"]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--cacert", str(tls.ca)], env=env)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and hashlib.sha256(out.read_bytes()).hexdigest() == doc["sha256"]

    refused = CliRunner().invoke(main, ["media", "jobs", "--json"], env=env)
    assert refused.exit_code == 4  # a network failure: the certificate is not trusted
    error = json.loads(refused.stdout)
    assert error["ok"] is False and "CERTIFICATE_VERIFY_FAILED" in error["error"]
