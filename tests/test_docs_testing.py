"""Every example in docs/testing.md runs, so that the page cannot drift from the code.

The page is cut into fenced blocks. An HTML comment on the line before a block (blank
lines may come between) says what to do with it:

* none, on a ``python`` block: run it in a fresh namespace, in this process;
* ``<!-- pytester: passed=N failed=N errors=N [ini] -->``: it is a pytest test file; run it
  in a subprocess pytest session and check the outcomes (``ini``: with the settings of
  the last ``ini`` block before it);
* ``<!-- output -->``, on a ``text`` block: what the block before it prints (a plain
  example: its whole output; a pytest file: lines of the session's output, in order);
* ``<!-- not-run -->``: shown only.

Outputs are compared after replacing what changes from run to run: ports and the time
offsets of transcripts.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import wirelab.testing
from wirelab.testing import FAULTS

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"

INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

# Plugins the inner sessions do not need (they only cost start-up time).
INNER_ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio")

_FENCE = re.compile(r"^```(\w*)\s*$")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$")
_MARKER = re.compile(r"^<!--\s*(.*?)\s*-->$")
_OUTCOMES = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")


@dataclass
class Block:
    """One fenced block of the page."""

    number: int  # 1-based, counting fenced blocks
    lang: str
    code: str
    fence_line: int  # 1-based line of the opening fence
    heading: str
    marker: str = ""
    output: str | None = None  # the expected output, from an "output" block after it
    ini: str = ""  # settings for a pytester block marked "ini"
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        if self.lang != "python" or self.marker == "not-run":
            return "shown"
        return "pytester" if self.marker.startswith("pytester:") else "run"

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{self.number:02d}-{slug}"


def parse(text: str) -> list[Block]:
    """The fenced blocks of ``text``, with their markers applied."""
    blocks: list[Block] = []
    lines = text.splitlines()
    heading = "top"
    marker = ""
    last_ini = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if (found := _HEADING.match(line)) is not None:
            heading, marker = found.group(1), ""
        elif (found := _MARKER.match(line)) is not None:
            marker = found.group(1)
        elif (found := _FENCE.match(line)) is not None:
            end = index + 1
            while not lines[end].startswith("```"):
                end += 1
            code = "\n".join(lines[index + 1 : end]) + "\n"
            block = Block(len(blocks) + 1, found.group(1), code, index + 1, heading, marker)
            apply_marker(block, blocks, last_ini)
            if block.lang == "ini":
                last_ini = code
            blocks.append(block)
            marker = ""
            index = end
        elif line.strip():
            marker = ""  # a marker applies to the very next block only
        index += 1
    return blocks


def apply_marker(block: Block, before: list[Block], last_ini: str) -> None:
    marker = block.marker
    if marker in ("", "not-run"):
        return
    if marker == "output":
        if block.lang != "text" or not before or before[-1].kind == "shown":
            raise ValueError(f"line {block.fence_line}: an output block must follow an example")
        before[-1].output = block.code
        return
    if not marker.startswith("pytester:"):
        raise ValueError(f"line {block.fence_line}: unknown marker {marker!r}")
    for word in marker.removeprefix("pytester:").split():
        if word == "ini":
            if not last_ini:
                raise ValueError(f"line {block.fence_line}: no ini block before this one")
            block.ini = last_ini
            continue
        name, _, count = word.partition("=")
        if name not in _OUTCOMES or not count.isdigit():
            raise ValueError(f"line {block.fence_line}: bad outcome {word!r}")
        block.outcomes[name] = int(count)


BLOCKS = parse(DOC.read_text(encoding="utf-8"))
EXAMPLES = [b for b in BLOCKS if b.kind == "run"]
TEST_FILES = [b for b in BLOCKS if b.kind == "pytester"]


def normalize(text: str) -> str:
    """Replace what changes from run to run: ports, and time offsets in transcripts."""
    text = re.sub(r"127\.0\.0\.1(:|', )\d+", r"127.0.0.1\1<port>", text)
    return re.sub(r"\+\d+\.\d{3}s\b", "+<t>s", text)


@pytest.mark.parametrize("block", EXAMPLES, ids=[b.id for b in EXAMPLES])
@pytest.mark.usefixtures("no_leaks")
def test_example(block: Block) -> None:
    # Padded with blank lines, so that a traceback gives the example's line in the page.
    code = compile("\n" * block.fence_line + block.code, str(DOC), "exec")
    namespace = {"__name__": f"docs_testing_example_{block.number}"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code, namespace)
    namespace.clear()
    if block.output is not None:
        assert normalize(printed.getvalue()) == normalize(block.output)


@pytest.mark.parametrize("block", TEST_FILES, ids=[b.id for b in TEST_FILES])
def test_pytest_example(block: Block, pytester: pytest.Pytester) -> None:
    settings = [
        line
        for line in block.ini.splitlines()
        if line.strip() and not line.startswith(("[", "#", ";"))
    ]
    pytester.makeini(INI + "".join(f"{line}\n" for line in settings))
    pytester.makepyfile(test_example=block.code)
    result = pytester.runpytest_subprocess(*INNER_ARGS, timeout=60)
    result.assert_outcomes(**block.outcomes)
    if block.output is not None:
        assert_lines_in_order(block.output, result.outlines)


def assert_lines_in_order(expected: str, output: list[str]) -> None:
    """Each non-blank line of ``expected``, without pytest's ``_ - =`` rulers around it, is
    part of a line of ``output``, in order."""
    lines = iter(normalize(line) for line in output)
    for want in normalize(expected).splitlines():
        want = want.strip("_-= ")
        if want and not any(want in line for line in lines):
            pytest.fail(f"not in the output, in this order: {want!r}\n" + "\n".join(output))


def test_python_blocks_run_unless_marked() -> None:
    shown = [b for b in BLOCKS if b.lang == "python" and b.kind == "shown"]
    assert len(shown) <= 2, "mark blocks not-run sparingly: run them through pytester"
    assert len(EXAMPLES) >= 10
    assert len(TEST_FILES) >= 3
    assert all(b.outcomes for b in TEST_FILES)


def test_the_fault_table_lists_every_fault() -> None:
    section = DOC.read_text(encoding="utf-8").split("## Fault catalogue", 1)[1]
    section = section.split("\n## ", 1)[0]
    first_cells = {
        row.split("|")[1].strip() for row in section.splitlines() if row.startswith("| ")
    }
    assert {fault.name for fault in FAULTS} <= first_cells


def test_every_public_name_is_mentioned() -> None:
    text = DOC.read_text(encoding="utf-8")
    quoted = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)", text))
    assert set(wirelab.testing.__all__) - quoted == set()


def test_parse_rejects_unknown_markers() -> None:
    with pytest.raises(ValueError, match="unknown marker"):
        parse("<!-- run-me -->\n```python\npass\n```\n")
    with pytest.raises(ValueError, match="bad outcome"):
        parse("<!-- pytester: passed=x -->\n```python\npass\n```\n")
    (block,) = parse("<!-- not-run -->\n\n```python\npass\n```\n")
    assert block.kind == "shown"
