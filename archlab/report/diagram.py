"""``archlab diagram``: a ``Diagram`` as Mermaid, Graphviz DOT, or SVG (DOT laid out by Graphviz's
``dot``, when it is on the PATH)."""

from __future__ import annotations

import html
import shutil
import subprocess

from archlab.analysis.diagram import Box, Diagram
from archlab.errors import UserError
from archlab.units import human, shape_str

FORMATS = ("mermaid", "dot", "svg")


def box_lines(box: Box) -> list[str]:
    """A box's text: name, type, output shape, params and MACs (each computed)."""
    error = [f"FAILED: {box.error}"] if box.error else []
    if box.type == "input":
        return [box.label or box.name, shape_str(box.output_shape) + (f" {box.dtype}" if "int" in box.dtype else "")]
    if box.type == "output":
        return [box.name, shape_str(box.output_shape)]
    if box.type == "op":
        lines = [box.label or box.name, shape_str(box.output_shape)]
        if box.macs:
            lines.append(f"{human(box.macs, 'MACs')}")
        return lines + error
    name = box.label or box.name or box.type
    kind = f"{box.type} × {box.repeat}" if box.repeat > 1 else box.type
    return [f"{name}: {kind}", shape_str(box.output_shape),
            f"params {human(box.params)} · {human(box.macs, 'MACs')}"] + error


def _title(d: Diagram) -> str:
    where = f" {d.block}" if d.block else ""
    return f"{d.model}{where}, depth {d.depth}"


def to_mermaid(d: Diagram) -> str:
    lines = ["flowchart TB",
             f"    %% {_title(d)}: boxes are modules (name: type, output shape, params, MACs), edges the data flow"]
    for box in d.boxes:
        text = "<br/>".join(html.escape(line, quote=True).replace("&#x27;", "'") for line in box_lines(box))
        if box.type == "op":
            lines.append(f'    {box.id}(("{text}"))')
        elif box.type in ("input", "output"):
            lines.append(f'    {box.id}[/"{text}"/]')
        else:
            lines.append(f'    {box.id}["{text}"]')
    for a, b in d.edges:
        lines.append(f"    {a} --> {b}")
    lines += [f"    style {box.id} stroke:#c00,stroke-width:3px" for box in d.boxes if box.error]
    return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(d: Diagram) -> str:
    lines = [f'digraph "{_dot_escape(d.model)}" {{', f'    label="{_dot_escape(_title(d))}";',
             '    rankdir=TB; node [shape=box, fontname="Helvetica", fontsize=10];']
    for box in d.boxes:
        label = "\\n".join(_dot_escape(line) for line in box_lines(box))
        shape = {"op": "circle", "input": "parallelogram", "output": "parallelogram"}.get(box.type, "box")
        mark = ', color="#cc0000", penwidth=3' if box.error else ""
        lines.append(f'    {box.id} [label="{label}", shape={shape}{mark}];')
    for a, b in d.edges:
        lines.append(f"    {a} -> {b};")
    lines.append("}")
    return "\n".join(lines) + "\n"


DOT_MISSING = ("--format svg needs Graphviz's 'dot' on the PATH: install it (apt-get install graphviz, "
               "brew install graphviz, conda install graphviz); --format mermaid and dot need nothing")


def dot_available() -> bool:
    return shutil.which("dot") is not None


def to_svg(d: Diagram) -> str:
    """The diagram laid out by Graphviz (``dot -Tsvg``); a one-line error when it is missing."""
    dot = shutil.which("dot")
    if dot is None:
        raise UserError(DOT_MISSING)
    try:
        done = subprocess.run([dot, "-Tsvg"], input=to_dot(d).encode("utf-8"), capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UserError(f"Graphviz's dot failed: {e}") from None
    if done.returncode != 0:
        raise UserError(f"Graphviz's dot failed: {done.stderr.decode(errors='replace').strip().splitlines()[:1]}")
    text = done.stdout.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def render(d: Diagram, fmt: str) -> str:
    if fmt == "mermaid":
        return to_mermaid(d)
    if fmt == "dot":
        return to_dot(d)
    if fmt == "svg":
        return to_svg(d)
    raise UserError(f"unknown --format '{fmt}' (choose {', '.join(FORMATS)})")
