"""``archlab dwsc`` and ``archlab efficientnet``: the course's cost laws, by formula and by counting
the real network, side by side (``archlab compare`` is in ``archlab.cli.compare``)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from archlab.cli.options import Fmt, Format, Output, emit, settle
from archlab.errors import UserError
from archlab.analysis.laws import DWSC_DEFAULTS  # light: archlab.laws imports torch only when it counts


def _dwsc_option(key: str, flag: str, help: str) -> Any:
    """An option of ``archlab dwsc`` whose default (DWSC_DEFAULTS) is shown in --help but given as
    None, so that a value given explicitly is told from the default (``--sweep n=... --n 5``)."""
    return typer.Option(None, flag, help=f"{help}  [default: {DWSC_DEFAULTS[key]}]", show_default=False)


def dwsc_cmd(
    k: Optional[int] = _dwsc_option("k", "--k", "Kernel size D_K."),
    m: Optional[int] = _dwsc_option("m", "--m", "Input channels M."),
    n: Optional[int] = _dwsc_option("n", "--n", "Output channels N."),
    size: Optional[int] = _dwsc_option("size", "--size", "Side of the input feature map (D_G at stride 1: 'same' "
                                       "padding, asymmetric for an even kernel)."),
    stride: Optional[int] = _dwsc_option("stride", "--stride", "Stride of the convolution."),
    sweep: Annotated[Optional[str], typer.Option("--sweep", help="KEY=A..B (doubling) or KEY=A,B,C, e.g. n=64..2048.")] = None,
    fmt: Fmt = Format.table,
    output: Output = None,
) -> None:
    """Standard vs depthwise-separable convolution: the course's formulas beside real layers counted."""
    from archlab.analysis import laws
    from archlab.report import laws as laws_report

    settle()
    given = {"k": k, "m": m, "n": n, "size": size, "stride": stride}
    base = {key: DWSC_DEFAULTS[key] if value is None else value for key, value in given.items()}
    k, m, n, size, stride = (base[key] for key in ("k", "m", "n", "size", "stride"))
    if sweep:
        key, values = laws.parse_sweep(sweep)
        if given.get(key) is not None:  # the swept value and a fixed one: which did the user mean?
            raise UserError(f"--sweep {sweep} varies {key}, and --{key} {given[key]} fixes it; give one of them")
        results = [laws.dwsc(**{**base, key: v}) for v in values]
        emit(laws_report.render_sweep(key, results, fmt.value), output)
    else:
        emit(laws_report.render_dwsc(laws.dwsc(k, m, n, size, stride), fmt.value), output)


def efficientnet_cmd(
    phi: Annotated[Optional[float], typer.Option("--phi", help="Compound coefficient φ (0 to 20; default 1).")] = None,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="Depth base α (default 1.2).")] = None,
    beta: Annotated[Optional[float], typer.Option("--beta", help="Width base β (default 1.1).")] = None,
    gamma: Annotated[Optional[float], typer.Option("--gamma", help="Resolution base γ (default 1.15).")] = None,
    search: Annotated[bool, typer.Option("--search", help="Grid-search α, β, γ (step 0.05) with α·β²·γ² ≈ 2, at φ = 1; "
                                "takes no --phi/--alpha/--beta/--gamma/--report.")] = False,
    report: Annotated[Optional[str], typer.Option("--report", help="Write a report: md, json or html (to -o, default "
                                         "reports/efficientnet-phi{φ}.{ext}); takes no -f.")] = None,
    fmt: Annotated[Optional[Format], typer.Option("--format", "-f", help="Output format (default table); not with "
                                         "--report, which names its own.")] = None,
    output: Output = None,
) -> None:
    """EfficientNet's compound scaling: d = α^φ, w = β^φ, r = γ^φ, predicted vs measured cost."""
    from archlab.analysis import laws
    from archlab.report import files
    from archlab.report import laws as laws_report

    settle()
    if search:
        given = [flag for flag, value in (("--phi", phi), ("--alpha", alpha), ("--beta", beta), ("--gamma", gamma),
                                          ("--report", report)) if value is not None]
        if given:
            raise UserError(f"--search enumerates α, β, γ on a grid at φ = 1; it takes no {', '.join(given)}")
        from archlab.cli.progress import progress

        with progress("EfficientNet grid search") as step:
            rows = laws.grid_search(progress=step)
        emit(laws_report.render_search(rows, (fmt or Format.table).value), output)
        return
    phi = 1.0 if phi is None else phi
    alpha = 1.2 if alpha is None else alpha
    beta = 1.1 if beta is None else beta
    gamma = 1.15 if gamma is None else gamma
    if report is not None:
        if report not in ("md", "json", "html"):
            raise UserError(f"unknown --report '{report}' (choose md, json or html)")
        if fmt is not None:
            raise UserError(f"--report {report} writes a {report} file; -f/--format is for the printed output "
                            "without --report")
        import os

        had_folder = output is not None or os.path.isdir("reports")
        path = output or _default_report_path(f"efficientnet-phi{phi:g}.{report}")
        try:
            files.check_report_path(report, path)  # before the counting, not after it
            result = laws.compound(phi, alpha, beta, gamma, curve=True)
            written = files.write_report(result, report, path)
        except BaseException:
            if not had_folder:
                _remove_empty_reports_folder()
            raise
        print("wrote " + ", ".join(written))
        return
    emit(laws_report.render_compound(laws.compound(phi, alpha, beta, gamma), (fmt or Format.table).value), output)


def _remove_empty_reports_folder() -> None:
    """Take back the ``reports/`` folder a failed report created, when nothing is in it."""
    import os

    try:
        os.rmdir("reports")  # fails, and keeps the folder, when anything is in it
    except OSError:
        pass


def _default_report_path(name: str) -> str:
    """reports/NAME, creating reports/ in the current directory when it is missing."""
    import os

    try:
        os.makedirs("reports", exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the folder 'reports' for the report: {e.strerror}; "
                        "use -o to choose where it goes") from None
    return os.path.join("reports", name)
