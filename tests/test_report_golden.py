"""Golden outputs: every renderer's table, md and csv output, as the CLI prints it, compared with
the files under ``tests/golden/`` (torchinfo's pattern).

When an output changes on purpose, regenerate the files and review the diff before committing:

    python -m pytest tests/test_report_golden.py --overwrite

``--overwrite`` (defined in ``tests/conftest.py``) writes each output to its golden file instead
of comparing; a golden file that is missing is an error, never created silently. See
``tests/golden/README.md``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
FORMATS = ("table", "md", "csv")
EXTENSION = {"table": "txt", "md": "md", "csv": "csv"}

MODELS = ("lenet5", "resnet18", "mobilenet_v2")

# (name of the golden file without its extension, the command line without -f)
CASES: list[tuple[str, tuple[str, ...]]] = (
    [(f"{command}-{model}", (command, model)) for command in ("count", "trace", "rf", "memory") for model in MODELS]
    + [
        ("rf-unet", ("rf", "unet")),  # an encoder-decoder: fields through upsampling and concatenation
        ("memory-mobilenet-mobilenet_v2", ("memory", "mobilenet", "mobilenet_v2")),  # several models side by side
        ("list-resnet5", ("list", "resnet5*")),
        ("dwsc", ("dwsc",)),
        ("dwsc-sweep-n", ("dwsc", "--sweep", "n=64..512")),
        ("compare-lenet5-resnet18", ("compare", "lenet5", "resnet18")),
        ("compare-mobilenet-alpha0.5-rho160", ("compare", "mobilenet", "--alpha", "0.5", "--rho", "160")),
        ("efficientnet-phi1-printed", ("efficientnet", "--phi", "1")),  # efficientnet-phi1.md: --report md
        ("verify-resnet-flops", ("verify", "--only", "resnet.*.flops")),
    ]
)


@pytest.fixture
def overwrite(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--overwrite"))


def golden_path(name: str, fmt: str) -> Path:
    return GOLDEN / f"{name}.{EXTENSION[fmt]}"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, args", CASES, ids=[name for name, _ in CASES])
def test_output_matches_its_golden_file(cli, overwrite, name, args, fmt):
    r = cli(*args, "--format", fmt)
    assert r.code == 0, r.err
    path = golden_path(name, fmt)
    if overwrite:
        path.write_text(r.out, encoding="utf-8")
        return
    assert path.is_file(), f"no golden file {path.name}: run python -m pytest {__file__} --overwrite"
    expected = path.read_text(encoding="utf-8")
    assert r.out == expected, f"{' '.join(args)} -f {fmt} differs from {path.name} (--overwrite if on purpose)"


def test_every_golden_file_has_a_case():
    """A golden file no case writes is a leftover of a case removed: delete it."""
    known = {golden_path(name, fmt).name for name, _ in CASES for fmt in FORMATS}
    known |= {"README.md", "efficientnet-phi1.md"}  # efficientnet --report md: checked in tests/test_laws.py
    assert sorted(p.name for p in GOLDEN.iterdir() if p.name not in known) == []
