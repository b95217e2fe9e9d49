import json

import pytest

from archlab.cli import main


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--overwrite", action="store_true", default=False,
                     help="write the outputs to the golden files under tests/golden/ instead of comparing "
                          "(tests/test_report_golden.py)")


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self):
        return json.loads(self.out)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """The tests' `archlab list` cache lives in a folder of their own, not the user's."""
    import os

    saved = os.environ.get("ARCHLAB_CACHE_DIR")
    os.environ["ARCHLAB_CACHE_DIR"] = str(tmp_path_factory.mktemp("archlab-cache"))
    yield
    if saved is None:
        os.environ.pop("ARCHLAB_CACHE_DIR", None)
    else:
        os.environ["ARCHLAB_CACHE_DIR"] = saved


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: ``cli("count", "resnet18")`` -> CliResult(code, out, err)."""

    def run(*args: str) -> CliResult:
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def assert_one_line_error(result: CliResult, *needles: str) -> None:
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("archlab: error: ")
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
