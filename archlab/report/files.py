"""Files: every file archlab writes goes through ``write_atomic``, and plots and report pages
are written here (renderers return strings; the CLI decides where they go)."""

from __future__ import annotations

import io
import os
import tempfile
from typing import TYPE_CHECKING, Any

from archlab.errors import UserError

if TYPE_CHECKING:
    from archlab.analysis.laws import CompoundResult


def write_atomic(path: str, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to ``path`` so that an interrupted run never leaves half a file:
    a temporary file beside the target, flushed to disk, renamed into place.

    A symbolic link is followed (the file it points to is replaced, the link stays). What is not
    a regular file (``/dev/null``, ``/dev/stdout``, a FIFO) is written through, as a shell's
    ``>`` would: renaming over it would destroy the device node or the pipe. The new file gets
    the old one's permissions, or those the umask gives a new file (not mkstemp's 0600).
    """
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    if not path:
        raise UserError("-o needs a file name")
    if path.endswith(("/", os.sep)):
        raise UserError(f"cannot write '{path}': a file name cannot end with '/'")
    try:
        target = os.path.realpath(path)
        os.stat(path)  # a symbolic-link loop raises here (ELOOP); a missing file is fine
    except FileNotFoundError:
        pass
    except OSError as e:
        raise UserError(f"cannot write '{path}': {e.strerror or 'too many levels of symbolic links'}") from None
    if os.path.exists(target) and not os.path.isfile(target):
        if os.path.isdir(target):
            raise UserError(f"cannot write '{path}': it is a directory")
        try:
            with open(target, "wb") as f:  # a device or a pipe: no atomic replacement exists
                f.write(data)
        except OSError as e:
            raise UserError(f"cannot write '{path}': {e.strerror}") from None
        return
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):  # for a dangling link, the folder its target would be in
        raise UserError(f"cannot write '{path}': directory '{directory}' does not exist")
    try:
        mode = os.stat(target).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(prefix=".archlab-", dir=directory)
    except OSError as e:
        raise UserError(f"cannot write '{path}': {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise UserError(f"cannot write '{path}': {e.strerror}") from None


# --- efficientnet --report: a plot and the report page around it ---------------------------------


def phi_figure(r: CompoundResult) -> Any:
    """MACs and params against φ (``r.curve``), the official EfficientNet-B0..B7 as built
    (``r.official_curve``) as points, and the chosen φ marked: a matplotlib figure."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("plots need matplotlib, a dependency of archlab that is missing here: "
                        "pip install -r requirements.txt . (or pip install matplotlib); "
                        "--report json and the table work without it") from None
    del matplotlib
    phis = [p["phi"] for p in r.curve]
    fig = Figure(figsize=(6, 4), dpi=100)
    ax1 = fig.subplots()
    ax1.semilogy(phis, [p["macs"] for p in r.curve], "o-", label="MACs (built network)")
    ax1.semilogy(phis, [r.b0_macs * p["predicted_cost_ratio"] for p in r.curve], "--", label="MACs(B0)·(αβ²γ²)^φ")
    ax1.semilogy(phis, [p["params"] for p in r.curve], "s-", label="params")
    if r.official_curve:
        ax1.semilogy([p["phi"] for p in r.official_curve], [p["macs"] for p in r.official_curve], "k^",
                     label="official B0-B7 MACs")
        ax1.semilogy([p["phi"] for p in r.official_curve], [p["params"] for p in r.official_curve], "kv",
                     label="official B0-B7 params")
    ax1.axvline(r.phi, color="C3", linestyle=":", label=f"chosen φ = {r.phi:g}")
    ax1.set_xlabel("φ")
    ax1.set_ylabel("count (log scale)")
    ax1.set_title(f"EfficientNet compound scaling (α={r.alpha:g}, β={r.beta:g}, γ={r.gamma:g})")
    ax1.legend(fontsize=7)
    ax1.grid(True, which="both", alpha=0.3)
    fig.set_layout_engine("tight")
    return fig


def _plot_png(r: CompoundResult) -> bytes:
    """``phi_figure`` as PNG bytes."""
    fig = phi_figure(r)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def plot_path(path: str) -> str:
    """Where ``--report md -o PATH`` puts its plot: beside the file the report really goes to
    (a symbolic link is followed, so that the markdown's relative image reference holds), as
    the same name with ``.png``."""
    source = os.path.realpath(path) if os.path.islink(path) else path
    return os.path.splitext(source)[0] + ".png"


def _check_md_paths(path: str, png_path: str) -> None:
    """Refuse what would lose or misplace the report or its plot, before either is written."""
    target = os.path.realpath(path)
    if os.path.exists(target) and not os.path.isfile(target):
        raise UserError(f"cannot write the md report to '{path}': it is not a regular file (a device, pipe or "
                        "socket); the report's plot goes beside it as a .png file, so -o must name a file")
    if os.path.splitext(target)[1].lower() == ".png" or os.path.realpath(png_path) == target:
        raise UserError(f"-o '{path}' is where the md report's plot goes ('{png_path}', the report's name with .png): "
                        "the plot and the markdown would overwrite each other; name the report e.g. "
                        f"'{os.path.splitext(path)[0]}.md'")
    png_target = os.path.realpath(png_path)
    if os.path.exists(png_target) and not os.path.isfile(png_target):
        what = "a directory" if os.path.isdir(png_target) else "not a regular file"
        raise UserError(f"cannot write the plot of the report '{path}' to '{png_path}': it is {what}")


def check_report_path(kind: str, path: str) -> None:
    """Refuse, before anything is computed or written, a ``path`` the report cannot go to."""
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise UserError(f"cannot write '{path}': it is a directory")
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise UserError(f"cannot write '{path}': directory '{os.path.dirname(os.path.abspath(path))}' does not exist")
    if kind == "md":
        _check_md_paths(path, plot_path(path))


def write_report(r: CompoundResult, kind: str, path: str) -> list[str]:
    """Write the self-contained report; returns the paths written. ``md`` also writes the plot
    beside it (see ``plot_path``): both are checked before either is written, the plot is taken
    back (removed, or its old content restored) when the markdown then cannot be written, and a
    failure names ``path``, the file asked for."""
    from archlab.report.laws import render_compound_html, render_compound_md
    from archlab.report.formats import to_json

    check_report_path(kind, path)
    if kind == "json":
        write_atomic(path, to_json(r.to_dict()))
        return [path]
    png = _plot_png(r)
    if kind == "md":
        png_path = plot_path(path)
        try:
            with open(png_path, "rb") as f:
                old_png = f.read()
        except FileNotFoundError:
            old_png = None
        except OSError as e:
            raise UserError(f"cannot write the plot of the report '{path}' to '{png_path}': {e.strerror}") from None
        try:
            write_atomic(png_path, png)
        except UserError as e:
            raise UserError(f"{e} (the plot of the report '{path}', written beside it)") from None
        try:
            write_atomic(path, render_compound_md(r, os.path.basename(png_path)))
        except BaseException:
            try:  # no plot without its report: take back what was just written
                if old_png is None:
                    os.unlink(png_path)
                else:
                    write_atomic(png_path, old_png)
            except (OSError, UserError):
                pass
            raise
        return [path, png_path]
    if kind == "html":
        write_atomic(path, render_compound_html(r, png))
        return [path]
    raise UserError(f"unknown --report '{kind}' (choose md, json or html)")
