"""`wirelab serve` needs only wirelab[server]: the packages of the other extras (S3's
boto3, botocore and urllib3; PostgreSQL's psycopg; Redis; Celery) are imported only when
a setting selects them. A fresh `pip install 'wirelab[server]'` (the README's `make
serve`) has none of them, so importing one at module level breaks the quickstart."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A child interpreter in which importing any of these fails, as in an install without
# the extras (the test venv has them all).
_BLOCK = textwrap.dedent(
    """
    import sys
    BLOCKED = {"boto3", "botocore", "urllib3", "psycopg", "psycopg_pool", "redis", "celery"}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, Blocker())
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_server_imports_and_builds_its_app_without_the_other_extras(tmp_path: object) -> None:
    result = _run(
        f"""
        from wirelab.server import ServerConfig, create_app
        from wirelab.server._serve import run
        app = create_app(ServerConfig(data_dir={str(tmp_path)!r}))
        assert callable(app) and callable(run)
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_blocker_does_block() -> None:
    """The check above can fail: the blocked packages really are unimportable there."""
    result = _run("import urllib3")
    assert result.returncode != 0
    assert "No module named 'urllib3'" in result.stderr
