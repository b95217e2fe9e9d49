"""Renderers for ``archlab memory`` (one model, or several side by side)."""

from __future__ import annotations

from archlab.analysis.memory import MemoryResult
from archlab.report import formats
from archlab.report.formats import csv_table, md_table, text_table, to_json
from archlab.units import human_bytes, shape_str


def _lines(r: MemoryResult) -> list[tuple[str, str, str]]:
    rows = [
        ("parameters", human_bytes(r.params_bytes), f"{r.params:,} params at {r.dtype}; buffers {human_bytes(r.buffers_bytes)}"),
        ("inference peak", human_bytes(r.activation_peak_bytes),
         f"live activations, each freed after its last consumer; reached at {r.activation_peak_at or '-'}"),
        ("inference peak (eager)", human_bytes(r.activation_peak_held_bytes),
         f"also held while a module that received it runs, as eager PyTorch does; at {r.activation_peak_held_at or '-'}"),
        ("training activations", _bytes(r.training_activation_bytes),
         "saved by autograd for the backward pass" if r.training_note is None else r.training_note),
        ("M(G)", human_bytes(r.mg_bytes), f"max over ops of inputs + outputs + |op| ({_ws(r)}); at {r.mg_op or '-'}"),
        ("largest activation", human_bytes(r.max_tensor_bytes), "one tensor"),
    ]
    if r.fused_types:
        fused = ", ".join(r.fused_types)
        rows.append(("M(G), fused", human_bytes(r.mg_fused_bytes),
                     f"each {fused} one op, inner tensors disposable; at {r.mg_fused_op or '-'}"))
        rows.append(("largest activation, fused", human_bytes(r.max_tensor_fused_bytes),
                     f"materialized tensors only, with {fused} fused"))
    if r.measured_peak_bytes is not None:
        rows.append(("measured peak", human_bytes(r.measured_peak_bytes),
                     f"{r.measured_method}; predicted eager {r.measured_dtype or 'fp32'} peak "
                     f"{human_bytes(r.predicted_for_measure_bytes)}, "
                     f"{r.measured_diff_percent:+.1f}%"))
    return rows


def _bytes(n: int | None) -> str:
    return "-" if n is None else human_bytes(n)


def _ws(r: MemoryResult) -> str:
    return "|op| = 0" if r.workspace == "none" else "|op| = im2col buffer of each k>1 convolution"


def _title(r: MemoryResult) -> str:
    return (f"{r.model}  input {shape_str(r.input_shape)}  (activations at {r.act_dtype}, parameters at {r.dtype}; "
            "KiB/MiB = 1024/1024^2 bytes, whole batch)")


COMPARE_HEADERS = ("model", "params", "inference peak", "eager peak", "training", "M(G)", "M(G) fused",
                   "largest tensor", "largest, fused")


def _compare_row(r: MemoryResult) -> tuple:
    return (r.model, human_bytes(r.params_bytes), human_bytes(r.activation_peak_bytes),
            human_bytes(r.activation_peak_held_bytes), _bytes(r.training_activation_bytes),
            human_bytes(r.mg_bytes), human_bytes(r.mg_fused_bytes) if r.fused_types else "-",
            human_bytes(r.max_tensor_bytes), human_bytes(r.max_tensor_fused_bytes) if r.fused_types else "-")


CSV_KEYS = ("model", "params_bytes", "activation_peak_bytes", "activation_peak_held_bytes",
            "training_activation_bytes", "mg_bytes", "mg_fused_bytes", "max_tensor_bytes", "max_tensor_fused_bytes",
            "act_dtype", "dtype")


def _json(results: list[MemoryResult]) -> str:
    data = [r.to_dict() for r in results]
    return to_json(data[0] if len(data) == 1 else data)


def _csv(results: list[MemoryResult]) -> str:
    return csv_table(CSV_KEYS, [[r.to_dict().get(k) for k in CSV_KEYS] for r in results])


def _caption(results: list[MemoryResult]) -> str:
    acts = {r.act_dtype for r in results}
    caption = (f"activations at {'/'.join(sorted(acts))}; M(G) = max over ops of inputs + outputs (|op| = 0); "
               "fused: MobileNetV2's inverted residual blocks as single ops")
    failed = [r for r in results if r.training_note is not None]
    if failed:
        caption += f"\ntraining '-': {'; '.join(f'{r.model}: {r.training_note}' for r in failed)}"
    return caption


def _table(results: list[MemoryResult]) -> str:
    if len(results) == 1:
        r = results[0]
        return _title(r) + "\n" + text_table(None, _lines(r), "lrl", max_width=200)
    return text_table(COMPARE_HEADERS, [_compare_row(r) for r in results], "lrrrrrrrr") + _caption(results) + "\n"


def _md(results: list[MemoryResult]) -> str:
    if len(results) == 1:
        r = results[0]
        return f"### {_title(r)}\n\n" + md_table(("quantity", "bytes", "what"), _lines(r), "lrl")
    return (md_table(COMPARE_HEADERS, [_compare_row(r) for r in results], "lrrrrrrrr") + "\n" + _caption(results)
            + "\n")


def render(results: list[MemoryResult], fmt: str) -> str:
    """``archlab memory``'s output in ``fmt``: one model's quantities, or several models side by side."""
    return formats.render(fmt, table=lambda: _table(results), json=lambda: _json(results),
                          csv=lambda: _csv(results), md=lambda: _md(results))
