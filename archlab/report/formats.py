"""Formatting helpers shared by every report: human numbers, markdown and CSV
tables, and atomic file output. Renderers return strings; only the CLI prints."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from typing import Any, Sequence

from archlab.errors import UserError

FORMATS = ("table", "json", "csv", "md")


def human(n: float, unit: str = "") -> str:
    """12_345_678 -> '12.35 M' (SI prefixes, powers of 1000)."""
    for factor, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {prefix}{unit}"
    return f"{n:,.0f} {unit}".rstrip() if float(n).is_integer() else f"{n:.3g} {unit}".rstrip()


def human_bytes(n: float) -> str:
    for factor, prefix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {prefix}"
    return f"{n:,.0f} B"


def shape_str(shape: Sequence[int] | None) -> str:
    return "x".join(map(str, shape)) if shape else "-"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one of 'l'/'r' per column."""
    align = align or "l" * len(headers)
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for row in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(out) + "\n"


def csv_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue()


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


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
