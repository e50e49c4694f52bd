"""Cost of the ``tcpserver`` pytest fixture per test: setup plus teardown.

Two test files are generated in a temporary directory: N trivial tests that request
``tcpserver`` (each reads ``tcpserver.service_port``, so a server really starts, listens,
runs its end-of-test checks and stops), and the same N tests without the fixture. pytest
runs each file in a fresh process, alternately, ``--repeat`` times; the fixture's cost per
test is the difference of the median wall times divided by N. Start-up, collection and
reporting are the same in both runs and cancel out. The target is at most 5 ms per test.

The temporary directory has its own ini file (``-p no:cacheprovider``, nothing else), so
the project's pytest settings do not apply; the wirelab plugin is loaded through its entry
point, as in a user's project.

Run: ``.venv/bin/python benchmarks/tcpserver_fixture.py [--tests 500] [--repeat 5] [--json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 5.0

INI = """\
[pytest]
addopts = -p no:cacheprovider
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def write_tests(directory: Path, count: int) -> tuple[Path, Path]:
    """Write ``test_with.py`` and ``test_without.py``, ``count`` tests each."""
    with_fixture = [
        f"def test_{i}(tcpserver):\n    assert tcpserver.service_port\n" for i in range(count)
    ]
    without = [f"def test_{i}():\n    assert {i + 1}\n" for i in range(count)]
    (directory / "pytest.ini").write_text(INI)
    with_path = directory / "test_with.py"
    without_path = directory / "test_without.py"
    with_path.write_text("\n\n".join(with_fixture))
    without_path.write_text("\n\n".join(without))
    return with_path, without_path


def run_pytest(test_file: Path, count: int) -> float:
    """Wall time of one pytest process on ``test_file``; checks that all tests passed."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", str(test_file)],
        cwd=test_file.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or f"{count} passed" not in done.stdout:
        raise SystemExit(f"pytest failed on {test_file.name}:\n{done.stdout}\n{done.stderr}")
    return elapsed


def measure(count: int, repeat: int) -> dict[str, float | int | list[float]]:
    with tempfile.TemporaryDirectory(prefix="tcpserver-bench-") as tmp:
        with_path, without_path = write_tests(Path(tmp), count)
        run_pytest(without_path, count)  # warm the OS caches and the bytecode caches
        run_pytest(with_path, count)
        with_times: list[float] = []
        without_times: list[float] = []
        for _ in range(repeat):
            without_times.append(run_pytest(without_path, count))
            with_times.append(run_pytest(with_path, count))
    with_median = statistics.median(with_times)
    without_median = statistics.median(without_times)
    return {
        "tests": count,
        "repeat": repeat,
        "with_fixture_s": with_times,
        "without_fixture_s": without_times,
        "with_median_s": with_median,
        "without_median_s": without_median,
        "fixture_ms_per_test": (with_median - without_median) / count * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=500, help="tests per file (500)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each file (5)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.tests < 1 or args.repeat < 1:
        parser.error("--tests and --repeat must be at least 1")
    result = measure(args.tests, args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        per_test = float(result["fixture_ms_per_test"])  # type: ignore[arg-type]
        print(f"{args.tests} tests, {args.repeat} runs each (median wall time of a pytest run)")
        print(f"  without the fixture: {result['without_median_s']:.3f} s")
        print(f"  with tcpserver:      {result['with_median_s']:.3f} s")
        verdict = "ok" if per_test <= TARGET_MS else "OVER TARGET"
        print(f"  tcpserver fixture:   {per_test:.2f} ms per test "
              f"(target <= {TARGET_MS:g} ms: {verdict})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
