"""Receiving never strands a file: leases given back on failure, crash recovery, names
that exist, and sends that would deliver a second copy."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from wirelab import UsageError
from wirelab.client import DestinationExistsError, DuplicateError, RelayClient
from wirelab.client._relay_leases import LEASE_SUFFIX, LeaseMarker
from wirelab.client._relay_receive import PART_SUFFIX
from wirelab.crypto import generate_keypair, save_private_key

from ._progress import StopAfter
from .conftest import Relay

SHA_X = hashlib.sha256(b"x").hexdigest()


def _file(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# --- the server's API -------------------------------------------------------------------


def test_a_released_lease_is_offered_again_at_once(relay: Relay) -> None:
    relay.alice.post(
        "/v1/relay/files", params={"to": "bob", "name": "x"}, content=b"x",
        headers={"Wirelab-Sha256": SHA_X},
    ).raise_for_status()  # fmt: skip
    first = relay.bob.post("/v1/relay/inbox/next", params={"lease": 600}).json()
    assert relay.bob.post("/v1/relay/inbox/next").status_code == 204  # leased
    url = f"/v1/relay/files/{first['id']}/lease"
    assert relay.bob.delete(url, params={"lease_id": "someone-else"}).status_code == 204
    assert relay.bob.post("/v1/relay/inbox/next").status_code == 204  # not that lease
    assert relay.alice.delete(url).status_code == 404  # not alice's inbox
    assert relay.bob.delete(url, params={"lease_id": first["lease"]["id"]}).status_code == 204
    again = relay.bob.post("/v1/relay/inbox/next")
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert again.json()["deliveries"] == 2
    assert relay.bob.delete("/v1/relay/files/nope/lease").status_code == 404
    assert relay.bob.delete(url, headers={"Authorization": ""}).status_code == 401


def test_sent_lists_only_your_own_queued_copies(relay: Relay) -> None:
    relay.alice.post(
        "/v1/relay/files", params={"to": "bob", "name": "x"}, content=b"x",
        headers={"Wirelab-Sha256": SHA_X},
    ).raise_for_status()  # fmt: skip
    mine = relay.alice.get("/v1/relay/sent", params={"to": "bob", "sha256": SHA_X}).json()
    assert [f["name"] for f in mine["files"]] == ["x"]
    theirs = relay.carol.get("/v1/relay/sent", params={"to": "bob", "sha256": SHA_X}).json()
    assert theirs == {"files": []}
    bad = relay.alice.get("/v1/relay/sent", params={"to": "bob", "sha256": "zz"})
    assert bad.status_code == 422 and "sha256" in bad.text
    relay.bob.delete(f"/v1/relay/files/{mine['files'][0]['id']}").raise_for_status()
    gone = relay.alice.get("/v1/relay/sent", params={"to": "bob", "sha256": SHA_X}).json()
    assert gone == {"files": []}  # acknowledged: no longer queued


def test_me_names_the_user_and_quotas(relay: Relay) -> None:
    me = relay.carol.get("/v1/relay/me").json()
    assert me["name"] == "carol" and me["quota_bytes"] > 0 and me["quota_files"] > 0


# --- the client gives a failed file back ------------------------------------------------


@pytest.mark.distributed
def test_interrupted_receive_gives_the_file_back_and_resumes_at_once(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    data = os.urandom(5 * 1024 * 1024)
    client("alice").send([_file(tmp_path, "big.bin", data)], to="bob")
    bob, out = client("bob"), tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        bob.receive(out, lease=600, progress=StopAfter(2 * 1024 * 1024))
    assert bob.next(lease=1) is not None  # offered again now, not in 10 minutes
    bob.release(bob.inbox()[0].id)
    [got] = bob.receive(out)
    assert got.resumed_from >= 2 * 1024 * 1024 and got.acknowledged
    assert (out / "big.bin").read_bytes() == data
    assert not list(out.glob(f"*{LEASE_SUFFIX}")) and not list(out.glob(f"*{PART_SUFFIX}"))


@pytest.mark.parametrize("failure", ["not-a-folder", "missing-key", "disk-full"])
def test_every_failure_releases_the_lease(
    client: Callable[[str], RelayClient], tmp_path: Path, failure: str
) -> None:
    bob, alice = client("bob"), client("alice")
    progress = None
    out = tmp_path / "out"
    if failure == "missing-key":
        private, public = generate_keypair()
        save_private_key(bob.key_file, private)
        bob.publish_key(public)
        alice.send([_file(tmp_path, "s.txt", b"secret")], to="bob", encrypt=True)
        bob.key_file.unlink()
    else:
        alice.send([_file(tmp_path, "f.bin", os.urandom(300_000))], to="bob")
    if failure == "not-a-folder":
        out.write_text("a file where the folder should be")
    if failure == "disk-full":  # the error the file system raises when a write does not fit
        progress = StopAfter(1, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    with pytest.raises((OSError, UsageError)) as info:
        bob.receive(out, lease=600, progress=progress)
    if failure == "disk-full":
        message = str(info.value)
        assert "kept in the partial file" in message and "run the same command again" in message
        assert PART_SUFFIX in message  # it names the path
    assert bob.next(lease=1) is not None  # given back at once


def test_a_killed_run_leaves_a_marker_and_the_next_run_finishes_it(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    """A crash between the verified write and the acknowledgement: the next run gives the
    lease back, recognizes the file already written, acknowledges it, and succeeds."""
    client("alice").send([_file(tmp_path, "r.txt", b"report")], to="bob")
    bob, out = client("bob"), tmp_path / "out"
    file = bob.next(lease=600)
    assert file is not None
    LeaseMarker.of(out, file).save()  # what a run leaves before it downloads
    bob.download(file, out)  # written and verified; then the process "dies"
    [got] = bob.receive(out)  # no wait: the marker's lease is released first
    assert got.skipped and got.acknowledged and got.path == out / "r.txt"
    assert bob.inbox() == [] and not list(out.glob(f"*{LEASE_SUFFIX}"))


def test_names_that_exist_keep_both_or_stop_and_identical_files_are_not_rewritten(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    alice, bob, out = client("alice"), client("bob"), tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("local")
    (out / "same.txt").write_text("same bytes")
    for folder, name, data in [("1", "a.txt", b"first"), ("2", "a.txt", b"second"),
                               ("3", "same.txt", b"same bytes")]:  # fmt: skip
        (tmp_path / folder).mkdir()
        alice.send([_file(tmp_path / folder, name, data)], to="bob")
    with pytest.raises(DestinationExistsError):
        bob.receive(out, all_files=True)
    got = bob.receive(out, all_files=True, exists="rename")  # at once: the lease was released
    assert [(g.path.name, g.skipped) for g in got] == [
        ("a (1).txt", False),
        ("a (2).txt", False),
        ("same.txt", True),
    ]
    assert all(g.acknowledged for g in got) and bob.inbox() == []
    assert [(out / n).read_text() for n in ("a.txt", "a (1).txt", "a (2).txt")] == [
        "local",
        "first",
        "second",
    ]


# --- sending the same content twice -----------------------------------------------------


def test_a_second_identical_send_is_refused_until_asked_for(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    alice, bob = client("alice"), client("bob")
    src = _file(tmp_path, "r.pdf", os.urandom(10_000))
    alice.send([src], to="bob")
    copy = _file(tmp_path, "copy.pdf", src.read_bytes())  # same content, other name
    with pytest.raises(DuplicateError, match="still has an identical copy") as info:
        alice.send([copy], to="bob")
    assert [f.name for f in info.value.queued] == ["r.pdf"]
    assert [f.name for f in bob.inbox()] == ["r.pdf"]  # nothing delivered
    alice.send([copy], to="bob", allow_duplicates=True)  # resumes the unfinished upload
    assert [f.name for f in bob.inbox()] == ["r.pdf", "copy.pdf"]
    bob.receive(tmp_path / "out", all_files=True)
    alice.send([src], to="bob")  # received: no longer a duplicate
    assert client("carol").send([src], to="bob")  # another sender is not a duplicate
