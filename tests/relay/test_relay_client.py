"""The relay client (``wirelab.client.RelayClient``) against a live server: send, receive."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from wirelab import HTTPStatusError, IntegrityError, NetworkError, UsageError
from wirelab.client import RelayClient, SentFile
from wirelab.client._relay_receive import PART_SUFFIX
from wirelab.client._relay_send import FINAL_RANGE

from ._progress import StopAfter
from .conftest import Relay


def _file(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


@pytest.mark.distributed
def test_send_then_receive_round_trip(client: Callable[[str], RelayClient], tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = _file(tmp_path, "report.bin", data)
    [sent] = client("alice").send([src], to="bob", note="Q3", chunk_size=1024 * 1024)
    assert (sent.algorithm, sent.digest) == ("blake3", blake3(data).hexdigest())
    assert sent.sha256 is None  # BLAKE3 by default: no SHA-256 was computed
    assert sent.resumed_from == 0 and sent.file_url is not None

    bob = client("bob")
    [listed] = bob.inbox()
    assert (listed.name, listed.size, listed.digest, listed.note, listed.sender) == (
        "report.bin",
        len(data),
        sent.digest,
        "Q3",
        "alice",
    )
    [got] = bob.receive(tmp_path / "out")
    assert got.path == tmp_path / "out" / "report.bin"
    assert got.path.read_bytes() == data
    assert got.acknowledged
    assert bob.inbox() == []
    assert not list((tmp_path / "out").glob(f"*{PART_SUFFIX}"))
    assert not list((tmp_path / "state").glob("**/*.json"))  # a finished send forgets itself


def test_empty_and_unicode_named_files(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    for name, data in [("leer.txt", b""), ("résumé 📄.pdf", b"%PDF-1.7 tiny")]:
        client("alice").send([_file(tmp_path, name, data)], to="bob")
    got = client("bob").receive(tmp_path / "out", all_files=True)
    assert [(g.path.name, g.path.read_bytes()) for g in got] == [
        ("leer.txt", b""),
        ("résumé 📄.pdf", b"%PDF-1.7 tiny"),
    ]


def test_interrupted_send_resumes_on_the_next_call(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    data = os.urandom(6 * 1024 * 1024)
    src = _file(tmp_path, "big.bin", data)
    alice = client("alice")
    with pytest.raises(KeyboardInterrupt):  # like Ctrl-C in the middle of the second chunk
        alice.send(
            [src],
            to="bob",
            chunk_size=2 * 1024 * 1024,
            progress=StopAfter(3 << 20),
        )
    assert client("bob").inbox() == []  # nothing visible before the upload completes
    [sent] = alice.send([src], to="bob", chunk_size=2 * 1024 * 1024)
    assert sent.resumed_from >= 2 * 1024 * 1024  # at least the first PATCH was durable
    assert sent.digest == blake3(data).hexdigest()
    [got] = client("bob").receive(tmp_path / "out")
    assert got.path.read_bytes() == data


def test_a_default_send_goes_in_two_patches_the_second_with_the_digest(
    client: Callable[[str], RelayClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(FINAL_RANGE + 3 * 1024 * 1024 + 5)
    src = _file(tmp_path, "two.bin", data)
    alice = client("alice")
    patches: list[tuple[int, int, str | None]] = []
    real_send = alice._bulk.send

    def recording(method: str, url: str, headers: dict[str, str], body: Any, length: int) -> Any:
        patches.append((int(headers["Upload-Offset"]), length, headers.get("Wirelab-Digest")))
        return real_send(method, url, headers, body, length)

    monkeypatch.setattr(alice._bulk, "send", recording)
    [sent] = alice.send([src], to="bob")
    first, digest = len(data) - FINAL_RANGE, blake3(data).hexdigest()
    assert patches == [(0, first, None), (first, FINAL_RANGE, f"blake3={digest}")]
    assert sent.digest == digest
    [got] = client("bob").receive(tmp_path / "out")
    assert got.path.read_bytes() == data


@pytest.mark.parametrize("chunk_size", [4 * 1024 * 1024, None])
def test_a_broken_connection_is_retried_within_the_call(
    client: Callable[[str], RelayClient], tmp_path: Path, chunk_size: int | None
) -> None:
    data = os.urandom(20 * 1024 * 1024)
    src = _file(tmp_path, "flaky.bin", data)
    alice = client("alice")

    class CutOnce(StopAfter):
        cut = False

        def hit(self) -> None:
            if not self.cut:
                self.cut = True
                # A real network failure: shut the socket under the running PATCH.
                conn = alice._bulk._conn
                assert conn is not None and conn.sock is not None
                conn.sock.shutdown(2)

    [sent] = alice.send([src], to="bob", chunk_size=chunk_size, progress=CutOnce(1 << 20))
    assert sent.resumed_from == 0
    [got] = client("bob").receive(tmp_path / "out")
    assert hashlib.sha256(got.path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_changed_file_is_not_resumed(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    src = _file(tmp_path, "doc.txt", os.urandom(3 * 1024 * 1024))
    alice = client("alice")
    with pytest.raises(KeyboardInterrupt):
        alice.send([src], to="bob", chunk_size=1 << 20, progress=StopAfter(2 << 20))
    new = os.urandom(3 * 1024 * 1024)
    src.write_bytes(new)
    os.utime(src, ns=(1, 1))  # a different mtime even on a coarse clock
    [sent] = alice.send([src], to="bob")
    assert sent.resumed_from == 0
    [got] = client("bob").receive(tmp_path / "out")
    assert got.path.read_bytes() == new


@pytest.mark.distributed
def test_interrupted_download_resumes_from_the_partial_file(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    data = os.urandom(4 * 1024 * 1024 + 5)
    client("alice").send([_file(tmp_path, "movie.bin", data)], to="bob")
    bob = client("bob")
    out = tmp_path / "out"
    file = bob.next()
    assert file is not None
    with pytest.raises(KeyboardInterrupt):
        bob.download(file, out, progress=StopAfter(1 << 20))
    [part] = out.glob(f"*{PART_SUFFIX}")
    kept = part.stat().st_size
    assert 0 < kept < len(data) and not (out / "movie.bin").exists()
    got = bob.download(file, out)
    assert got.resumed_from == kept
    assert got.path.read_bytes() == data
    assert not part.exists()


def test_corrupt_partial_download_is_discarded_and_not_acknowledged(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    data = os.urandom(2 * 1024 * 1024)
    client("alice").send([_file(tmp_path, "x.bin", data)], to="bob")
    bob = client("bob")
    [file] = bob.inbox()
    out = tmp_path / "out"
    out.mkdir()
    (out / f".{file.id}{PART_SUFFIX}").write_bytes(b"\0" * 1000)  # not the file's bytes
    with pytest.raises(IntegrityError, match="do not match the BLAKE3"):
        bob.receive(out, lease=0.5)
    assert not (out / "x.bin").exists()
    assert not list(out.glob(f"*{PART_SUFFIX}"))
    assert [f.id for f in bob.inbox()] == [file.id]  # still there: not acknowledged
    [got] = bob.receive(out, wait=20)  # offered again once the lease ended
    assert got.path.read_bytes() == data
    assert got.file.deliveries == 2


def test_existing_file_is_never_overwritten_without_overwrite(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_bytes(b"mine")
    client("alice").send([_file(tmp_path, "a.txt", b"theirs")], to="bob")
    bob = client("bob")
    with pytest.raises(UsageError, match="exists with other content; keep both"):
        bob.receive(out, lease=0.5)
    assert (out / "a.txt").read_bytes() == b"mine"
    [file] = bob.inbox()  # not acknowledged
    got = bob.download(file, out, overwrite=True)
    assert got.path.read_bytes() == b"theirs"


def test_hostile_names_stay_inside_the_folder(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    src = _file(tmp_path, "plain", b"payload")
    alice = client("alice")
    # The CLI sends the base name; a custom client may send anything: use the raw API.
    for name in ["../../escape.txt", "..", "a/b\\c", "CON", "\u202eexe.txt"]:
        alice._http.post(
            "/v1/relay/files",
            params={"to": "bob", "name": name},
            content=src.read_bytes(),
            headers={"Wirelab-Sha256": hashlib.sha256(b"payload").hexdigest()},
        ).raise_for_status()
    out = tmp_path / "deep" / "out"
    got = client("bob").receive(out, all_files=True)
    assert len(got) == 5
    for g in got:
        assert g.path.parent == out and g.path.read_bytes() == b"payload"
    assert sorted(p.name for p in out.iterdir()) == sorted(g.path.name for g in got)
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.distributed
def test_long_poll_receives_a_file_sent_while_waiting(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    bob = client("bob")
    result: list[object] = []
    waiting = threading.Thread(target=lambda: result.extend(bob.receive(tmp_path / "out", wait=20)))
    waiting.start()
    client("alice").send([_file(tmp_path, "late.txt", b"finally")], to="bob")
    waiting.join(30)
    assert not waiting.is_alive()
    assert [(r.path.name, r.path.read_bytes()) for r in result] == [("late.txt", b"finally")]  # type: ignore[attr-defined]


def test_errors_name_the_problem(client: Callable[[str], RelayClient], tmp_path: Path) -> None:
    alice = client("alice")
    with pytest.raises(HTTPStatusError, match="no user named 'nobody'") as info:
        alice.send([_file(tmp_path, "f", b"x")], to="nobody")
    assert info.value.status_code == 404
    with pytest.raises(UsageError, match=r"cannot send .*missing"):
        alice.send([tmp_path / "missing"], to="bob")
    with pytest.raises(UsageError, match="not a regular file"):
        alice.send([tmp_path], to="bob")


def test_wrong_token_and_unreachable_server(relay: Relay, tmp_path: Path) -> None:
    with RelayClient(relay.server.url, token="wl_wrong", state_dir=tmp_path) as c:
        with pytest.raises(HTTPStatusError) as info:
            c.inbox()
        assert info.value.status_code == 401
    with RelayClient("http://127.0.0.1:9", token="wl_x", state_dir=tmp_path) as c:
        with pytest.raises(NetworkError):
            c.inbox()
        with pytest.raises(NetworkError):
            c.send([_file(tmp_path, "f", b"x")], to="bob")


def test_sent_file_result_is_typed(client: Callable[[str], RelayClient], tmp_path: Path) -> None:
    [sent] = client("alice").send([_file(tmp_path, "t", b"abc")], to="bob")
    assert isinstance(sent, SentFile) and sent.size == 3 and sent.name == "t"
