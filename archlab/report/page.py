"""``archlab report``: one self-contained page per model (html, or md), with the summary, the
per-layer table and the figures, inline as SVG (no network, no script).

``figure_specs`` says what each figure plots, from the computed results; the page draws those
specs and nothing else (tests compare the specs, and the figures read back, with the results).
"""

from __future__ import annotations

import base64
import html
from typing import Any, Sequence

from archlab.analysis.page import leaves, stage_boundaries
from archlab.measure.profile import by_kind
from archlab.report.figures import FigureSpec, Series, svg_of
from archlab.report.training_memory import training_section
from archlab.units import binary_unit, human, human_bytes, shape_str

# past this many layers the names under the bars are left out (unreadable); the table has them
MAX_TICK_LABELS = 50  # 8-pt names side by side across a 9-inch figure's axis (figures.TICK_PT)


def _spatial_size(input_shape: Sequence[int]) -> int | None:
    """The input's largest spatial side (H or W of N,C,H,W), the scale the receptive field grows to."""
    return max(input_shape[2:]) if len(input_shape) >= 3 else None


def figure_specs(count: Any = None, rf: Any = None, memory: Any = None, timeline: Any = None,
                 input_shape: Sequence[int] = (), latency: Any = None) -> list[FigureSpec]:
    """The page's figures, as data: MACs and params per layer, the receptive field per layer,
    the activation-memory timeline and, when latency was measured per layer (``latency``: an
    ``archlab.measure.latency.LatencyResult``), each layer kind's share of the time beside its
    share of the MACs. A missing analysis leaves its figure out."""
    specs: list[FigureSpec] = []
    if count is not None and count.layers:
        layers = [count.layers[i] for i in leaves([layer.name for layer in count.layers])]
        names = [layer.name for layer in layers]
        bounds = tuple(b - 0.5 for b in stage_boundaries(names, [layer.output_shape for layer in layers]))
        specs.append(FigureSpec(
            key="cost", title="MACs and parameters per layer (in forward order; dotted: a new resolution)",
            xlabel="layer", ylabels=("MACs", "params"),
            series=(Series("MACs", tuple(layer.macs for layer in layers), kind="bar", panel=0),
                    Series("params", tuple(layer.params for layer in layers), kind="bar", panel=1)),
            vlines=bounds, xticklabels=tuple(names) if len(names) <= MAX_TICK_LABELS else (),
            size=(9.0, 5.5)))
    if rf is not None and rf.layers:
        keep = leaves([r["name"] for r in rf.layers])
        rows = [rf.layers[i] for i in keep if rf.layers[i].get("rf") is not None]
        if rows:
            names = [r["name"] for r in rows]
            series = [Series("receptive field (pixels)", tuple(r["rf"] for r in rows), kind="step")]
            side = _spatial_size(input_shape)
            if side:
                series.append(Series(f"input size ({side} pixels)", (side,), kind="hline"))
            specs.append(FigureSpec(
                key="rf", title="Receptive field growth, layer by layer, against the input size",
                xlabel="layer", ylabels=("pixels",), series=tuple(series),
                vlines=tuple(b - 0.5 for b in stage_boundaries(names, [r.get("output_shape") for r in rows])),
                xticklabels=tuple(names) if len(names) <= MAX_TICK_LABELS else ()))
    if memory is not None and timeline:
        live = tuple(p.live_bytes for p in timeline)
        peak_i = max(range(len(live)), key=live.__getitem__)
        # the axis in the legend's unit (MiB, GiB: the peak's), not bytes with a 1e7 offset beside it
        factor, unit = binary_unit(max(live[peak_i], memory.mg_bytes))
        series = [Series(f"live activations ({unit}, {memory.act_dtype})", tuple(v / factor for v in live)),
                  Series(f"M(G) = {human_bytes(memory.mg_bytes)}", (memory.mg_bytes / factor,), kind="hline")]
        if memory.mg_fused_bytes is not None:
            series.append(Series(f"fused M(G) = {human_bytes(memory.mg_fused_bytes)} "
                                 f"({', '.join(memory.fused_types)} as one op)", (memory.mg_fused_bytes / factor,),
                                 kind="hline"))
        specs.append(FigureSpec(
            key="memory", title="Activation memory over the forward (live bytes per op; ▼ the peak)",
            xlabel="op (forward order)", ylabels=(f"{unit} ({memory.act_dtype})",), series=tuple(series),
            marks=((peak_i, live[peak_i] / factor, f"peak {human_bytes(live[peak_i])} at {timeline[peak_i].op}"),),
            extra={"peak_index": peak_i}))
    if latency is not None and latency.layers:
        kinds = by_kind(latency.layers)
        specs.append(FigureSpec(
            key="latency",
            title=f"Measured time per layer kind beside its share of MACs ({latency.device}, {latency.dtype}, "
                  f"batch {latency.batch}; median forward {latency.median_ms:.3g} ms; per module, from per-op timing)",
            xlabel="layer kind", ylabels=("share of time (%)", "share of MACs (%)"),
            series=(Series("share of measured time", tuple(100 * k["time_share"] for k in kinds), kind="bar", panel=0),
                    Series("share of MACs", tuple(100 * k["mac_share"] for k in kinds), kind="bar", panel=1)),
            xticklabels=tuple(k["kind"] for k in kinds), size=(9.0, 5.5)))
    return specs


def _summary_rows(count: Any, memory: Any) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if count is not None:
        rows += [("params", f"{count.params:,} ({human(count.params)})"),
                 ("MACs", f"{count.macs:,} ({human(count.macs, 'MACs')}, multiply-accumulates)"),
                 ("FLOPs", f"{count.flops:,} ({human(count.flops, 'FLOPs')} = 2 x MACs)")]
        for kind, n in sorted(count.other_ops.items()):
            if n:
                rows.append((f"other ops: {kind}", f"{n:,} (not MACs)"))
        unsupported = count.unsupported_ops
        if unsupported:
            calls = sum(n for _, n in unsupported)
            status = f"count PARTIAL: {calls:,} op call{'' if calls == 1 else 's'} not counted"
        else:
            status = "count complete"
        rows.append(("status", status))
    if memory is not None:
        rows += [("activation peak", f"{memory.activation_peak_bytes:,} bytes ({human_bytes(memory.activation_peak_bytes)},"
                                     f" {memory.act_dtype}) at {memory.activation_peak_at}"),
                 ("M(G)", f"{memory.mg_bytes:,} bytes ({human_bytes(memory.mg_bytes)}, {memory.act_dtype})")]
        if memory.mg_fused_bytes is not None:
            rows.append(("fused M(G)", f"{memory.mg_fused_bytes:,} bytes ({human_bytes(memory.mg_fused_bytes)}, "
                                       f"{', '.join(memory.fused_types)} fused)"))
    return rows


LAYER_HEADERS = ("layer", "type", "output shape", "params", "MACs", "receptive field")


ERF_HEADER = "ERF95 (pixels)"


def layer_headers(erf: Any = None) -> tuple[str, ...]:
    """The per-layer table's columns: with the effective receptive field, its ERF95 beside the exact field."""
    return LAYER_HEADERS + ((ERF_HEADER,) if erf is not None else ())


def _layer_rows(count: Any, rf: Any, erf: Any = None) -> list[tuple[str, ...]]:
    fields = {r["name"]: r.get("rf") for r in rf.layers} if rf is not None else {}
    rows = [(layer.name, layer.type, shape_str(layer.output_shape), f"{layer.params:,}", f"{layer.macs:,}",
             "-" if fields.get(layer.name) is None else str(fields[layer.name])) for layer in count.layers]
    if erf is None:
        return rows
    measured = {layer.name: str(layer.metrics.erf95) for layer in erf.layers}
    return [(*row, measured.get(row[0], "-")) for row in rows]


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>\n" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


STYLE = ("body{font-family:sans-serif;max-width:70em;margin:auto;padding:0 1em}"
         "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}"
         "td+td{text-align:right}td:nth-child(2){text-align:left}figure{margin:1em 0}"
         "figure svg{max-width:100%;height:auto}")


def diagram_html(diagram: Any) -> str:
    """The architecture for the page: the interactive diagram (``diagram``: an
    ``archlab.analysis.diagram.Tree``), open at the depth that shows the paper's blocks, repeats collapsed;
    a ``Diagram`` (one depth) is drawn by Graphviz when ``dot`` is installed, else as its Mermaid source."""
    from archlab.report import diagram as diagram_report

    if hasattr(diagram, "nodes"):
        depth = diagram_report.blocks_depth(diagram)
        return (f"<figure id='fig-diagram'>{diagram_report.interactive(diagram, depth)}<figcaption>The "
                f"architecture at depth {depth} (repeated blocks collapsed): + expands a box into its children, "
                "down to single ops, − collapses it back; the pointer over a box shows its numbers</figcaption>"
                "</figure>")
    if diagram_report.dot_available():
        return f"<figure id='fig-diagram'>{diagram_report.to_svg(diagram)}<figcaption>The model's children as " \
               "boxes (type, output shape, params, MACs) and the data flow between them</figcaption></figure>"
    return (f"<p>{html.escape(diagram_report.DOT_MISSING.replace('--format svg', 'the drawn diagram'))}. "
            "Its Mermaid source:</p><pre>" + html.escape(diagram_report.to_mermaid(diagram)) + "</pre>")


def _provenance(erf: Any) -> str:
    """Where the page's numbers come from: one meta-device trace, and the ERF's real runs when shown."""
    text = "Every number is computed from one meta-device trace"
    if erf is None:
        return text + "."
    return (f"{text}, except the effective receptive field's, from real forwards and backwards of the model on "
            f"{erf.samples} random input{'s' if erf.samples != 1 else ''} ({erf.weights} weights, {erf.device}).")


def erf_figures(erf: Any) -> list[tuple[str, str, str]]:
    """The effective receptive field's figures for the page, (key, caption, SVG): the stage heatmaps
    with the exact field drawn on each, and ERF95 beside the theoretical field against depth."""
    from archlab.report import erf_figures as erf_fig

    if erf is None or not erf.layers:
        return []
    return [("erf", erf_fig.heatmap_title(erf), erf_fig.svg(erf, ("heatmaps",))),
            ("erf-depth", erf_fig.depth_spec(erf).title, erf_fig.svg(erf, ("depth",)))]


def body(model: str, input_shape: Sequence[int], count: Any = None, rf: Any = None, memory: Any = None,
         timeline: Any = None, diagram: Any = None, latency: Any = None, erf: Any = None, training: Any = None,
         shard: str | None = None) -> str:
    """The page's content (what a notebook shows): headings, summary, figures, tables. ``erf``: the
    effective receptive field (an ``ERFResult``), for its heatmaps and its figure against depth; ``training``:
    one rank's training bills under every scheme (``PerRankBill``s; ``shard`` the chosen one)."""
    parts = [f"<h1>{html.escape(model)}</h1>",
             f"<p>input {html.escape(shape_str(input_shape))}; MACs are multiply-accumulates, FLOPs = 2 x MACs; "
             f"bytes at the activation dtype named. {html.escape(_provenance(erf))}</p>",
             "<h2>Summary</h2>", html_table(("quantity", "value"), _summary_rows(count, memory))]
    specs = figure_specs(count, rf, memory, timeline, input_shape, latency)
    drawn = [(spec.key, spec.title, svg_of(spec)) for spec in specs] + erf_figures(erf)
    if drawn:
        parts.append("<h2>Figures</h2>")
    for key, caption, svg in drawn:
        parts.append(f"<figure id='fig-{key}'>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>")
    if training:
        spec, headers, rows, caption = training_section(list(training), shard)
        parts += ["<h2>Training memory per rank</h2>",
                  f"<figure id='fig-{spec.key}'>{svg_of(spec)}<figcaption>{html.escape(spec.title)}</figcaption>"
                  "</figure>", html_table(headers, rows), f"<p>{html.escape(caption)}</p>"]
    if diagram is not None:
        parts += ["<h2>Architecture</h2>", diagram_html(diagram)]
    if count is not None:
        parts += ["<h2>Per layer</h2>", html_table(layer_headers(erf), _layer_rows(count, rf, erf))]
    return "\n".join(parts)


def render_html(model: str, input_shape: Sequence[int], count: Any = None, rf: Any = None, memory: Any = None,
                timeline: Any = None, diagram: Any = None, latency: Any = None, erf: Any = None, training: Any = None,
                shard: str | None = None) -> str:
    """The self-contained html page (``diagram``: an ``archlab.analysis.diagram.Tree``, drawn by the page's one
    inline script, or a ``Diagram``)."""
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>archlab report: {html.escape(model)}</title><style>{STYLE}</style></head><body>\n"
            + body(model, input_shape, count, rf, memory, timeline, diagram, latency, erf, training, shard)
            + "\n</body></html>\n")


def render_md(model: str, input_shape: Sequence[int], count: Any = None, rf: Any = None, memory: Any = None,
              timeline: Any = None, latency: Any = None, erf: Any = None, training: Any = None,
              shard: str | None = None) -> str:
    """The page as markdown: tables, and the figures as inline SVG images (data URIs)."""
    lines = [f"# {model}", "", f"input {shape_str(input_shape)}; MACs are multiply-accumulates, FLOPs = 2 x MACs."
             + ("" if erf is None else " " + _provenance(erf)), "", "| quantity | value |", "|---|---|"]
    lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in _summary_rows(count, memory)]
    drawn = [(spec.title, svg_of(spec)) for spec in figure_specs(count, rf, memory, timeline, input_shape, latency)]
    for title, svg in drawn + [(caption, svg) for _, caption, svg in erf_figures(erf)]:
        data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
        lines += ["", f"![{title}](data:image/svg+xml;base64,{data})"]
    if training:
        spec, headers, rows, caption = training_section(list(training), shard)
        data = base64.b64encode(svg_of(spec).encode("utf-8")).decode("ascii")
        lines += ["", "## Training memory per rank", "", f"![{spec.title}](data:image/svg+xml;base64,{data})", "",
                  "| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines += ["", caption]
    if count is not None:
        headers = layer_headers(erf)
        lines += ["", "## Per layer", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in _layer_rows(count, rf, erf)]
    return "\n".join(lines) + "\n"
