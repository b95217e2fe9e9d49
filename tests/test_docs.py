"""The README and every page of docs/ are true: their examples run, their links resolve.

**Command examples.** An example is a ```text block whose first line is a shell prompt,
``$ archlab ...``; the lines after it, up to the next ``$`` line or the end of the block, are
what the command prints.

* ``| head -N`` or ``| tail -N`` after the command keeps the first or last N lines of stdout;
  a trailing ``# comment`` or a parenthesised remark after two or more spaces, ``(rows by
  kind)``, is not part of it.
* A line that is only ``...`` stands for any number of output lines; the other lines must then
  appear in the output in order, each run of lines between two ``...`` contiguous (doctest's
  ELLIPSIS, line by line). Without ``...`` the whole output must match exactly. Trailing
  whitespace of each line and trailing blank lines are ignored.
* An example whose output starts with ``archlab: error:`` is an error example: it must exit
  with code 2 and print exactly that one line on stderr (the error contract).
* A command that reads ``name.py:factory`` (or names ``name.py`` alone) gets ``name.py``,
  written from the last ```python block before it on the same page whose first line is
  ``# name.py``; a page that names a file it does not show fails.
* Every command runs in a temporary directory (what it writes lands there), where the
  repository's ``examples/`` is linked, so ``examples/language_models.py:llama_7b`` reads as
  written.
* Commands starting with a prefix in MEASURED time or measure the machine: their numbers differ
  on every run, so they are not run, and the page must say so on the prompt line, with a remark
  that contains "measured".

A block of any language right after a line ``<!-- $ archlab ... -->`` is that command's output
(a ```mermaid diagram, which code-hosting sites render, is checked as text).

**Python examples.** A ```python block is a file for the commands (first line ``# name.py``) or a
doctest (``>>>`` lines with their output under them); a page's doctest blocks run in order in
one namespace, doctest's ELLIPSIS and NORMALIZE_WHITESPACE on. A python block that is neither
fails: every example runs.

**Links.** Every relative link of every page (``[text](path)``, ``[text](path#anchor)``,
images) names a file or folder that exists, and an anchor names a heading of that page.

Every example is one test case whose id is the page and the command, so a failure names the
stale block. Commands run in-process through the ``cli`` fixture: ``archlab.cli.run`` (the
console script) is ``main()`` plus a flush and ``os._exit``, so stdout, stderr and the exit
code are the same.
"""

from __future__ import annotations

import difflib
import doctest
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from conftest import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

# Found when this file was written: 45 commands on 15 pages. Fewer means the parser no longer
# understands the pages, and the examples would silently go untested.
MIN_EXAMPLES = 45

MEASURED = {
    "archlab latency": "measured timings: they differ on every run and every machine",
    "archlab calibrate": "a measured machine model: it differs on every run and every machine",
    "archlab roofline": "predicted from a measured machine model: it differs on every run and every machine",
}

SLOW = ("--engine fvcore", "vgg16 --effective")  # vgg16 --effective: 32 samples' backwards, a minute or more

# the pages that run no archlab command, and why
WITHOUT_EXAMPLES = {
    "docs/README.md": "the index of the pages",
    "docs/development.md": "its commands are the developers' (pytest, the benchmarks), whose outputs are measured",
}


@dataclass
class Example:
    page: str  # the page's path from the repository root
    line: int  # the page's line of the ``$`` prompt
    command: str  # the command without ``| head -N`` and trailing remarks
    remark: str  # the trailing remark of the prompt line, if any
    argv: List[str]
    head: Optional[int]  # | head -N
    tail: Optional[int]  # | tail -N
    expected: List[str]
    files: Dict[str, str] = field(default_factory=dict)  # name.py -> source, from ```python blocks


@dataclass
class PythonBlock:
    page: str
    line: int
    lines: List[str]


def rel(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def _fenced_blocks(text: str):
    """(language, line number of the first content line, content lines) of every fenced block.

    A block right after a line ``<!-- $ archlab ... -->`` is that command's output whatever its
    language (a ```mermaid diagram renders on code-hosting sites and is still checked): it is
    given as a text block whose first line is the prompt."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.fullmatch(r"```(\w*)\s*", lines[i])
        if opening:
            end = i + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            prompt = re.fullmatch(r"<!--\s*(\$ archlab .*?)\s*-->", lines[i - 1].strip()) if i else None
            if prompt:
                yield "text", i + 1, [prompt.group(1), *lines[i + 1:end]]
            else:
                yield opening.group(1), i + 2, lines[i + 1:end]
            i = end
        i += 1


def _parse_command(prompt: str):
    text = prompt[2:].strip()
    remark = re.search(r"\s{2,}(#.*|\(.*\))$", text)
    command = text[:remark.start()] if remark else text
    piped = re.fullmatch(r"(.*?)\s*\|\s*(head|tail)\s+-n?\s*(\d+)", command)
    head = int(piped.group(3)) if piped and piped.group(2) == "head" else None
    tail = int(piped.group(3)) if piped and piped.group(2) == "tail" else None
    command = piped.group(1) if piped else command
    return command, remark.group(1) if remark else "", shlex.split(command, comments=True), head, tail


def parse_page(page: Path):
    """The page's command examples and its python blocks."""
    examples: List[Example] = []
    blocks: List[PythonBlock] = []
    files: Dict[str, str] = {}
    for language, first, lines in _fenced_blocks(page.read_text(encoding="utf-8")):
        if language == "python" and lines:
            named = re.fullmatch(r"#\s*(\S+\.py)\s*", lines[0])
            if named:
                files[named.group(1)] = "\n".join(lines) + "\n"
            else:
                blocks.append(PythonBlock(rel(page), first, lines))
        if language != "text" or not lines or not lines[0].startswith("$ "):
            continue
        for offset, line in enumerate(lines):
            if line.startswith("$ "):
                command, remark, argv, head, tail = _parse_command(line)
                examples.append(Example(rel(page), first + offset, command, remark, argv, head, tail, [], dict(files)))
            else:
                examples[-1].expected.append(line)
    return examples, blocks


PARSED = {rel(page): parse_page(page) for page in PAGES}
EXAMPLES = [e for examples, _ in PARSED.values() for e in examples]


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


def test_the_examples_are_found():
    assert len(EXAMPLES) >= MIN_EXAMPLES, [e.command for e in EXAMPLES]
    for prefix in MEASURED:  # a prefix that matches nothing is stale
        assert any(e.command.startswith(prefix) for e in EXAMPLES), prefix
    assert all(e.expected for e in EXAMPLES), "an example without output"
    shown = {page for page, (examples, blocks) in PARSED.items() if examples or blocks}
    assert set(PARSED) - shown == set(WITHOUT_EXAMPLES), "every page shows an example"


def readme_commands() -> list:
    """(command, the page it links first) of each row of the README's table of commands."""
    return re.findall(r"^\| `archlab (\w+)`[^|]*\| .*?\| \[[^\]]+\]\((docs/[\w-]+\.md)", README.read_text(), re.M)


def test_each_commands_page_shows_it():
    """The README's table names each command's page; that page runs the command."""
    for command, page in readme_commands():
        assert any(e.command.split()[:2] == ["archlab", command] for e in PARSED[page][0]), \
            f"{page} documents archlab {command} but shows no example of it"


def test_measured_examples_say_so():
    for e in EXAMPLES:
        if e.command.startswith(tuple(MEASURED)):
            assert "measured" in e.remark, f"{e.page}:{e.line}: say on the prompt line that the output is measured"


def test_every_python_block_runs():
    """A python block is a file for the commands or a doctest: nothing shown goes untested."""
    unrun = [f"{b.page}:{b.line}" for _, blocks in PARSED.values() for b in blocks
             if not any(line.startswith(">>> ") for line in b.lines)]
    assert unrun == [], "python blocks that are neither '# name.py' files nor doctests"


def _in_a_scratch_directory(tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    monkeypatch.chdir(tmp_path)


def _params():
    for example in EXAMPLES:
        slow = any(s in example.command for s in SLOW)
        yield pytest.param(example, id=f"{example.page}: {example.command}", marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("example", list(_params()))
def test_example(example: Example, cli, tmp_path, monkeypatch):
    for prefix, reason in MEASURED.items():
        if example.command.startswith(prefix):
            pytest.skip(reason)
    where = f"{example.page}:{example.line}"
    assert example.argv[0] == "archlab" and "|" not in example.argv, f"{where}: cannot run {example.command}"
    _in_a_scratch_directory(tmp_path, monkeypatch)
    import archlab.user_code

    # the "still waiting" notice is about the machine's speed, not the output: a loaded machine
    # must not turn a slow build of the user's model (GPT-2 on meta: about a second) into a failure
    monkeypatch.setattr(archlab.user_code, "WAIT_NOTICE_S", None)
    for arg in example.argv:
        needed = re.match(r"([\w.-]+\.py)(?::|@|$)", arg)  # file.py:factory, or the file alone
        if needed:
            name = needed.group(1)
            assert name in example.files, \
                f"{where}: the page does not show {name} in a ```python block (first line '# {name}') before it"
            if "from transformers import" in example.files[name]:
                # the optional extra; imported here first, so that its import (seconds) is not the
                # user's code running long (the "still waiting" notice on stderr)
                pytest.importorskip("transformers")
            (tmp_path / name).write_text(example.files[name], encoding="utf-8")
        elif arg.startswith("examples/") and "transformers" in (ROOT / arg.split(":")[0]).read_text():
            pytest.importorskip("transformers")

    result = cli(*example.argv[1:])
    expected = _normalize(example.expected)
    if expected[0].startswith("archlab: error: "):
        assert_one_line_error(result)
        assert result.out == ""
        actual = _normalize(result.err.splitlines())
    else:
        assert result.code == 0, f"{where}: exit code {result.code}: {result.err}"
        assert result.err == ""
        actual = result.out.splitlines()
        if example.head:
            actual = actual[:example.head]
        actual = _normalize(actual)
        if example.tail:
            actual = actual[-example.tail:]
    if not output_matches(expected, actual):
        diff = difflib.unified_diff(expected, actual, where, "real output", lineterm="")
        pytest.fail(f"{where} is stale: $ {example.command}\n" + "\n".join(diff), pytrace=False)


DOCTEST_PAGES = [page for page, (_, blocks) in PARSED.items() if blocks]


@pytest.mark.parametrize("page", DOCTEST_PAGES)
def test_python_examples(page, tmp_path, monkeypatch, capsys):
    blocks = PARSED[page][1]
    if any("transformers" in line for b in blocks for line in b.lines):
        pytest.importorskip("transformers")
    _in_a_scratch_directory(tmp_path, monkeypatch)
    namespace = {"__name__": "__docs__"}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for b in blocks:  # in order, in one namespace, each failure at its page and line
        test = doctest.DocTestParser().get_doctest("\n".join(b.lines) + "\n", {}, f"{page}:{b.line}",
                                                   str(ROOT / page), b.line - 1)
        test.globs = namespace
        runner.run(test, out=report.append, clear_globs=False)
    assert runner.failures == 0, "".join(report)


SLUG_DROP = re.compile(r"[^\w\- ]")


def anchors(page: Path) -> set:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    found = set()
    for heading in re.findall(r"^#+\s+(.*)$", text, re.M):
        slug = SLUG_DROP.sub("", heading.strip().lower()).replace(" ", "-")
        n, candidate = 0, slug
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def links(page: Path):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"[a-z]+:", target):
            yield target


@pytest.mark.parametrize("page", [rel(p) for p in PAGES])
def test_links_resolve(page):
    here = ROOT / page
    broken = []
    for target in links(here):
        path, _, anchor = target.partition("#")
        resolved = (here.parent / path).resolve() if path else here
        if not resolved.exists():
            broken.append(target)
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            broken.append(target)
    assert broken == [], f"{page}: links that do not resolve"


def test_the_link_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A title\n\n[here](#a-title) [there](missing.md) `[code](not-a-link)`\n")
    assert list(links(page)) == ["#a-title", "missing.md"]
    assert anchors(page) == {"a-title"}


def test_every_command_is_in_the_readmes_table_and_its_help_names_its_page(cli):
    import typer

    from archlab.cli import app

    commands = sorted(c.name for c in typer.main.get_command(app).commands.values())
    table = readme_commands()
    assert sorted({c for c, _ in table}) == commands, "the README's table of commands is every command"
    for command, page in table:
        result = cli(command, "--help")
        assert result.code == 0, result.err
        last = result.out.strip().splitlines()[-1]
        assert page in last, f"archlab {command} --help ends with {last!r}, not its page {page}"
    assert "docs/README.md" in cli("--help").out.strip().splitlines()[-1]


DEVELOPMENT = DOCS / "development.md"


def layout_map(text: str) -> dict[str, set[str]]:
    """The layout map (the fenced block that starts with ``archlab/``): folder -> the
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
    root = ROOT / "archlab"
    named = layout_map(DEVELOPMENT.read_text())
    tree: dict[str, set[str]] = {"": {p.name for p in root.glob("*.py")}}
    for package in (p for p in root.iterdir() if (p / "__init__.py").exists()):
        tree[package.name] = {p.name for p in package.glob("*.py")}
    missing = sorted(f"{folder}/{name}".lstrip("/") for folder, names in tree.items()
                     for name in names - named.get(folder, set()) if not (folder and name == "__init__.py"))
    stale = sorted(f"{folder}/{name}".lstrip("/") for folder, names in named.items()
                   for name in names - tree.get(folder, set()))
    assert missing == [], f"modules docs/development.md's layout map does not name: {missing}"
    assert stale == [], f"modules docs/development.md's layout map names that do not exist: {stale}"
