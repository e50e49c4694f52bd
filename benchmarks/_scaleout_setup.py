"""The configurations of ``scaleout.py``: the embedded one and the distributed one
(PostgreSQL, an S3 server, Redis coordination, Celery), their servers and workers, and
the CPU each process of the machine used.

Everything it creates is removed on the way out: the temporary PostgreSQL database is
dropped, the S3 server (and its folder) stopped, every Redis key under the run's prefix
deleted, every server and worker process stopped.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis
from _relay_procs import run_checked
from _util import HOST, WIRELAB_ENV, Server, free_port, proc_stats, tree_stats, venv_script

from wirelab.testing._s3server import S3Server, aws_env, moto_server, rclone_server

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
USERS = ("alice", "bob")


@dataclass
class Config:
    """One configuration: the environment of its servers and workers, its users' tokens."""

    name: str
    env: dict[str, str]  # WIRELAB_* (and AWS_*) settings added to this process's own
    data: Path  # the data folder (the embedded store; scratch for the distributed one)
    tokens: dict[str, str] = field(default_factory=dict)
    removed: tuple[str, ...] = ()  # variables removed from the environment (AWS_PROFILE...)

    def process_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in self.removed}
        return {**env, **self.env, **(extra or {})}


def wirelab_exe() -> str:
    exe = venv_script("wirelab")
    if exe is None:
        raise SystemExit("wirelab is not installed in this environment (pip install -e .)")
    return exe


def _add_users(config: Config) -> None:
    """``wirelab users add`` for alice and bob; their tokens into ``config.tokens``."""
    import json

    for name in USERS:
        argv = [wirelab_exe(), "users", "add", name, "--data-dir", str(config.data), "--json"]
        out = run_checked(argv, env=config.process_env(), timeout=60)
        config.tokens[name] = json.loads(out)["token"]


def embedded(root: Path) -> Config:
    """SQLite and the local folder store in ``root/embedded``, no coordination."""
    config = Config("embedded", {}, root / "embedded")
    config.data.mkdir(parents=True)
    _add_users(config)
    return config


@contextmanager
def _postgres_database() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped at the end; its URL."""
    name = f"wirelab_bench_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _redis_prefix(url: str) -> Iterator[str]:
    """A fresh key prefix; every key under it is deleted at the end."""
    prefix = f"wirelab-bench-{secrets.token_hex(6)}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@dataclass
class Distributed:
    """The distributed configuration and the pid of its S3 server."""

    config: Config
    s3_pid: int
    s3: S3Server
    bucket: str


def _child_pid(name: str) -> int:
    """The pid of this process's child whose command name starts with ``name``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) != os.getpid():
                continue
            if (
                Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").find(name.encode())
                >= 0
            ):
                return int(entry)
    raise RuntimeError(f"no child process {name}")


@contextmanager
def distributed(root: Path, s3: str, redis_url: str) -> Iterator[Distributed]:
    """PostgreSQL (a temporary database), an S3 server (``rclone`` or ``moto``, a
    bucket), Redis coordination and the Celery runner (keys under a fresh prefix)."""
    with ExitStack() as stack:
        database = stack.enter_context(_postgres_database())
        prefix = stack.enter_context(_redis_prefix(redis_url))
        s3_dir = root / "s3"
        s3_dir.mkdir()
        start = rclone_server if s3 == "rclone" else moto_server
        server: S3Server = stack.enter_context(start(s3_dir))
        s3_pid = _child_pid("rclone" if s3 == "rclone" else "moto.server")
        aws = aws_env(server, root)
        bucket = server.new_bucket()
        env = {
            "WIRELAB_DATABASE_URL": database,
            "WIRELAB_STORAGE_URL": f"s3://{bucket}/wirelab",
            "WIRELAB_COORDINATION_URL": f"{redis_url}?prefix={prefix}-coord:",
            "WIRELAB_JOBS_URL": redis_url,
            "WIRELAB_JOBS_QUEUE": prefix,
            **{k: v for k, v in aws.items() if v is not None},
        }
        removed = tuple(k for k, v in aws.items() if v is None)
        config = Config("distributed", env, root / "distributed", removed=removed)
        config.data.mkdir()
        run_checked(
            [wirelab_exe(), "db", "upgrade", "--data-dir", str(config.data)],
            env=config.process_env(),
            timeout=120,
        )
        _add_users(config)
        yield Distributed(config, s3_pid, server, bucket)


# ---------------------------------------------------------------------------------------
# servers and workers


def _wait_for_pids(url: str, count: int, timeout: float = 60) -> None:
    """Until ``count`` different server processes answered ``/healthz``."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(seen)} of {count} server processes answered")
        seen.add(httpx.get(url + "/healthz").json()["pid"])


@contextmanager
def serve(config: Config, workers: int, data: Path) -> Iterator[Server]:
    """``wirelab serve --workers N`` of ``config`` with the data folder ``data`` (created;
    its log there too), every process answering."""
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [wirelab_exe(), "serve", "--host", HOST, "--port", str(port), "--data-dir", str(data)]
    argv += ["--log-level", "warning"]
    extra = {**WIRELAB_ENV, "WIRELAB_WORKERS": str(workers)}
    extra["WIRELAB_MEDIA_ALLOW_NETWORK"] = "127.0.0.0/8"
    server = Server(
        f"wirelab-{config.name}-{workers}",
        argv,
        port,
        ready_path="/healthz",
        env=config.process_env(extra),
        log_path=data / "wirelab.log",
        start_timeout=60,
    )
    with server:
        _wait_for_pids(f"http://{HOST}:{port}", workers)
        yield server


@contextmanager
def worker(config: Config, data: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A ``wirelab worker`` (one media job at a time), ready (consuming) when entered."""
    argv = [wirelab_exe(), "worker", "--data-dir", str(data), "--media-workers", "1"]
    argv += ["--media-allow-network", "127.0.0.0/8", "--log-level", "info"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=config.process_env()
        )
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------
# where the CPU went


def _pids_named(names: tuple[str, ...]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip().startswith(names):
                    found.append(int(entry))
    return found


def _cpu(pids: list[int], *, tree: bool = True) -> float:
    """CPU seconds of ``pids`` (with their descendants when ``tree``)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += tree_stats(pid).cpu if tree else proc_stats(pid).cpu
    return total


class CpuShares:
    """CPU seconds of the wirelab server(s), the S3 server, PostgreSQL, Redis and this
    client process between :meth:`start` and :meth:`stop` (processes of other users of
    the machine's PostgreSQL and Redis are counted too: they are shared services)."""

    def __init__(self, server_pids: list[int], s3_pid: int | None) -> None:
        self.groups: dict[str, Callable[[], float]] = {
            "server": lambda: _cpu(server_pids),
            "s3": lambda: _cpu([s3_pid]) if s3_pid else 0.0,
            # every process of the service, alone: the postmaster's children are its backends
            "postgres": lambda: _cpu(_pids_named(("postgres", "postmaster")), tree=False),
            "redis": lambda: _cpu(_pids_named(("redis-server",)), tree=False),
            "client": lambda: _cpu([os.getpid()], tree=False),  # its children are servers
        }
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self.before = {k: f() for k, f in self.groups.items()}

    def stop(self) -> dict[str, float]:
        self.used = {k: f() - self.before[k] for k, f in self.groups.items()}
        return self.used


# ---------------------------------------------------------------------------------------
# the services alone


def _median_ms(func: Callable[[], object], count: int) -> float:
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 2)


def service_probes(dist: Distributed, size: int, count: int = 50) -> dict[str, float]:
    """Sequential round trips from this process, medians in ms: PostgreSQL ``SELECT 1``
    and a one-row INSERT + COMMIT (the commit's WAL flush) in the run's database, a
    ``size``-byte PUT and GET on the S3 server (boto3, as the server uses it)."""
    import boto3

    url = dist.config.env["WIRELAB_DATABASE_URL"]
    out: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_probe (n int)")
        out["pg_select_ms"] = _median_ms(lambda: conn.execute("SELECT 1").fetchone(), count)
        out["pg_insert_commit_ms"] = _median_ms(
            lambda: conn.execute("INSERT INTO bench_probe VALUES (1)"), count
        )
        conn.execute("DROP TABLE bench_probe")
    s3 = dist.s3
    client = boto3.session.Session().client(
        "s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key, region_name="us-east-1",
    )  # fmt: skip
    body = os.urandom(size)
    key = f"probe-{secrets.token_hex(4)}"
    put = functools.partial(client.put_object, Bucket=dist.bucket, Key=key, Body=body)
    out["s3_put_ms"] = _median_ms(put, count)
    out["s3_get_ms"] = _median_ms(
        lambda: client.get_object(Bucket=dist.bucket, Key=key)["Body"].read(), count
    )
    client.delete_object(Bucket=dist.bucket, Key=key)
    return out
