"""README.md's command examples are real: each one is run and compared with the README text.

An example is a ```text block whose first line is a shell prompt, ``$ archlab ...``; the lines
after it, up to the next ``$`` line or the end of the block, are what the command prints.

* ``| head -N`` after the command keeps the first N lines of stdout; a trailing ``# comment``
  or a parenthesised remark after two or more spaces, ``(rows by kind)``, is not part of it.
* A line that is only ``...`` stands for any number of output lines; the other lines must then
  appear in the output in order, each run of lines between two ``...`` contiguous (doctest's
  ELLIPSIS, line by line). Without ``...`` the whole output must match exactly. Trailing
  whitespace of each line and trailing blank lines are ignored.
* An example whose output starts with ``archlab: error:`` is an error example: it must exit
  with code 2 and print exactly that one line on stderr (the README's error contract).
* A command that reads ``name.py:factory`` (or names ``name.py`` alone) runs in a temporary directory holding ``name.py``,
  written from the last ```python block before it whose first line is ``# name.py``; without
  such a block the example is skipped, with the reason.
* Commands starting with a prefix in SKIP are not run (the reason is given there).

Every example is one test case whose id is the command, so a failure names the stale block.
Commands run in-process through the ``cli`` fixture: ``archlab.cli.run`` (the console script)
is ``main()`` plus a flush and ``os._exit``, so stdout, stderr and the exit code are the same.
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from conftest import assert_one_line_error

README = Path(__file__).resolve().parents[1] / "README.md"

# Found when this file was written: 18 commands in 14 blocks. Fewer means the parser no longer
# understands the README, and the examples would silently go untested.
MIN_EXAMPLES = 18

SKIP = {
    "archlab latency": "measured timings: they differ on every run and every machine",
    "archlab calibrate": "a measured machine model: it differs on every run and every machine",
}

SLOW = ("--engine fvcore",)

# commands that write files where they run (reports/NAME.html): run in a temporary directory
WRITES = ("archlab report ",)  # a real forward under fvcore's JIT tracer: about 7 s for ResNet-50


@dataclass
class Example:
    line: int  # README line of the ``$`` prompt
    command: str  # the command without ``| head -N`` and trailing remarks
    argv: List[str]
    head: Optional[int]
    expected: List[str]
    files: Dict[str, str] = field(default_factory=dict)  # name.py -> source, from ```python blocks


def _fenced_blocks(text: str):
    """(language, line number of the first content line, content lines) of every fenced block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.fullmatch(r"```(\w*)\s*", lines[i])
        if opening:
            end = i + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            yield opening.group(1), i + 2, lines[i + 1:end]
            i = end
        i += 1


def _parse_command(prompt: str):
    command = re.sub(r"\s{2,}(#.*|\(.*\))$", "", prompt[2:].strip())
    piped = re.fullmatch(r"(.*?)\s*\|\s*head\s+-n?\s*(\d+)", command)
    head = int(piped.group(2)) if piped else None
    command = piped.group(1) if piped else command
    return command, shlex.split(command, comments=True), head


def parse_readme(text: str) -> List[Example]:
    examples: List[Example] = []
    files: Dict[str, str] = {}
    for language, first, lines in _fenced_blocks(text):
        if language == "python" and lines:
            named = re.fullmatch(r"#\s*(\S+\.py)\s*", lines[0])
            if named:
                files[named.group(1)] = "\n".join(lines) + "\n"
        if language != "text" or not lines or not lines[0].startswith("$ "):
            continue
        for offset, line in enumerate(lines):
            if line.startswith("$ "):
                command, argv, head = _parse_command(line)
                examples.append(Example(first + offset, command, argv, head, [], dict(files)))
            else:
                examples[-1].expected.append(line)
    return examples


def _normalize(lines: List[str]) -> List[str]:
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def output_matches(expected: List[str], actual: List[str]) -> bool:
    """Exact match, or doctest-style ELLIPSIS matching where a line ``...`` is any lines."""
    segments: List[List[str]] = [[]]
    for line in expected:
        if line.strip() == "...":
            segments.append([])
        else:
            segments[-1].append(line)
    if len(segments) == 1:
        return expected == actual
    first, *middle, last = segments
    if actual[:len(first)] != first:
        return False
    pos = len(first)
    for segment in middle:  # leftmost match: leaves the most room for what follows
        found = next((i for i in range(pos, len(actual) - len(segment) + 1)
                      if actual[i:i + len(segment)] == segment), None)
        if found is None:
            return False
        pos = found + len(segment)
    return len(actual) - len(last) >= pos and actual[len(actual) - len(last):] == last


EXAMPLES = parse_readme(README.read_text(encoding="utf-8"))


def test_readme_examples_are_found():
    assert len(EXAMPLES) >= MIN_EXAMPLES, [e.command for e in EXAMPLES]
    for prefix in SKIP:  # a skip reason that matches nothing is stale
        assert any(e.command.startswith(prefix) for e in EXAMPLES), prefix
    assert all(e.expected for e in EXAMPLES), "an example without output"


def _params():
    for example in EXAMPLES:
        slow = any(s in example.command for s in SLOW)
        yield pytest.param(example, id=example.command, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("example", list(_params()))
def test_readme_example(example: Example, cli, tmp_path, monkeypatch):
    for prefix, reason in SKIP.items():
        if example.command.startswith(prefix):
            pytest.skip(reason)
    assert example.argv[0] == "archlab" and "|" not in example.argv, f"cannot run: {example.command}"
    if example.command.startswith(WRITES):
        monkeypatch.chdir(tmp_path)
    for arg in example.argv:
        needed = re.match(r"([\w./-]+\.py)(?::|@|$)", arg)  # file.py:factory, or the file alone
        if needed:
            name = needed.group(1)
            if name not in example.files:
                pytest.skip(f"README does not show {name} in a ```python block (first line '# {name}') "
                            "before this example")
            if "from transformers import" in example.files[name]:
                # the optional extra; imported here first, so that its import (seconds) is not the
                # user's code running long (the "still waiting" notice on stderr)
                pytest.importorskip("transformers")
            (tmp_path / name).write_text(example.files[name], encoding="utf-8")
            monkeypatch.chdir(tmp_path)

    result = cli(*example.argv[1:])
    expected = _normalize(example.expected)
    if expected[0].startswith("archlab: error: "):
        assert_one_line_error(result)
        assert result.out == ""
        actual = _normalize(result.err.splitlines())
    else:
        assert result.code == 0, f"exit code {result.code}: {result.err}"
        assert result.err == ""
        actual = result.out.splitlines()[:example.head] if example.head else result.out.splitlines()
        actual = _normalize(actual)
    if not output_matches(expected, actual):
        diff = difflib.unified_diff(expected, actual, f"README.md:{example.line}", "real output", lineterm="")
        pytest.fail(f"README.md:{example.line} is stale: $ {example.command}\n" + "\n".join(diff), pytrace=False)


def layout_map(text: str) -> dict[str, set[str]]:
    """The README's layout map (the fenced block that starts with ``archlab/``): folder -> the
    ``.py`` files named under it ("" for archlab/ itself)."""
    block = next(b for b in re.findall(r"```\n(archlab/\n.*?)```", text, re.S))
    named: dict[str, set[str]] = {}
    folder = ""
    for line in block.splitlines()[1:]:
        depth = (len(line) - len(line.lstrip(" "))) // 2
        words = line.split()
        if not words:
            continue
        if depth == 1:
            folder = words[0].rstrip("/") if words[0].endswith("/") else ""
            if folder:
                named.setdefault(folder, set())
                continue
        files = []
        for word in words:
            if not word.endswith(".py"):
                break
            files.append(word)
        named.setdefault(folder if depth == 2 else "", set()).update(files)
    return named


def test_the_layout_map_is_the_tree():
    root = README.parent / "archlab"
    named = layout_map(README.read_text())
    tree: dict[str, set[str]] = {"": {p.name for p in root.glob("*.py")}}
    for package in (p for p in root.iterdir() if (p / "__init__.py").exists()):
        tree[package.name] = {p.name for p in package.glob("*.py")}
    missing = sorted(f"{folder}/{name}".lstrip("/") for folder, names in tree.items()
                     for name in names - named.get(folder, set()) if not (folder and name == "__init__.py"))
    stale = sorted(f"{folder}/{name}".lstrip("/") for folder, names in named.items()
                   for name in names - tree.get(folder, set()))
    assert missing == [], f"modules the README's layout map does not name: {missing}"
    assert stale == [], f"modules the README's layout map names that do not exist: {stale}"
