"""Shared fixtures.

- Every test runs with HOME, XDG_* pointed at its own temporary folder and no inherited
  WIRELAB_* variable (:func:`isolated_home`, autouse); the run fails if the real user's
  wirelab folders changed (:func:`user_files_untouched`).
- Two tiers of servers: ``server``/``server_factory``, a real server on 127.0.0.1 port 0
  in a thread of the test process (real sockets, real uvicorn); and ``app_client``, the
  ASGI app in-process through httpx's ``ASGITransport`` (no socket, no thread: for the
  many tests that only look at responses).
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from _server_setup import (  # the folder of this file is on sys.path (pyproject: pythonpath)
    CHOICES,
    DISTRIBUTED,
    EMBEDDED,
    FUNCTIONAL_SUITES,
    SUBSET,
    ServerSetup,
    configs_for,
)
from wirelab.server import ServerConfig, create_app
from wirelab.testing._live import LiveServer, live_server
from wirelab.testing._s3server import S3Server, aws_env, moto_server, rclone_server

# --- the user's files: never touched -----------------------------------------------------

_XDG = {
    "XDG_DATA_HOME": ".local/share",
    "XDG_CONFIG_HOME": ".config",
    "XDG_STATE_HOME": ".local/state",
    "XDG_CACHE_HOME": ".cache",
}


def _point_home_at(mp: pytest.MonkeyPatch, home: Path) -> None:
    """HOME and the XDG base folders inside ``home``; no WIRELAB_* variable at all.

    Subprocesses started by tests inherit this environment.
    """
    for name in list(os.environ):
        if name.startswith("WIRELAB_"):
            mp.delenv(name)
    mp.setenv("HOME", str(home))
    for name, relative in _XDG.items():
        mp.setenv(name, str(home / relative))


def _wirelab_folders(env: Mapping[str, str]) -> list[Path]:
    """The real user's wirelab folders, as the code's defaults would find them."""
    home = Path(env.get("HOME") or Path.home())
    return sorted(
        {Path(env.get(name) or home / relative) / "wirelab" for name, relative in _XDG.items()}
    )


def _snapshot(folders: list[Path]) -> dict[str, tuple[int, int]]:
    """Every entry under ``folders``: (size, mtime in ns); absent folders list nothing."""
    found: dict[str, tuple[int, int]] = {}
    for folder in folders:
        if folder.exists():
            for path in [folder, *folder.rglob("*")]:
                st = path.lstat()
                found[str(path)] = (st.st_size, st.st_mtime_ns)
    return found


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# Audit events that change the file system: {event: indexes of the paths changed}.
_CHANGES = {
    "os.mkdir": (0,), "os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1),
    "os.link": (1,), "os.symlink": (1,), "os.truncate": (0,), "os.chmod": (0,),
    "os.utime": (0,), "shutil.rmtree": (0,), "shutil.copyfile": (1,),
    "sqlite3.connect": (0,),
}  # fmt: skip


class _WriteWatch:
    """An audit hook: what this process writes under the user's real home, outside the
    folders a test run may write to (temporary ones, the project's, the environment's).

    Subprocesses are not seen here: they inherit the isolated environment instead.
    """

    def __init__(self, home: Path, allowed: list[Path]) -> None:
        self.home = os.path.join(home, "")
        self.allowed = [os.path.join(a, "") for a in allowed]
        self.seen: list[str] = []
        self.active = True

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "open":
            mode, flags = args[1], args[2]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            indexes: tuple[int, ...] = (0,) if writes else ()
        else:
            indexes = _CHANGES.get(event, ())
        for i in indexes:
            if isinstance(args[i], str | bytes | os.PathLike):
                path = os.path.join(os.path.abspath(os.fsdecode(args[i])), "")
                if path.startswith(self.home) and not path.startswith(tuple(self.allowed)):
                    self.seen.append(f"{event} {path.rstrip(os.sep)}")


_WATCH: list[_WriteWatch] = []


def _start_watch(config: pytest.Config, basetemp: Path) -> None:
    home = Path(os.environ.get("HOME") or Path.home()).resolve()
    if home == Path(home.anchor) or not home.is_dir():
        return  # no real home to protect (HOME=/ in some containers)
    allowed = [Path(tempfile.gettempdir()), basetemp, Path(sys.prefix)]
    if config.rootpath.resolve() != home:  # a checkout inside the home: its own files
        allowed.append(config.rootpath)
    watch = _WriteWatch(home, [a.resolve() for a in allowed])
    sys.addaudithook(watch)
    _WATCH.append(watch)


@pytest.fixture(scope="session", autouse=True)
def user_files_untouched(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[None]:
    """Fail a test as soon as the test process wrote under the user's real home (an audit
    hook: see :func:`isolated_home`); and check that the user's wirelab folders did not
    change during the run (a snapshot compared at the end, so writes by subprocesses are
    seen too): under CI (``CI`` set) a change fails the run, elsewhere it is reported in
    the terminal summary, since other processes of the machine may write there.

    The environment of the whole session (session and module fixtures included) is
    isolated too; each test then gets its own home from :func:`isolated_home`.
    """
    folders = _wirelab_folders(os.environ)
    before = _snapshot(folders)
    if not _WATCH:
        _start_watch(pytestconfig, tmp_path_factory.getbasetemp())
    with pytest.MonkeyPatch.context() as mp:
        _point_home_at(mp, tmp_path_factory.mktemp("session-home"))
        yield
    for watch in _WATCH:
        watch.active = False
    after = _snapshot(folders)
    if after != before:
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        message = "THE USER'S WIRELAB FOLDERS CHANGED DURING THE TEST RUN: " + ", ".join(
            changed[:20]
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        # On a developer's machine another process (another checkout's tests, a server)
        # may have written them; the audit hook already failed any test of this run that
        # did. So: loud, but not a failure.
        _SUMMARY.append(message + " (not failed outside CI: another process may have)")


_SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show what :func:`user_files_untouched` found (fixture output is captured)."""
    for line in _SUMMARY:
        terminalreporter.write_line(line, red=True, bold=True)


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """This test's HOME (XDG_* folders inside it, no WIRELAB_* variable); see the module
    doc. The test fails if the test process wrote under the user's real home."""
    home = tmp_path_factory.mktemp("home")
    _point_home_at(monkeypatch, home)
    seen = [len(w.seen) for w in _WATCH]
    yield home
    written = [entry for w, n in zip(_WATCH, seen, strict=True) for entry in w.seen[n:]]
    if written:
        pytest.fail(
            "THE TEST WROTE OUTSIDE ITS TEMPORARY FOLDERS, into the user's home: "
            + ", ".join(written[:20]),
            pytrace=False,
        )


# --- the machine's services (PostgreSQL, Redis) -----------------------------------------

REQUIRE_SERVICES = os.environ.get("WIRELAB_REQUIRE_SERVICES") == "1"
"""Read at import, before :func:`isolated_home` removes every ``WIRELAB_*`` variable:
with ``WIRELAB_REQUIRE_SERVICES=1`` (set by ``.ci/run``) a missing service fails the tests
that need it instead of skipping them."""

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
TEST_CONFIG = os.environ.get("WIRELAB_TEST_CONFIG", SUBSET)
"""The default of ``--server-config`` (see :func:`pytest_generate_tests`)."""
TEST_STORAGE = os.environ.get("WIRELAB_TEST_STORAGE", "local")
"""``s3`` runs every server of the tests on S3 storage (moto in server mode, a bucket per
server; see :func:`server_storage_url`) instead of the data folder."""


def need_service(name: str, port: int, how: str) -> None:
    """Skip the calling test (fail it under ``WIRELAB_REQUIRE_SERVICES=1``) unless ``name``
    accepts TCP connections on 127.0.0.1:``port``; ``how`` says what to start."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError as exc:
        reason = f"{name} is not reachable on 127.0.0.1:{port} ({exc}): {how}"
        if REQUIRE_SERVICES:
            pytest.fail(reason + " (WIRELAB_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The machine's PostgreSQL, as the superuser ``postgres`` (trust auth); tests create
    their own databases through it and drop them afterwards."""
    need_service("PostgreSQL", 5432, "start PostgreSQL with trust auth for user postgres")
    return POSTGRES_ADMIN_URL


def _postgres_admin(admin_url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _postgres_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


def _new_postgres(admin_url: str, template: str | None, made: list[str]) -> str:
    """Create a database (a copy of ``template``, or empty), note its name in ``made``
    (to drop), return its URL."""
    name = f"wirelab_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    _postgres_admin(admin_url, f'CREATE DATABASE "{name}"{copy}')
    made.append(name)
    return _postgres_url(admin_url, name)


def _drop_postgres(admin_url: str, made: list[str]) -> None:
    _postgres_admin(admin_url, *(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in made))


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> Iterator[str]:
    """The name of a database migrated to the current schema once per run, to copy from
    (``CREATE DATABASE ... TEMPLATE``: much faster than migrating each test's database)."""
    import psycopg

    from wirelab.db._pg_schema import migrate

    name = f"wirelab_tpl_{uuid.uuid4().hex[:12]}"
    _postgres_admin(postgres_admin_url, f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(_postgres_url(postgres_admin_url, name), autocommit=True) as conn:
            migrate(conn)
        yield name
    finally:
        _postgres_admin(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_factory(
    postgres_admin_url: str, postgres_template: str
) -> Iterator[Callable[..., str]]:
    """``make(migrated=True)``: the URL of a new database of this test only (with the
    current schema, or empty), dropped after the test."""
    made: list[str] = []

    def make(migrated: bool = True) -> str:
        return _new_postgres(postgres_admin_url, postgres_template if migrated else None, made)

    yield make
    _drop_postgres(postgres_admin_url, made)


@pytest.fixture(scope="session")
def postgres_databases(
    postgres_admin_url: str, postgres_template: str
) -> Iterator[Callable[[], str]]:
    """``make()``: the URL of a new PostgreSQL database with the current schema, dropped
    at the end of the run (one per server the tests start)."""
    made: list[str] = []
    yield lambda: _new_postgres(postgres_admin_url, postgres_template, made)
    _drop_postgres(postgres_admin_url, made)


@pytest.fixture(scope="session")
def server_database(request: pytest.FixtureRequest) -> Callable[[], str | None]:
    """``make()``: the ``database_url`` of the embedded configuration's servers: ``None``
    (SQLite in its data folder, the default) or, with ``--server-database postgresql``, a
    new PostgreSQL database (:func:`postgres_databases`)."""
    if request.config.getoption("--server-database") == "sqlite":
        return lambda: None
    make: Callable[[], str] = request.getfixturevalue("postgres_databases")
    return make


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis; tests keep their keys under their own prefix (see
    :func:`redis_prefix`) and delete them afterwards."""
    need_service("Redis", 6379, "start redis-server on 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test (or test run) uses."""
    return f"wirelab-test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_scratch(redis_url: str, redis_prefix: str) -> Iterator[tuple[str, str]]:
    """``(redis_url, redis_prefix)``; every key under the prefix is deleted after the test."""
    yield redis_url, redis_prefix
    import redis

    client: Any = redis.Redis.from_url(redis_url)
    with client:
        keys = list(client.scan_iter(match=redis_prefix + "*"))
        if keys:
            client.delete(*keys)


# --- the server configuration: embedded or distributed ----------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--server-config",
        choices=CHOICES,
        default=TEST_CONFIG,
        help="configurations the relay and media tests run on: 'subset' (default: all on "
        "embedded, those marked 'distributed' on distributed too), 'embedded', "
        "'distributed' or 'both' (env WIRELAB_TEST_CONFIG)",
    )
    parser.addoption(
        "--server-database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="metadata store of the embedded configuration's servers",
    )


def _in_functional_suite(path: Path) -> bool:
    tests = Path(__file__).parent
    return path.is_relative_to(tests) and path.relative_to(tests).parts[0] in FUNCTIONAL_SUITES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the relay and media tests that start servers on the configurations chosen by
    ``--server-config`` (ids ``[embedded]``, ``[distributed]``); a test that runs on
    ``embedded`` alone keeps its plain id."""
    if "server_setup" not in metafunc.fixturenames:
        return
    if not _in_functional_suite(Path(metafunc.definition.path)):
        return
    marked = metafunc.definition.get_closest_marker("distributed") is not None
    configs = configs_for(metafunc.config.getoption("--server-config"), marked)
    if configs != [EMBEDDED]:
        metafunc.parametrize("server_setup", configs, indirect=True, scope="module")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the ``distributed`` cases that cannot mean anything there.

    On ``distributed`` the media jobs run on Celery: the ``runner=embedded`` case of a test
    parametrized over both runners would repeat its ``runner=celery`` case. Its blobs are
    on S3, where live pass-through is not offered (docs/server.md): the ``live_reads``
    tests' case would only skip, and test_relay_s3.py checks the 501 that says so.
    """
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        distributed = params.get("server_setup") == DISTRIBUTED
        repeat = distributed and params.get("runner") == EMBEDDED
        no_live = distributed and item.get_closest_marker("live_reads") is not None
        (dropped if repeat or no_live else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="module")
def server_setup(request: pytest.FixtureRequest) -> Iterator[ServerSetup]:
    """The configuration of the servers this test starts (:mod:`_server_setup`):
    ``embedded`` unless :func:`pytest_generate_tests` chose ``distributed``, which needs
    PostgreSQL, Redis and moto (skipped with what to start, or failed under
    ``WIRELAB_REQUIRE_SERVICES=1``, when one is missing)."""
    name = getattr(request, "param", EMBEDDED)
    if name == EMBEDDED:
        yield ServerSetup(
            EMBEDDED,
            database=request.getfixturevalue("server_database"),
            storage=request.getfixturevalue("server_storage_url"),
            on_s3=TEST_STORAGE == "s3",
        )
        return
    setup = ServerSetup(
        DISTRIBUTED,
        database=request.getfixturevalue("postgres_databases"),
        storage=request.getfixturevalue("s3_buckets"),
        on_s3=True,
        redis_url=request.getfixturevalue("redis_url"),
    )
    try:
        yield setup
    finally:
        setup.delete_redis_keys()


# --- servers -----------------------------------------------------------------------------


@pytest.fixture
def server_factory(
    tmp_path_factory: pytest.TempPathFactory, server_setup: ServerSetup
) -> Iterator[Callable[..., LiveServer]]:
    """Start servers with custom settings: ``server_factory(stream_limits=...)``, in the
    configuration :func:`server_setup` selects.

    Every server started is stopped at teardown. Each gets its own data folder (unless
    ``data_dir=`` is given: then the folder's state, its SQLite store included, is the
    test's, and only the storage of the configuration applies), outside
    the test's ``tmp_path`` so that a test's own files are never mixed with the server's.
    """
    with ExitStack() as stack:

        def make(**settings: Any) -> LiveServer:
            if "data_dir" in settings:
                settings.setdefault("storage_url", server_setup.new_server()["storage_url"])
            else:
                settings["data_dir"] = tmp_path_factory.mktemp("server-data")
                for name, value in server_setup.new_server().items():
                    settings.setdefault(name, value)
            config = ServerConfig(**settings)
            return stack.enter_context(live_server(config))

        yield make


@pytest.fixture
def server(server_factory: Callable[..., LiveServer]) -> LiveServer:
    """A server with default settings."""
    return server_factory()


@asynccontextmanager
async def in_process_client(config: ServerConfig) -> AsyncIterator[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` that calls the app in-process (``ASGITransport``).

    ``ASGITransport`` sends no lifespan events, so the app's lifespan (data folder,
    database, relay service, sweeper) is entered here around the client; responses are
    read whole, so endless or paced streams need the real server.
    """
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wirelab.test") as c:
            yield c


@pytest_asyncio.fixture
async def app_client(
    tmp_path_factory: pytest.TempPathFactory, server_setup: ServerSetup
) -> AsyncIterator[httpx.AsyncClient]:
    """The in-process tier: the app with default settings and its own data folder, no
    socket (see :func:`in_process_client`), in the configuration :func:`server_setup`
    selects. Tests using it are ``async`` and marked ``pytest.mark.asyncio``."""
    config = ServerConfig(
        data_dir=tmp_path_factory.mktemp("server-data"), **server_setup.new_server()
    )
    async with in_process_client(config) as client:
        yield client


def _open_fds() -> set[int] | None:
    try:
        return {int(fd) for fd in os.listdir("/proc/self/fd")}
    except FileNotFoundError:  # not Linux: the ResourceWarning check still applies
        return None


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """The test must leave no thread running and no descriptor open (use it with
    ``@pytest.mark.usefixtures("no_leaks")`` or a module's ``pytestmark``)."""
    threads = set(threading.enumerate())
    fds = _open_fds()
    yield
    gc.collect()  # an unclosed socket warns now, inside this test
    assert set(threading.enumerate()) - threads == set()
    after = _open_fds()
    if fds is not None and after is not None:
        assert after - fds == set()


# --- S3 servers (subprocesses from PyPI packages, no Docker) ------------------------------


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 in server mode (a subprocess), one per session."""
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="session")
def rclone_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """``rclone serve s3`` (checks signatures and presigned URL expiry), one per session."""
    with rclone_server(tmp_path_factory.mktemp("rclone")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_buckets(
    moto_s3: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], str]]:
    """``make()``: the storage URL of a new bucket on the session's moto server; the AWS_*
    variables of the run (inherited by server and worker processes) point at moto."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in aws_env(moto_s3, tmp_path_factory.mktemp("aws")).items():
            mp.setenv(name, value) if value is not None else mp.delenv(name, raising=False)
        yield lambda: f"s3://{moto_s3.new_bucket()}/wirelab"


@pytest.fixture(scope="session")
def server_storage_url(request: pytest.FixtureRequest) -> Callable[[], str | None]:
    """The storage URL of the embedded configuration's servers: ``None`` (its data
    folder), or with ``WIRELAB_TEST_STORAGE=s3`` a new bucket (:func:`s3_buckets`)."""
    if TEST_STORAGE != "s3":
        return lambda: None
    make: Callable[[], str] = request.getfixturevalue("s3_buckets")
    return make
