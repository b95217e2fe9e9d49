"""Renderers for ``archlab count``: a text table, JSON, CSV and markdown."""

from __future__ import annotations

from archlab.analysis.count import CountResult
from archlab.analysis.costs import OTHER_KIND_MEANING, OTHER_KINDS
from archlab.report import formats
from archlab.report.formats import csv_table, md_table, ops_text, text_table, to_json
from archlab.units import human, shape_str

LAYER_HEADERS = ("name", "type", "output shape", "params", "MACs", "share of MACs")


def _share(macs: int, total: int) -> str:
    return f"{100 * macs / total:.1f}%" if total else "-"


OUTSIDE = "(outside submodules)"
NOT_CALLED = "(not called)"


def outside_submodules(result: CountResult) -> tuple[int, int]:
    """Params and MACs that no top-level submodule accounts for: parameters registered on the
    model itself, and functional calls in its own ``forward`` (``x @ w``, ``F.linear``). The
    per-layer rows plus this remainder add up to the totals."""
    return result.outside_submodules()


def _layer_rows(result: CountResult) -> list[tuple]:
    rows = [
        ("  " * (layer.depth - 1) + layer.name, layer.type, shape_str(layer.output_shape),
         f"{layer.params:,}", f"{layer.macs:,}", _share(layer.macs, result.macs))
        for layer in result.layers
    ]
    rows += [("  " * (m.depth - 1) + m.name, f"{m.type} {NOT_CALLED}", "-", f"{m.params:,}", "0", "-")
             for m in result.not_called]
    params, macs = outside_submodules(result)
    if result.layers and (max(params, 0) or macs):
        # negative: modules the forward calls that the model does not register (see summary_lines)
        rows.append((OUTSIDE, "forward", "", f"{max(params, 0):,}", f"{macs:,}", _share(macs, result.macs)))
    return rows


def summary_lines(result: CountResult) -> list[tuple[str, str, str]]:
    """(quantity, exact value, what it is) rows shared by every format."""
    rows = [
        ("parameters", f"{result.params:,}", f"{human(result.params)}; trainable {result.trainable_params:,}"),
        ("MACs", f"{result.macs:,}", f"{human(result.macs, 'MACs')}: multiply-accumulates of conv, linear and matmul "
                                      f"(the papers' mult-adds), whole batch"),
        ("FLOPs", f"{result.flops:,}", f"{human(result.flops, 'FLOPs')} = 2 x MACs"),
    ]
    if result.paper_flops:
        p = result.paper_flops
        rows.append(("paper's \"FLOPs\"", f"{result.macs:,}", f"= MACs: {p['paper']} counts multiply-adds as "
                     f"FLOPs"))
    for kind in OTHER_KINDS:
        n = result.other_ops.get(kind, 0)
        if n:
            rows.append((f"other: {kind}", f"{n:,}", f"{OTHER_KIND_MEANING[kind]}; not in MACs/FLOPs"))
    if result.fvcore is not None:
        fv = result.fvcore
        rows.append(("fvcore total", f"{fv['total']:,}", "fvcore 'flops': its conv/linear/matmul MACs plus the terms below"))
        rows.append(("  fvcore MAC terms", f"{fv['macs']:,}",
                     ", ".join(f"{k} {v:,}" for k, v in fv["mac_terms"].items())
                     + ("  (= archlab MACs)" if fv["agrees_with_archlab_macs"] else "  (DIFFERS from archlab MACs)")))
        if fv["other_terms"]:
            rows.append(("  fvcore other terms", f"{sum(fv['other_terms'].values()):,}",
                         ", ".join(f"{k} {v:,}" for k, v in fv["other_terms"].items())
                         + " (archlab counts these under other ops)"))
        if fv["unsupported_ops"]:
            rows.append(("  fvcore skipped", str(sum(fv["unsupported_ops"].values())),
                         ops_text(fv["unsupported_ops"])))
    if result.not_called:
        names = ", ".join(m.name for m in result.not_called)
        rows.append(("not called", f"{sum(m.params for m in result.not_called):,}",
                     f"parameters of {names}: registered, but the eval forward did not run them (training-only "
                     f"heads?); in the parameters above, no MACs counted"))
    params, _ = outside_submodules(result)
    if result.layers and params < 0:
        rows.append(("unregistered", f"{-params:,}", "parameters of modules the forward calls but the model does not "
                     "register (a plain list, not nn.ModuleList?): not in the parameters above"))
    if result.unsupported_ops:
        rows.append(("NOT COUNTED", str(sum(n for _, n in result.unsupported_ops)),
                     ops_text(result.unsupported_ops)))
    return rows


def _title(result: CountResult) -> str:
    engine = "meta trace, nothing run" if result.engine == "archlab" else "meta trace + fvcore on real tensors"
    if len(result.input_shapes) > 1:
        inputs = "inputs " + ", ".join(shape_str(s) for s in result.input_shapes)
    else:
        inputs = f"input {shape_str(result.input_shape)}"
    return f"{result.model}  {inputs}  ({result.engine} engine: {engine})"


def _totals_after(result: CountResult) -> str:
    """What follows a per-layer table that may be longer than a terminal (resnet152 at --depth 2
    is about 80 lines): the FLOPs and whether the count is complete, as torchinfo and Keras end
    with their totals. The parameters and MACs are the table's last row, in its columns."""
    if result.unsupported_ops:
        calls = sum(n for _, n in result.unsupported_ops)
        status = f"count PARTIAL: {calls:,} op call{'' if calls == 1 else 's'} not counted (NOT COUNTED above)"
    else:
        status = "count complete"
    return f"FLOPs {result.flops:,} ({human(result.flops, 'FLOPs')} = 2 x MACs); {status}\n"


def _layer_table(result: CountResult) -> str:
    """The per-layer table, ending with a total row under a rule: the totals where a terminal
    user sees them after a long table scrolled the summary away."""
    total = ("total", "", "", f"{result.params:,}", f"{result.macs:,}", "100.0%" if result.macs else "-")
    lines = text_table(LAYER_HEADERS, _layer_rows(result) + [total], "lllrrr").splitlines()
    lines.insert(len(lines) - 1, lines[1])  # the rule under the headers, again above the total
    return "\n".join(lines) + "\n" + _totals_after(result)


def render_text(result: CountResult) -> str:
    out = [_title(result), text_table(None, summary_lines(result), "lrl", max_width=200)]
    if result.layers:
        out.append(_layer_table(result))
    return "\n".join(out)


def _csv(result: CountResult) -> str:
    # status: the total row says whether the count is complete (JSON's unsupported_ops names what is not)
    rows = [(result.model, "(total)", 0, shape_str(result.output_shapes[0] if result.output_shapes else None),
             result.params, result.macs, result.flops, result.status)]
    rows += [(l.name, l.type, l.depth, shape_str(l.output_shape), l.params, l.macs, 2 * l.macs, "")
             for l in result.layers]
    rows += [(m.name, f"{m.type} {NOT_CALLED}", m.depth, "", m.params, 0, 0, "") for m in result.not_called]
    params, macs = outside_submodules(result)
    if result.layers and (max(params, 0) or macs):
        rows.append((OUTSIDE, "forward", 1, "", max(params, 0), macs, 2 * macs, ""))
    return csv_table(("name", "type", "depth", "output_shape", "params", "macs", "flops", "status"), rows)


def _md(result: CountResult) -> str:
    out = [f"### {_title(result)}\n", md_table(("quantity", "value", "meaning"), summary_lines(result), "lrl")]
    if result.layers:
        out.append("\n" + md_table(LAYER_HEADERS, [(r[0].strip(),) + r[1:] for r in _layer_rows(result)], "lllrrr"))
    return "\n".join(out)


def render(result: CountResult, fmt: str) -> str:
    """``archlab count``'s output in ``fmt`` (table, json, csv or md)."""
    return formats.render(fmt, table=lambda: render_text(result), json=lambda: to_json(result.to_dict()),
                          csv=lambda: _csv(result), md=lambda: _md(result))
