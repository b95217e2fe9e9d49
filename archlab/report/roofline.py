"""Renderers for ``archlab roofline`` and ``archlab calibrate``: tables, and the roofline figure."""

from __future__ import annotations

from collections import defaultdict

from archlab.measure.calibrate import COPY_ELEMENTS, MATMUL_N, Machine
from archlab.measure.roofline import RooflineResult
from archlab.report import formats
from archlab.report.figures import FigureSpec, Series
from archlab.report.formats import csv_table, md_table, text_table, to_json
from archlab.units import human_bytes, shape_str

KIND_HEADERS = ("kind", "layers", "GFLOP", "traffic", "FLOP/B", "bound", "predicted GFLOP/s", "measured GFLOP/s")


def _kinds(r: RooflineResult) -> list[tuple]:
    groups: dict[str, list] = defaultdict(list)
    for p in r.points:
        groups[p.kind].append(p)
    rows = []
    for kind, ps in sorted(groups.items(), key=lambda kv: -sum(p.predicted_ms for p in kv[1])):
        flops = sum(p.flops for p in ps)
        traffic = sum(p.traffic_bytes for p in ps)
        pred = sum(p.predicted_ms for p in ps)
        meas = sum(p.measured_ms for p in ps) if r.measured_ms is not None else None
        bound: dict[str, float] = defaultdict(float)
        for p in ps:
            bound[p.bound] += p.predicted_ms
        rows.append((kind, len(ps), f"{flops / 1e9:.3f}", human_bytes(traffic),
                     f"{flops / traffic:.1f}" if traffic else "-", max(bound, key=bound.get),
                     f"{flops / pred / 1e6:.1f}" if pred else "-",
                     f"{flops / meas / 1e6:.1f}" if meas else "-"))
    return rows


def _caption(r: RooflineResult) -> str:
    m = r.machine
    text = (f"{r.model}  input {shape_str(r.input_shape)}  roofline of {m.key['machine']} ({m.key['device']}, "
            f"{m.key['threads']} thread{'s' if m.key['threads'] != 1 else ''}, {m.key['dtype']}): peak "
            f"{m.peak_gflops:.1f} GFLOP/s, bandwidth {m.bandwidth_gbs:.1f} GB/s, ridge {m.ridge:.1f} FLOP/B "
            f"(calibrated {m.measured_at}{', cached' if m.cached else ''})\n"
            f"layers: the ops with MACs (FLOPs = 2 x MACs); predicted forward {r.predicted_ms:.2f} ms (every op)")
    if r.measured_ms is not None:
        text += f"; measured {r.measured_ms:.2f} ms ({r.method})"
    return text + "\n"


def figure(r: RooflineResult) -> FigureSpec:
    """The roofline and the layers as data: what the plot shows, for tests to compare."""
    m = r.machine
    xs = [p.intensity for p in r.points if p.traffic_bytes] or [1.0]
    lo = min(min(xs), m.ridge) / 4
    hi = max(max(xs), m.ridge) * 4
    grid = tuple(lo * (hi / lo) ** (i / 64) for i in range(65))
    roof = tuple(min(m.peak_gflops, m.bandwidth_gbs * x) for x in grid)
    series = [Series(f"roofline: min({m.peak_gflops:.0f} GFLOP/s, {m.bandwidth_gbs:.1f} GB/s x intensity)", roof,
                     grid, "line")]
    by_kind: dict[str, list] = defaultdict(list)
    for p in r.points:
        if p.traffic_bytes:
            by_kind[p.kind].append(p)
    for kind, ps in sorted(by_kind.items()):
        series.append(Series(f"{kind} (predicted)", tuple(p.predicted_gflops for p in ps),
                             tuple(p.intensity for p in ps), "scatter"))
    if r.measured_ms is not None:
        ms = [p for p in r.points if p.traffic_bytes and p.measured_gflops]
        series.append(Series("measured (each layer)", tuple(p.measured_gflops for p in ms),
                             tuple(p.intensity for p in ms), "scatter"))
    return FigureSpec("roofline", f"{r.model} on {m.key['machine']} ({m.key['threads']} thread(s), "
                      f"{m.key['dtype']})", "arithmetic intensity (FLOPs per byte moved)", ("GFLOP/s",),
                      tuple(series), logx=True, logy=(True,), size=(9.0, 6.0))


def render(r: RooflineResult, fmt: str) -> str:
    def csv() -> str:
        keys = ("name", "kind", "flops", "traffic_bytes", "arithmetic_intensity", "bound", "predicted_ms",
                "predicted_gflops", "measured_ms", "measured_gflops")
        return csv_table(keys, [[p.to_dict()[k] for k in keys] for p in r.points])

    return formats.render(fmt, table=lambda: _caption(r) + text_table(KIND_HEADERS, _kinds(r), "lrrrrlrr"),
                          json=lambda: to_json(r.to_dict()), csv=csv,
                          md=lambda: "### " + _caption(r) + "\n" + md_table(KIND_HEADERS, _kinds(r), "lrrrrlrr"))


def image(r: RooflineResult, path: str) -> bytes | str:
    """The figure as SVG text or PNG bytes, by ``path``'s extension."""
    import io

    from archlab.errors import UserError
    from archlab.report.figures import draw, to_svg

    ext = path.lower().rsplit(".", 1)[-1] if "." in path else ""
    if ext not in ("png", "svg"):
        raise UserError(f"--plot writes .png or .svg, not '{path}'")
    fig = draw(figure(r))
    if ext == "svg":
        return to_svg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


# --- archlab calibrate -----------------------------------------------------------------------


def _machine_rows(m: Machine) -> list[tuple[str, str, str]]:
    n, copied = MATMUL_N, COPY_ELEMENTS / 2 ** 20
    rows = [("peak compute", f"{m.peak_gflops:.1f} GFLOP/s", f"a {n}x{n} matmul (FLOPs = 2 x MACs)"),
            ("memory bandwidth", f"{m.bandwidth_gbs:.1f} GB/s", f"a copy of {copied:g} Mi elements in "
             f"{m.key['dtype']} (bytes read + written, 1 GB = 1e9 bytes)"),
            ("ridge point", f"{m.ridge:.1f} FLOP/B", "peak / bandwidth: ops below it are memory-bound"),
            ("per-op overhead", f"{m.op_overhead_us:.2f} µs", "a tiny element-wise op called from Python"),
            ("module overhead", f"{m.module_overhead_us:.2f} µs", "what calling an nn.Module adds, per module call")]
    rows += [(f"conv: {k}", f"{v:.1f} GFLOP/s", f"efficiency {m.efficiency(k):.2f} of the peak; fixed "
              f"{m.fixed_us[k]:.1f} µs") for k, v in m.conv_gflops.items()]
    rows += [(f"memory-bound: {k}", f"{v:.1f} GB/s", f"bytes as archlab counts traffic, each op alone; fixed "
              f"{m.fixed_us[k]:.1f} µs") for k, v in m.memory_gbs.items()]
    rows += [(f"pooling: {k}", f"{v:.2f} G/s", f"window elements per second; fixed {m.fixed_us[k + ' pooling']:.1f} µs")
             for k, v in m.pool_rate.items()]
    return rows


def _machine_caption(m: Machine) -> str:
    k = m.key
    how = "read from the cache" if m.cached else f"measured in {m.seconds:.1f} s"
    return (f"machine model of {k['machine']} ({k['device']}, {k['threads']} thread{'s' if k['threads'] != 1 else ''}, "
            f"{k['dtype']}, torch {k['torch']}): {how}, {m.measured_at}\n"
            + "".join(f"note: {note}\n" for note in m.notes))


def render_machine(m: Machine, fmt: str) -> str:
    rows = _machine_rows(m)
    return formats.render(fmt, table=lambda: _machine_caption(m) + text_table(None, rows, "lrl", max_width=200),
                          json=lambda: to_json(m.to_dict()),
                          csv=lambda: csv_table(("quantity", "value", "what"), rows),
                          md=lambda: "### " + _machine_caption(m) + "\n" + md_table(("quantity", "value", "what"),
                                                                                     rows, "lrl"))


