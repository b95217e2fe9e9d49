"""Renderers for ``archlab count``: a text table, JSON, CSV and markdown."""

from __future__ import annotations

from archlab.analysis.count import CountResult
from archlab.analysis.costs import OTHER_KIND_MEANING, OTHER_KINDS
from archlab.report import formats
from archlab.report.formats import csv_table, md_table, ops_text, text_table, to_json
from archlab.units import human, human_bytes, shape_str

LAYER_HEADERS = ("name", "type", "output shape", "params", "MACs", "share of MACs", "traffic", "FLOP/B")
TRAINING_HEADERS = ("name", "type", "output shape", "params", "forward MACs", "input-grad MACs",
                    "weight-grad MACs", "training MACs", "share of training")


def _share(macs: int, total: int) -> str:
    return f"{100 * macs / total:.1f}%" if total else "-"


OUTSIDE = "(outside submodules)"
NOT_CALLED = "(not called)"


def outside_submodules(result: CountResult) -> tuple[int, int]:
    """Params and MACs that no top-level submodule accounts for: parameters registered on the
    model itself, and functional calls in its own ``forward`` (``x @ w``, ``F.linear``). The
    per-layer rows plus this remainder add up to the totals."""
    return result.outside_submodules()


def _training_rows(result: CountResult) -> list[tuple]:
    total = result.training_macs
    rows = []
    for l in result.layers:
        step = l.macs + l.backward_macs
        rows.append(("  " * (l.depth - 1) + l.name, l.type, shape_str(l.output_shape), f"{l.params:,}",
                     f"{l.macs:,}", f"{l.input_grad_macs:,}", f"{l.weight_grad_macs:,}", f"{step:,}",
                     _share(step, total)))
    params, macs = outside_submodules(result)
    top = [l for l in result.layers if l.depth == 1]
    ig = result.training.input_grad_macs - sum(l.input_grad_macs for l in top)
    wg = result.training.weight_grad_macs - sum(l.weight_grad_macs for l in top)
    if result.layers and (max(params, 0) or macs or ig or wg):
        rows.append((OUTSIDE, "forward", "", f"{max(params, 0):,}", f"{macs:,}", f"{ig:,}", f"{wg:,}",
                     f"{macs + ig + wg:,}", _share(macs + ig + wg, total)))
    return rows


def training_lines(result: CountResult) -> list[tuple[str, str, str]]:
    """The training view's summary rows (count --training)."""
    t = result.training
    rows = [
        ("backward MACs", f"{t.backward_macs:,}", f"{human(t.backward_macs, 'MACs')} = input-gradient + weight-gradient "
                                                 "MACs, autograd's real backward of loss = sum(outputs)"),
        ("  input-gradient MACs", f"{t.input_grad_macs:,}",
         "gradients of activations (a conv's: the transposed conv of its output gradient)"),
        ("  weight-gradient MACs", f"{t.weight_grad_macs:,}", "gradients of parameters"),
        ("training MACs", f"{result.training_macs:,}",
         f"{human(result.training_macs, 'MACs')} = forward + backward, one step; FLOPs {2 * result.training_macs:,}"),
    ]
    if t.checkpoint:
        rows += [
            ("recompute MACs", f"{t.recompute_macs:,}",
             f"{human(t.recompute_macs, 'MACs')}: the forward of the {len(t.checkpointed)} checkpointed modules "
             f"(--checkpoint {','.join(t.checkpoint)}), run again in the backward"),
            ("training MACs with recompute", f"{result.training_macs + t.recompute_macs:,}",
             f"{human(result.training_macs + t.recompute_macs, 'MACs')} = training + recompute MACs; FLOPs "
             f"{2 * (result.training_macs + t.recompute_macs):,}"),
        ]
    reasons = result.training_reasons()
    ratio = "-" if result.training_ratio is None else f"{result.training_ratio:.3f}"
    if result.training_ratio is None:
        rows.append(("training / forward", ratio, result.training_note()))
    elif reasons:
        exact = result.training_macs == 3 * result.macs
        rows.append(("training / forward", ratio,
                     ("exactly 3, as forward + input gradient + weight gradient would be, but only because these "
                      "cancel:" if exact else
                      "not exactly 3 = forward + input gradient + weight gradient, each the forward's size:")))
        rows += [("", "", f"  {reason}") for reason in reasons]
    else:
        rows.append(("training / forward", ratio, result.training_note()))
    if t.frozen:
        rows.append(("frozen", f"{t.frozen_params:,}", f"parameters without gradient (--freeze {' '.join(t.frozen)})"))
    for kind in OTHER_KINDS:
        n = t.other_ops.get(kind, 0)
        if n:
            rows.append((f"backward other: {kind}", f"{n:,}", "one per element of the gradient; not in MACs/FLOPs"))
    return rows


def _traffic_cells(macs: int, traffic: int | None) -> tuple[str, str]:
    """A row's memory traffic (bytes read + written, each op alone) and arithmetic intensity."""
    if traffic is None:
        return "-", "-"
    return human_bytes(traffic), (f"{2 * macs / traffic:.1f}" if traffic else "-")


def _layer_rows(result: CountResult) -> list[tuple]:
    if result.training is not None:
        return _training_rows(result)
    rows = [
        ("  " * (layer.depth - 1) + layer.name, layer.type, shape_str(layer.output_shape),
         f"{layer.params:,}", f"{layer.macs:,}", _share(layer.macs, result.macs),
         *_traffic_cells(layer.macs, layer.traffic_bytes))
        for layer in result.layers
    ]
    rows += [("  " * (m.depth - 1) + m.name, f"{m.type} {NOT_CALLED}", "-", f"{m.params:,}", "0", "-", "-", "-")
             for m in result.not_called]
    params, macs = outside_submodules(result)
    if result.layers and (max(params, 0) or macs):
        # negative: modules the forward calls that the model does not register (see summary_lines)
        traffic = None
        if result.traffic_bytes is not None:
            traffic = result.traffic_bytes - sum(l.traffic_bytes or 0 for l in result.layers if l.depth == 1)
        rows.append((OUTSIDE, "forward", "", f"{max(params, 0):,}", f"{macs:,}", _share(macs, result.macs),
                     *_traffic_cells(macs, traffic)))
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
    if result.traffic_bytes is not None:
        ai = result.arithmetic_intensity
        rows.append(("memory traffic", f"{result.traffic_bytes:,}",
                     f"bytes: {human_bytes(result.read_bytes)} read + {human_bytes(result.written_bytes)} written, "
                     "each op alone (no cache reuse between ops), at the tensors' dtypes"))
        rows.append(("arithmetic intensity", "-" if ai is None else f"{ai:.2f}", "FLOPs per byte of traffic"))
    if result.training is not None:
        rows[1] = ("forward MACs", rows[1][1], rows[1][2] + "; training-mode forward")
        rows += training_lines(result)
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
    engine = {"archlab": ("built on the CPU (its builder reads tensor values), then a meta trace; no forward run"
                          if result.built_on_cpu else "meta trace, nothing run"),
              "real": f"real run, seed {result.seed}, the counts are for this input"}.get(
        result.engine, "meta trace + fvcore on real tensors")
    if len(result.input_shapes) > 1:
        inputs = "inputs " + ", ".join(shape_str(s) for s in result.input_shapes)
    else:
        inputs = f"input {shape_str(result.input_shape)}"
    if result.training is not None:
        engine = "meta trace of forward + backward, nothing run"
        return f"{result.model}  {inputs}  training step ({result.engine} engine: {engine})"
    return f"{result.model}  {inputs}  ({result.engine} engine: {engine})"


def _headers(result: CountResult) -> tuple[tuple[str, ...], str]:
    if result.training is not None:
        return TRAINING_HEADERS, "lllrrrrrr"
    return LAYER_HEADERS, "lllrrrrr"


def _totals_after(result: CountResult) -> str:
    """What follows a per-layer table that may be longer than a terminal (resnet152 at --depth 2
    is about 80 lines): the FLOPs and whether the count is complete, as torchinfo and Keras end
    with their totals. The parameters and MACs are the table's last row, in its columns."""
    if result.unsupported_ops:
        calls = sum(n for _, n in result.unsupported_ops)
        status = f"count PARTIAL: {calls:,} op call{'' if calls == 1 else 's'} not counted (NOT COUNTED above)"
    else:
        status = "count complete"
    if result.training is not None:
        flops = 2 * result.training_macs
        return f"training FLOPs {flops:,} ({human(flops, 'FLOPs')} = 2 x training MACs); {status}\n"
    return f"FLOPs {result.flops:,} ({human(result.flops, 'FLOPs')} = 2 x MACs); {status}\n"


def _layer_table(result: CountResult) -> str:
    """The per-layer table, ending with a total row under a rule: the totals where a terminal
    user sees them after a long table scrolled the summary away."""
    headers, align = _headers(result)
    if result.training is not None:
        t = result.training
        total = ("total", "", "", f"{result.params:,}", f"{result.macs:,}", f"{t.input_grad_macs:,}",
                 f"{t.weight_grad_macs:,}", f"{result.training_macs:,}", "100.0%" if result.training_macs else "-")
    else:
        total = ("total", "", "", f"{result.params:,}", f"{result.macs:,}", "100.0%" if result.macs else "-",
                 *_traffic_cells(result.macs, result.traffic_bytes))
    lines = text_table(headers, _layer_rows(result) + [total], align).splitlines()
    lines.insert(len(lines) - 1, lines[1])  # the rule under the headers, again above the total
    return "\n".join(lines) + "\n" + _totals_after(result)


def render_text(result: CountResult) -> str:
    out = [_title(result), text_table(None, summary_lines(result), "lrl", max_width=200)]
    if result.layers:
        out.append(_layer_table(result))
    return "\n".join(out)


def _training_csv(result: CountResult) -> str:
    t = result.training
    rows = [(result.model, "(total)", 0, shape_str(result.output_shapes[0] if result.output_shapes else None),
             result.params, result.macs, t.backward_macs, t.input_grad_macs, t.weight_grad_macs,
             result.training_macs, result.status)]
    rows += [(l.name, l.type, l.depth, shape_str(l.output_shape), l.params, l.macs, l.backward_macs,
              l.input_grad_macs, l.weight_grad_macs, l.macs + l.backward_macs, "") for l in result.layers]
    return csv_table(("name", "type", "depth", "output_shape", "params", "forward_macs", "backward_macs",
                      "input_grad_macs", "weight_grad_macs", "training_macs", "status"), rows)


def _csv(result: CountResult) -> str:
    if result.training is not None:
        return _training_csv(result)
    # status: the total row says whether the count is complete (JSON's unsupported_ops names what is not)
    rows = [(result.model, "(total)", 0, shape_str(result.output_shapes[0] if result.output_shapes else None),
             result.params, result.macs, result.flops, result.traffic_bytes, result.status)]
    rows += [(l.name, l.type, l.depth, shape_str(l.output_shape), l.params, l.macs, 2 * l.macs, l.traffic_bytes, "")
             for l in result.layers]
    rows += [(m.name, f"{m.type} {NOT_CALLED}", m.depth, "", m.params, 0, 0, "", "") for m in result.not_called]
    params, macs = outside_submodules(result)
    if result.layers and (max(params, 0) or macs):
        rows.append((OUTSIDE, "forward", 1, "", max(params, 0), macs, 2 * macs, "", ""))
    return csv_table(("name", "type", "depth", "output_shape", "params", "macs", "flops", "traffic_bytes", "status"),
                     rows)


def _md(result: CountResult) -> str:
    out = [f"### {_title(result)}\n", md_table(("quantity", "value", "meaning"), summary_lines(result), "lrl")]
    if result.layers:
        headers, align = _headers(result)
        out.append("\n" + md_table(headers, [(r[0].strip(),) + r[1:] for r in _layer_rows(result)], align))
    return "\n".join(out)


def render(result: CountResult, fmt: str) -> str:
    """``archlab count``'s output in ``fmt`` (table, json, csv or md)."""
    return formats.render(fmt, table=lambda: render_text(result), json=lambda: to_json(result.to_dict()),
                          csv=lambda: _csv(result), md=lambda: _md(result))
