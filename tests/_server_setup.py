"""The two server configurations the relay and media functional suites run against.

- ``embedded``: SQLite in the server's data folder, blobs in that folder, media jobs in
  the server's process, no coordination (one process). ``--server-database postgresql``
  and ``WIRELAB_TEST_STORAGE=s3`` still swap its database or its storage alone.
- ``distributed``: a PostgreSQL database of its own per server (copied from the run's
  migrated template), a bucket of its own per server on a moto S3 server, media jobs on
  Celery through Redis (the media tests start a real ``wirelab worker`` per server), and
  Redis coordination under a key prefix of its own per server.

Which tests run on which: ``--server-config`` / ``WIRELAB_TEST_CONFIG`` (see
``docs/testing.md``); the fixtures are in ``tests/conftest.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EMBEDDED = "embedded"
DISTRIBUTED = "distributed"
CONFIGS = (EMBEDDED, DISTRIBUTED)

SUBSET = "subset"
"""``--server-config subset`` (the default): every relay and media test on ``embedded``,
the tests marked ``distributed`` (a few per module) on ``distributed`` too."""
BOTH = "both"
"""``--server-config both``: every relay and media test on both configurations."""
CHOICES = (SUBSET, EMBEDDED, DISTRIBUTED, BOTH)

FUNCTIONAL_SUITES = ("relay", "media")
"""The test folders whose tests run on the configurations chosen (the others: embedded)."""

DISTRIBUTED_POOL_SIZE = 4
"""PostgreSQL connections per distributed test server: many servers of a run are open at
once on the machine's PostgreSQL (default ``max_connections`` 100), and it exercises the
setting."""


def stored_files(config: Any, under: str) -> list[str]:
    """What a server configured by ``config`` (a ``ServerConfig``) stores under ``under``
    (``"relay/blobs"``, ``"media"``, ...), in its data folder or its S3 bucket alike (on S3
    ``.../blobs`` lists both forms of committed blob, pointers and files): the
    keys of the objects (unfinished S3 multipart uploads counted, as ``multipart:KEY``) or
    the paths of the files (a folder's disk reserve and digest files left out)."""
    from wirelab.storage._s3client import make_client, parse_s3_url

    if config.storage_url and config.storage_url.startswith("s3://"):
        location = parse_s3_url(config.storage_url)
        client = make_client()
        found: list[str] = []
        # A committed blob on S3 is a pointer under blobs/ or, for a direct send, one
        # object under files/ (wirelab.storage._s3state.Layout): "blobs" means both.
        names = [under, under[: -len("blobs")] + "files"] if under.endswith("blobs") else [under]
        for name in names:
            prefix = f"{location.prefix}{name}"
            listing = client.list_objects_v2(Bucket=location.bucket, Prefix=prefix)
            found += [str(item["Key"]) for item in listing.get("Contents", [])]
            uploads = client.list_multipart_uploads(Bucket=location.bucket, Prefix=prefix)
            found += [f"multipart:{u['Key']}" for u in uploads.get("Uploads", [])]
        return found
    root = config.data_dir / under
    return [
        str(p)
        for p in root.rglob("*")
        if p.is_file() and p.name != "reserve" and p.suffix != ".sha256"
    ]


def configs_for(choice: str, marked: bool) -> list[str]:
    """The configurations a relay or media test runs on for ``--server-config choice``;
    ``marked``: the test is in the representative subset (marker ``distributed``)."""
    if choice == SUBSET:
        return [EMBEDDED, DISTRIBUTED] if marked else [EMBEDDED]
    if choice == BOTH:
        return list(CONFIGS)
    return [choice]


@dataclass
class ServerSetup:
    """One configuration: :meth:`new_server` gives the ``ServerConfig`` settings of a new
    server (a database, a bucket, a coordination prefix and a jobs queue of its own, so
    that the servers of a test never share state unless the test makes them)."""

    name: str
    database: Callable[[], str | None] = lambda: None
    storage: Callable[[], str | None] = lambda: None
    on_s3: bool = False
    """Whether the servers keep their blobs on S3 (no live pass-through there)."""
    redis_url: str | None = None
    tokens: list[str] = field(default_factory=list)

    @property
    def distributed(self) -> bool:
        return self.name == DISTRIBUTED

    def new_server(self) -> dict[str, Any]:
        """``database_url``, ``storage_url`` and, when distributed, ``coordination_url``,
        ``jobs_url``, ``jobs_queue`` and ``database_pool_size`` of a new server."""
        settings: dict[str, Any] = {"database_url": self.database(), "storage_url": self.storage()}
        if self.redis_url is not None:
            token = f"wirelab-test-{uuid.uuid4().hex[:12]}"
            self.tokens.append(token)
            settings.update(
                coordination_url=f"{self.redis_url}?prefix={token}:",
                jobs_url=self.redis_url,
                jobs_queue=token,
                database_pool_size=DISTRIBUTED_POOL_SIZE,
            )
        return settings

    def delete_redis_keys(self) -> None:
        """Delete every Redis key of the servers made (coordination, Celery's queue and
        bindings: all of them contain the server's token)."""
        if self.redis_url is None or not self.tokens:
            return
        import redis

        client: Any = redis.Redis.from_url(self.redis_url)
        with client:
            for token in self.tokens:
                keys = list(client.scan_iter(match=f"*{token}*"))
                if keys:
                    client.delete(*keys)
        self.tokens.clear()
