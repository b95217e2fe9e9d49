"""Receptive field, effective stride (jump) and first-unit centre, on the real data-flow graph.

For every traced value with spatial extent (the last two dimensions of a tensor of four or
more dimensions) the analysis keeps, per spatial axis:

* ``rf``: how many input pixels one unit sees;
* ``jump``: the distance in input pixels between neighbouring units (the effective stride);
* ``start``: the input coordinate of the centre of the first unit (input pixel i has centre i).

A layer with kernel k, stride s, padding p and dilation d (k_eff = d(k - 1) + 1) maps
(rf, jump, start) to (rf + (k_eff - 1)·jump, jump·s, start + ((k_eff - 1)/2 - p)·jump).
Transposed convolution and upsampling divide the jump. At a merge (a residual add, a
concatenation, a skip) the output sees the union of its inputs' fields (the largest of them
when their centres coincide), and inputs whose grids differ (jump or centre) are reported.

Ops are followed in the order of the data flow, not of execution: a branch's field depends
only on the values it reads. A tensor with no spatial extent left (global pooling, flatten)
ends the field; when such a tensor is broadcast back over a feature map (a squeeze-and-
excitation gate), the output is flagged ``global_context``: every unit then depends on the
whole input, although its local field is what the convolutions give.

A model whose input has one spatial axis (N, C, L: Conv1d stacks) is analysed along L: its
field has extent 1 on the H axis, so ``rf``, ``jump`` and ``start`` of the W axis are the 1-D ones.
For volumetric (N, C, D, H, W) values only H and W are analysed; ``RFAnalysis.notes`` says so.

Adaptive pooling whose input size is not a multiple of its output size has windows of two widths
at a non-integer spacing In/Out: the field takes the widest window and the jump In/Out. A later
conv or pool that reads n consecutive pooled units sees the union of their windows, whose width
varies with the unit; ``Field.snap`` keeps what is needed to give the widest such union exactly
(the affine rule rf + (k - 1)·jump would be off by a fraction of a pixel). ``start`` on such a
grid is the first unit's centre; later centres are only about start + i·jump.

After a transposed convolution, an up-sampling or a pixel shuffle, neighbouring units read
different input windows: the field depends on the unit's position modulo a period. Beside the
affine (rf, jump, start), every ``Field`` carries ``phase``, per axis the exact windows of one period
of units (``Phase``): its smallest and largest width are the field's ``rf_min`` and ``rf_max``
(``describe``), the period is in units of the layer's own grid, and the windows of the units that
exist say whether any of them reads past the input's border (padding, ``sees_padding``).

The windows of ``phase`` are those of an unbounded input. Near the border a unit reads fewer
pixels: those past the input are padding, and so are the pixels that a truncating layer (a stride-2
convolution without padding on an even size) leaves to no unit of its map, and which no later unit
can therefore depend on. ``RFAnalysis.cover`` keeps, per value, the input pixels its units reach at
all, and ``RFAnalysis.window(value, unit)`` gives one unit's exact input pixels: its window clipped
to that cover (tests/test_rf_support.py checks it against the input gradient on every model).

An op without a rule that changes the spatial grid stops the field: its output and everything
computed from it get no ``Field`` but an entry in ``RFAnalysis.unknown`` naming that op, so a
headline (``headline``) says the field is unknown rather than naming an earlier layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable

from archlab.trace.rules import OpRules
from archlab.trace.graph import Call, Op, Trace
from archlab.spec import check_depth
from archlab.units import SCHEMA_VERSION

# --- exact windows per unit position ----------------------------------------------------------
# One axis of a grid: (period P, advance D, windows). Unit o = q P + r reads the input pixels
# windows[r][0] + q D .. windows[r][1] + q D (the input is unbounded: pixels below 0 or past the
# input's size are padding); a window of None reads nothing (a transposed convolution whose
# kernel is narrower than its stride leaves such units). Coordinates are whole input pixels.
Phase = tuple[int, int, tuple[tuple[int, int] | None, ...]]
_MAX_PERIOD = 4096  # beyond this the exact windows are dropped (the affine field remains)
_IDENTITY: Phase = (1, 1, ((0, 0),))


def unit_window(ph: Phase, i: int) -> tuple[int, int] | None:
    period, advance, windows = ph
    q, r = divmod(i, period)
    w = windows[r]
    return None if w is None else (w[0] + q * advance, w[1] + q * advance)


def _hull(windows) -> tuple[int, int] | None:
    ws = [w for w in windows if w is not None]
    return (min(w[0] for w in ws), max(w[1] for w in ws)) if ws else None


def _reduce(period: int, advance: int, windows: tuple) -> Phase:
    """The shortest period that repeats the windows (shifted by the advance per period)."""
    for p in range(1, period):
        if period % p or (advance * p) % period:
            continue
        d = advance * p // period
        if all(_shifted(windows[o], d) == windows[o + p] for o in range(period - p)):
            return (p, d, windows[:p])
    return (period, advance, windows)


def _shifted(w: tuple[int, int] | None, d: int) -> tuple[int, int] | None:
    return None if w is None else (w[0] + d, w[1] + d)


def _phase_map(ph: Phase | None, taps: Callable[[int], Any], a: int, b: int) -> Phase | None:
    """The next grid's windows: unit o reads the previous grid's units ``taps(o)``, and
    taps(o + b) = taps(o) + a (every ``b`` units the op moves ``a`` units along its input)."""
    if ph is None:
        return None
    period, advance, _ = ph
    g = math.gcd(a, period)
    new_period, new_advance = b * period // g, a // g * advance
    if new_period > _MAX_PERIOD:
        return None
    windows = tuple(_hull(unit_window(ph, i) for i in taps(o)) for o in range(new_period))
    return _reduce(new_period, new_advance, windows)


def _ratio(n_in: int, n_out: int) -> tuple[int, int]:
    r = Fraction(n_in, n_out)
    return r.numerator, r.denominator


def _phase_conv(ph, k: int, s: int, p: int, d: int) -> Phase | None:
    return _phase_map(ph, lambda o: [o * s - p + j * d for j in range(k)], s, 1)


def _phase_transposed(ph, k: int, s: int, p: int, d: int) -> Phase | None:
    # output unit o = i s - p + j d gathers input unit i for every tap j that lands on it
    return _phase_map(ph, lambda o: [(o + p - j * d) // s for j in range(k) if (o + p - j * d) % s == 0], 1, s)


def _phase_adaptive(ph, n_in: int, n_out: int) -> Phase | None:
    a, b = _ratio(n_in, n_out)
    return _phase_map(ph, lambda o: range((o * n_in) // n_out, -(-(o + 1) * n_in // n_out)), a, b)


def _phase_upsample(ph, n_in: int, n_out: int, mode: str) -> Phase | None:
    """PyTorch's index rules away from the border: nearest reads floor(o In/Out), nearest-exact
    floor((o + 1/2) In/Out); linear and cubic interpolation read around src = (o + 1/2) In/Out - 1/2
    (2 and 4 units; only the unit at src when src falls on one)."""
    a, b = _ratio(n_in, n_out)
    if mode == "nearest":
        return _phase_map(ph, lambda o: [o * a // b], a, b)
    if mode == "exact":
        return _phase_map(ph, lambda o: [(2 * o + 1) * a // (2 * b)], a, b)

    def taps(o):
        num, den = (2 * o + 1) * a - b, 2 * b  # src = num / den
        i0 = num // den
        if num % den == 0:
            return [i0]
        return [i0, i0 + 1] if mode == "linear" else [i0 - 1, i0, i0 + 1, i0 + 2]

    return _phase_map(ph, taps, a, b)


def _phase_union(phases) -> Phase | None:
    """Units of a merge read the union of their inputs' windows (all on one grid)."""
    if any(ph is None for ph in phases) or len({Fraction(ph[1], ph[0]) for ph in phases}) > 1:
        return None
    period = math.lcm(*(ph[0] for ph in phases))
    if period > _MAX_PERIOD:
        return None
    advance = phases[0][1] * period // phases[0][0]
    windows = tuple(_hull(unit_window(ph, o) for ph in phases) for o in range(period))
    return _reduce(period, advance, windows)


def _axes(f_phase, fn) -> tuple[Phase, Phase] | None:
    """Apply ``fn(axis, phase)`` to both axes; None when either axis is not followed exactly."""
    if f_phase is None:
        return None
    out = tuple(fn(a, f_phase[a]) for a in range(2))
    return None if any(ph is None for ph in out) else out


def phase_widths(ph: Phase) -> tuple[int, int]:
    """The smallest and largest window over the positions of one period (empty windows left out)."""
    widths = [w[1] - w[0] + 1 for w in ph[2] if w is not None]
    return (min(widths), max(widths)) if widths else (0, 0)


def sees_padding(f: Field, out_hw: tuple[int, int], in_hw: tuple[int, int]) -> bool | None:
    """Whether a unit of an ``out_hw`` map reads past the border of the ``in_hw`` input (padding,
    or a transposed convolution's missing neighbours); None when the exact windows are unknown."""
    if f.phase is None:
        return None
    for a in range(2):
        windows = [w for o in range(out_hw[a]) for w in [unit_window(f.phase[a], o)] if w is not None]
        if windows and (min(w[0] for w in windows) < 0 or max(w[1] for w in windows) > in_hw[a] - 1):
            return True
    return False


@dataclass(frozen=True)
class Field:
    rf: tuple[float, float]  # (H, W)
    jump: tuple[float, float]
    start: tuple[float, float]
    global_context: bool = False
    # per axis, behind adaptive pooling whose windows have two widths (Out does not divide In):
    # (field and jump before the pooling, In, Out, pooled units spanned beyond the first); ``rf``
    # is then the widest unit's field, computed from the windows rather than from the jump
    snap: tuple[tuple[float, float, int, int, float], ...] | None = None
    # per axis (H, W), the exact windows of one period of units; None where not followed exactly
    phase: tuple[Phase, Phase] | None = None

    def bounds(self, axis: int) -> tuple[float, float]:
        half = (self.rf[axis] - 1) / 2
        return self.start[axis] - half, self.start[axis] + half


@dataclass(frozen=True)
class Misalignment:
    op: str
    module: str
    jumps: tuple[tuple[float, float], ...]
    starts: tuple[tuple[float, float], ...]


@dataclass
class RFAnalysis:
    fields: dict[int, Field]  # value id -> field
    misaligned: list[Misalignment] = field(default_factory=list)
    unsupported: dict[str, int] = field(default_factory=dict)  # ops whose spatial mapping is unknown
    unknown: dict[int, str] = field(default_factory=dict)  # value id -> the op past which its field is unknown
    notes: list[str] = field(default_factory=list)  # what the analysis leaves out (1-D / 3-D inputs, guesses)
    # value id -> per axis (H, W), the input pixels its units read at all, (lo, hi) or None: a map
    # whose units do not reach the input's last pixels (a stride-2 valid convolution of an even
    # size drops the last one) leaves them out of every later unit's window
    cover: dict[int, tuple[tuple[int, int] | None, tuple[int, int] | None]] = field(default_factory=dict)

    def of(self, vid: int) -> Field | None:
        return self.fields.get(vid)

    def window(self, vid: int, unit: tuple[int, int]) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """The input pixels unit (y, x) of value ``vid`` reads, per axis (H, W): its window
        (``unit_window``) clipped to the pixels the maps before it reach (``cover``: the input's
        border, and pixels that a truncating layer drops); None on an axis where it reads none.
        Needs the exact windows (``Field.phase``)."""
        f = self.fields[vid]
        if f.phase is None:
            raise ValueError("the exact windows of this value were not followed (Field.phase is None)")
        cover = self.cover.get(vid, (None, None))
        out = []
        for a in range(2):
            w, c = unit_window(f.phase[a], unit[a]), cover[a]
            lo, hi = (max(w[0], c[0]), min(w[1], c[1])) if w is not None and c is not None else (0, -1)
            out.append((lo, hi) if lo <= hi else None)
        return out[0], out[1]


def _spatial(shape: tuple[int, ...], line: bool = False) -> tuple[int, int] | None:
    if len(shape) >= 4:
        return (shape[-2], shape[-1])
    return (1, shape[-1]) if line and len(shape) == 3 else None


def _span_width(n_in: int, n_out: int, units: int) -> int:
    """The widest union of ``units`` consecutive adaptive windows, in input units: window i spans
    floor(i*In/Out) .. ceil((i+1)*In/Out) - 1. Runs inside the pooled map are compared; a run
    longer than the map continues the windows with period Out (their widths repeat so). A later
    stride may skip the widest run: the value is then an upper bound."""
    starts = range(n_out - units + 1) if units <= n_out else range(n_out)
    return max(-(-(j + units) * n_in // n_out) - (j * n_in) // n_out for j in starts)


def _snapped(snap: tuple[float, float, int, int, float]) -> float:
    """The field of a unit on a grid behind non-divisible adaptive pooling: base + (w - 1) * pitch
    for w the widest union of the (span + 1) pooled windows it reads."""
    base, pitch, n_in, n_out, span = snap
    units = round(span) + 1
    if abs(span + 1 - units) < 1e-9:
        return base + (_span_width(n_in, n_out, units) - 1) * pitch
    # a fractional span (a later op with a fractional stride): the affine value, rounded up to the grid
    affine = (_span_width(n_in, n_out, 1) - 1 + span * n_in / n_out) * pitch
    return base + math.ceil(affine / pitch - 1e-9) * pitch


def _geom(f: Field, kernel, stride, padding, dilation) -> Field:
    rf, jump, start, snap = [], [], [], []
    for a in range(2):
        k_eff = dilation[a] * (kernel[a] - 1) + 1
        if f.snap is None:
            rf.append(f.rf[a] + (k_eff - 1) * f.jump[a])
        else:  # a grid with rounded positions: count the pooled windows the unit spans
            base, pitch, n_in, n_out, span = f.snap[a]
            span += (k_eff - 1) * f.jump[a] / (pitch * n_in / n_out)
            snap.append((base, pitch, n_in, n_out, span))
            rf.append(_snapped(snap[-1]))
        start.append(f.start[a] + ((k_eff - 1) / 2 - padding[a]) * f.jump[a])
        jump.append(f.jump[a] * stride[a])
    phase = _axes(f.phase, lambda a, ph: _phase_conv(ph, int(kernel[a]), int(stride[a]), int(padding[a]),
                                                     int(dilation[a])))
    return Field(tuple(rf), tuple(jump), tuple(start), f.global_context, tuple(snap) if snap else None, phase)


def _adaptive(f: Field, in_sp, out_sp) -> Field:
    """Adaptive pooling: window i spans floor(i*In/Out) .. ceil((i+1)*In/Out) - 1. The field takes
    the widest window; the jump is In/Out, not an integer when Out does not divide In."""
    rf, jump, start, snap = [], [], [], []
    exact = all(i % o == 0 for i, o in zip(in_sp, out_sp))
    for a in range(2):
        n_in, n_out = in_sp[a], out_sp[a]
        first = -(-n_in // n_out)  # window 0: 0 .. ceil(In/Out) - 1
        rf.append(f.rf[a] + (_span_width(n_in, n_out, 1) - 1) * f.jump[a])
        start.append(f.start[a] + (first - 1) / 2 * f.jump[a])
        jump.append(f.jump[a] * n_in / n_out)
        snap.append((f.rf[a], f.jump[a], n_in, n_out, 0.0))
    phase = _axes(f.phase, lambda a, ph: _phase_adaptive(ph, in_sp[a], out_sp[a]))
    return Field(tuple(rf), tuple(jump), tuple(start), f.global_context, None if exact else tuple(snap), phase)


def _transposed(f: Field, kernel, stride, padding, dilation) -> Field:
    rf, jump, start = [], [], []
    for a in range(2):
        k_eff = dilation[a] * (kernel[a] - 1) + 1
        # one output unit gathers from at most ceil(k_eff / s) input units
        rf.append(f.rf[a] + (math.ceil(k_eff / stride[a]) - 1) * f.jump[a])
        start.append(f.start[a] + (padding[a] - (k_eff - 1) / 2) / stride[a] * f.jump[a])
        jump.append(f.jump[a] / stride[a])
    phase = _axes(f.phase, lambda a, ph: _phase_transposed(ph, int(kernel[a]), int(stride[a]), int(padding[a]),
                                                           int(dilation[a])))
    return Field(tuple(rf), tuple(jump), tuple(start), f.global_context, None, phase)


def _union(fields: list[Field]) -> Field:
    rf, start = [], []
    for a in range(2):
        lo = min(f.bounds(a)[0] for f in fields)
        hi = max(f.bounds(a)[1] for f in fields)
        rf.append(hi - lo + 1)
        start.append((lo + hi) / 2)
    jump = tuple(min(f.jump[a] for f in fields) for a in range(2))
    phase = None
    if all(f.phase is not None for f in fields):
        phase = _axes(fields[0].phase, lambda a, _: _phase_union([f.phase[a] for f in fields]))
    return Field(tuple(rf), jump, tuple(start), any(f.global_context for f in fields), None, phase)


def _last2(seq, fill=1) -> tuple:
    """(H, W) of a per-axis tuple; a 1-D op's single value is its W (L) axis, H is left as ``fill``."""
    seq = tuple(seq)
    if len(seq) >= 2:
        return seq[-2:]
    return (fill, seq[0]) if seq else (fill, fill)


_NONLOCAL = ("grid_sampler_2d", "grid_sampler_3d", "grid_sampler", "_fft_r2c", "_fft_c2c", "_fft_c2r",
             "fft_fft2", "fft_rfft2", "fft_ifft2", "fft_irfft2")
# a product of two activations (q @ k^T, its softmax @ v) or a fused attention: mixes every position
_ATTENTION = ("bmm", "mm", "matmul", "baddbmm", "scaled_dot_product_attention", "_scaled_dot_product_attention_math",
              "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu",
              "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention")
_PADS = ("constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
         "replication_pad1d", "replication_pad2d", "replication_pad3d")


class _Walker:
    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.fields: dict[int, Field] = {}
        self.global_values: set[int] = set()  # values computed from the whole input (global pooling)
        self.from_input: set[int] = set(trace.inputs)  # values the data flow computes from the inputs
        self.attention: str | None = None  # the first op multiplying two of them (attention's q @ k^T)
        self.result = RFAnalysis(self.fields)
        in_dims = {len(trace.values[vid].shape) for vid in trace.inputs}
        self.line = in_dims == {3}  # (N, C, L): a 1-D model, analysed along L
        for vid in trace.inputs:
            sp = self.spatial(vid)
            if sp:
                self.fields[vid] = Field((1, 1), (1, 1), (0.0, 0.0), phase=(_IDENTITY, _IDENTITY))
                self.result.cover[vid] = ((0, sp[0] - 1), (0, sp[1] - 1))
        if self.line:
            self.result.notes.append("1-D input (N, C, L): the field is along L (the H extent is 1)")
        if any(d >= 5 for d in in_dims):
            self.result.notes.append("volumetric input: the field is given for the last two axes (H, W) only; "
                                     "the depth axis is not analysed")

    def shape(self, vid: int) -> tuple[int, ...]:
        return self.trace.values[vid].shape

    def spatial(self, vid: int) -> tuple[int, int] | None:
        return _spatial(self.shape(vid), self.line)

    def run(self) -> RFAnalysis:
        for op in self.trace.ops:
            self._follow_data(op)
            self.visit(op)
        if self.attention is not None:
            self.result.notes.append(
                f"attention ({self.attention}: a product of two activations, q @ k^T and its softmax @ v, mixes "
                f"every token position) makes every output after it depend on the whole input; the field shown "
                f"is the convolutional one, before it")
        return self.result

    def _follow_data(self, op) -> None:
        """Which values come from the input, and whether an op multiplies two of them (attention)."""
        read = [v for v in op.inputs if v in self.from_input]
        if not read:
            return
        self.from_input.update(op.outputs)
        if self.attention is None and op.name in _ATTENTION and len(read) >= 2:
            self.attention = op.name

    def visit(self, op) -> None:
        if not op.outputs:
            return
        lost = next((self.result.unknown[v] for v in op.inputs if v in self.result.unknown), None)
        if lost is not None and self.spatial(op.outputs[0]):
            self._unknown(op, lost)  # computed from a value whose field is unknown
            return
        ins = [v for v in op.inputs if v in self.fields]
        is_global = any(v in self.global_values for v in op.inputs)
        out = op.outputs[0]
        out_sp = self.spatial(out)
        if not ins:
            if is_global:
                self.global_values.update(op.outputs)
            return
        rule = RF_RULES.get(op)
        first = self.fields[ins[0]]
        if rule is None:
            self._generic(op, ins, out_sp, is_global)
        else:
            rule(self, op, first, self.spatial(ins[0]), out_sp, ins, is_global)

    # helpers
    def _pool_args(self, op):
        a = op.attrs
        return (_last2(a["kernel"]), _last2(a["stride"]), _last2(a["padding"], 0),
                _last2(a.get("dilation", (1, 1))))

    def _pad_left(self, op, in_sp, out_sp) -> tuple[float, float]:
        """Padding before the first unit, (H, W). torch's pad lists go from the last axis: (W left,
        W right, H top, H bottom, ...)."""
        pad = op.attrs.get("pad")
        if pad is None and op.call >= 0:
            call = self.trace.calls[op.call]
            p = call.attrs.get("padding")
            if call.type.startswith(("Reflection", "Replication")) and p is not None:
                pad = (p,) * 4 if isinstance(p, int) else p
        if pad is None:  # a functional pad whose amounts the trace did not record: assume it is centred
            added = [o - i for o, i in zip(out_sp, in_sp)]
            self.result.notes.append(f"{op.target}: padding amounts not recorded; the grid's first centre "
                                     f"assumes {added} split evenly (the field's size is exact)")
            return (added[0] // 2, added[1] // 2)
        pad = list(pad)
        return (pad[2] if len(pad) > 2 else 0, pad[0] if pad else 0)

    def _set(self, op, f: Field | None) -> None:
        if f is None:
            return
        for vid in op.outputs:
            sp = self.spatial(vid)
            if sp is not None:
                self.fields[vid] = f
                self.result.cover[vid] = self._cover(op, f, sp)

    def _cover(self, op, f: Field, out_sp) -> tuple:
        """The input pixels an output of ``op`` reads at all, per axis: what its inputs reach (their
        hull), within the windows of its first and last units (a truncating layer's map ends early)."""
        covers = [self.result.cover[v] for v in op.inputs if v in self.result.cover]
        out = []
        for a in range(2):
            reach = [c[a] for c in covers if c[a] is not None]
            c = (min(r[0] for r in reach), max(r[1] for r in reach)) if reach else None
            if c is not None and f.phase is not None:
                period, n = f.phase[a][0], int(out_sp[a])
                first = [w for o in range(min(period, n)) for w in [unit_window(f.phase[a], o)] if w is not None]
                last = [w for o in range(max(0, n - period), n) for w in [unit_window(f.phase[a], o)] if w is not None]
                c = (max(c[0], min(w[0] for w in first)), min(c[1], max(w[1] for w in last))) if first else None
                c = c if c is None or c[0] <= c[1] else None
            out.append(c)
        return out[0], out[1]

    def _unknown(self, op, origin: str) -> None:
        for vid in op.outputs:
            if self.spatial(vid) is not None:
                self.result.unknown[vid] = origin

    def _end_global(self, op) -> None:
        self.global_values.update(op.outputs)

    def _slice(self, op, first: Field) -> None:
        in_shape = self.shape(op.inputs[0])
        dim, start, step = op.attrs.get("slice", (0, 0, 1))
        dim %= len(in_shape)
        axis = dim - (len(in_shape) - 2)
        if self.line and len(in_shape) == 3:
            axis = 1 if dim == 2 else -1  # (N, C, L): only L is spatial
        if axis < 0:
            self._set(op, first)
            return
        starts, jumps = list(first.start), list(first.jump)
        starts[axis] += start * first.jump[axis]
        jumps[axis] *= step
        phase = _axes(first.phase, lambda a, ph: _phase_map(ph, lambda o: [start + o * step], step, 1)
                      if a == axis else ph)
        self._set(op, Field(first.rf, tuple(jumps), tuple(starts), first.global_context, None, phase))

    def _merge(self, op, ins) -> None:
        fields = [self.fields[v] for v in ins]
        if len({(f.jump, f.start) for f in fields}) > 1:
            call = self.trace.calls[op.call].name if op.call >= 0 else ""
            self.result.misaligned.append(Misalignment(op.target, call, tuple(f.jump for f in fields),
                                                       tuple(f.start for f in fields)))
        self._set(op, fields[0] if len(set(fields)) == 1 else _union(fields))

    def _generic(self, op, ins, out_sp, is_global) -> None:
        """Ops that keep the grid (element-wise, normalization, cat, views): the output sees the
        union of the inputs that share its grid; a broadcast global input adds global context."""
        if out_sp is None:
            return  # flatten, linear: no spatial extent left
        same = [v for v in ins if self.spatial(v) == out_sp]
        if not same:
            self.result.unsupported[op.target] = self.result.unsupported.get(op.target, 0) + 1
            self._unknown(op, op.target)
            return
        self._merge(op, same)
        gate = is_global or any(self.spatial(v) == (1, 1) and v in self.fields for v in op.inputs
                                if v not in same)
        if gate:
            for vid in op.outputs:
                f = self.fields.get(vid)
                if f is not None and not f.global_context:
                    self.fields[vid] = Field(f.rf, f.jump, f.start, True, f.snap, f.phase)


# --- the per-op rules of the walk -------------------------------------------------------
# op -> fn(walker, op, field of its first input with a field, that input's (H, W), the output's
# (H, W) or None, inputs with a field, whether an input is global); ops without a rule keep the
# grid (``_Walker._generic``)
RF_RULES: OpRules[Callable[..., None]] = OpRules("receptive-field rule")


@RF_RULES.rule("convolution")
def _rf_convolution(w: _Walker, op: Op, first: Field, in_sp, out_sp, ins, is_global) -> None:
    a = op.attrs
    fn = _transposed if a["transposed"] else _geom
    k, s = _last2(a["kernel"]), _last2(a["stride"])
    p, d = _last2(a["padding"], 0), _last2(a["dilation"])
    w._set(op, fn(first, k, s, p, d) if out_sp else None)


@RF_RULES.rule("max_pool2d_with_indices", "max_pool2d", "avg_pool2d", "avg_pool3d", "max_pool3d_with_indices")
def _rf_pool(w: _Walker, op: Op, first: Field, in_sp, out_sp, ins, is_global) -> None:
    kernel, stride, padding, dilation = w._pool_args(op)
    w._set(op, _geom(first, kernel, stride, padding, dilation))


@RF_RULES.rule("_adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool2d")
def _rf_adaptive(w: _Walker, op: Op, first: Field, in_sp, out_sp, ins, is_global) -> None:
    if out_sp and out_sp == in_sp:
        w._set(op, first)
    elif out_sp and out_sp != (1, 1):
        w._set(op, _adaptive(first, in_sp, out_sp))
    else:
        w._end_global(op)


@RF_RULES.rule("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "upsample_linear1d",
               "upsample_bilinear2d", "upsample_bicubic2d", "upsample_trilinear3d", "_upsample_nearest_exact2d",
               "pixel_shuffle")
def _rf_upsample(w: _Walker, op: Op, first: Field, in_sp, out_sp, ins, is_global) -> None:
    # pixel_shuffle: output unit o reads input unit o // r, as nearest upsampling by r does
    name = op.name
    scale = tuple(o / i for o, i in zip(out_sp, in_sp))
    extra = 1 if "linear" in name or "bicubic" in name else 0  # interpolation reads 2 (or 4) neighbours
    extra = 3 if "bicubic" in name else extra
    rf = tuple(first.rf[a] + extra * first.jump[a] for a in range(2))
    jump = tuple(first.jump[a] / scale[a] for a in range(2))
    start = tuple(first.start[a] + (0.5 / scale[a] - 0.5) * first.jump[a] for a in range(2))
    mode = ("exact" if "exact" in name else "nearest" if "nearest" in name or name == "pixel_shuffle"
            else "cubic" if "bicubic" in name else "linear")
    phase = _axes(first.phase, lambda a, ph: _phase_upsample(ph, in_sp[a], out_sp[a], mode))
    w._set(op, Field(rf, jump, start, first.global_context, None, phase))


@RF_RULES.rule("pixel_unshuffle")
def _rf_pixel_unshuffle(w: _Walker, op: Op, first: Field, in_sp, out_sp, ins, is_global) -> None:
    # output unit (y, x) gathers the r x r block at (y r, x r) into its channels: a k = s = r window
    r = tuple(i // o for i, o in zip(in_sp, out_sp))
    w._set(op, _geom(first, r, r, (0, 0), (1, 1)))


@RF_RULES.rule("mean", "sum", "amax", "amin", "max", "var_mean", "var", "std")
def _rf_reduction(w: _Walker, op: Op, first: Field, in_sp, out_sp, ins, is_global) -> None:
    if out_sp and out_sp == in_sp:
        w._merge(op, ins)
    else:
        w._end_global(op)


@RF_RULES.rule("slice")
def _rf_slice(w: _Walker, op: Op, first: Field, in_sp, out_sp, ins, is_global) -> None:
    w._slice(op, first)


@RF_RULES.rule(*_NONLOCAL)
def _rf_nonlocal(w: _Walker, op: Op, first: Field, in_sp, out_sp, ins, is_global) -> None:
    # these read the map anywhere (grid_sample, FFTs), although their output may keep the grid
    w.result.unsupported[op.target] = w.result.unsupported.get(op.target, 0) + 1
    w._unknown(op, op.target)


@RF_RULES.rule(*_PADS)
def _rf_pad(w: _Walker, op: Op, first: Field, in_sp, out_sp, ins, is_global) -> None:
    if not out_sp:
        w._generic(op, ins, out_sp, is_global)
        return
    # reflection and replication padding repeat units of the input, constant padding adds
    # units that see nothing: either way the units keep their fields; the grid gains a margin
    left = w._pad_left(op, in_sp, out_sp)
    start = tuple(first.start[a] - left[a] * first.jump[a] for a in range(2))
    phase = _axes(first.phase, lambda a, ph: _phase_map(ph, lambda o: [o - int(left[a])], 1, 1))
    w._set(op, Field(first.rf, first.jump, start, first.global_context, first.snap, phase))


def receptive_fields(trace: Trace) -> RFAnalysis:
    return _Walker(trace).run()


@dataclass(frozen=True)
class Headline:
    """The field of the last value with spatial extent (in data-flow order): the model's field."""

    value: int
    call: Call  # the deepest module call returning the value (the root call for the model's own forward)
    op: str  # the ATen op that produced the value
    field: Field | None  # None: unknown, see ``unknown_since``
    unknown_since: str | None = None  # the op past which the field was not followed

    @property
    def name(self) -> str:
        """The layer to name: the module's, or the op's for a functional op in the model's forward."""
        return self.call.name if self.call.depth > 0 else f"{self.op} (in the model's forward)"


def headline(trace: Trace, rf: RFAnalysis) -> Headline | None:
    """The model's receptive field: that of the latest value with spatial extent that a module
    returns or that the model's own forward computes (a functional add or cat at the root counts).
    When that value lies past an op the analysis cannot follow, its field is reported unknown
    rather than falling back on an earlier layer."""
    def known(vid):
        return vid in rf.fields or vid in rf.unknown

    candidates: dict[int, Call] = {}  # value -> deepest call returning it
    for call in trace.calls:
        for vid in call.outputs[:1]:
            if known(vid) and (vid not in candidates or call.depth > candidates[vid].depth):
                candidates[vid] = call
    root = next((c for c in trace.calls if c.depth == 0), None)
    if root is not None:
        for op in trace.ops:
            if op.call == -1 or op.call == root.index:
                for vid in op.outputs[:1]:
                    if known(vid) and vid not in candidates:
                        candidates[vid] = root
    produced = [(trace.values[v].producer, v) for v in candidates if trace.values[v].producer >= 0]
    if not produced:
        return None
    producer, vid = max(produced)
    call, f = candidates[vid], rf.fields.get(vid)
    while call.depth == 0 and f is not None:
        # a one-input op in the model's forward that keeps the field (DenseNet's final ReLU, a
        # view): name the module it reads from rather than the op
        src = [v for v in trace.ops[producer].inputs if v in rf.fields]
        if len(src) != 1 or rf.fields[src[0]] != f or src[0] not in candidates:
            break
        vid, producer, call = src[0], trace.values[src[0]].producer, candidates[src[0]]
        if producer < 0:
            return None
    return Headline(vid, call, trace.ops[producer].name, rf.fields.get(vid), rf.unknown.get(vid))


def extent(f: Field) -> tuple[tuple[float, float], tuple[float, float], tuple[int, int]]:
    """(smallest field per axis, largest field per axis, period per axis): from the exact windows
    when they were followed, else the affine field (period 1)."""
    if f.phase is None:
        return f.rf, f.rf, (1, 1)
    widths = [phase_widths(ph) for ph in f.phase]
    return (widths[0][0], widths[1][0]), (widths[0][1], widths[1][1]), (f.phase[0][0], f.phase[1][0])


def describe(f: Field, line: bool = False) -> dict[str, Any]:
    """The JSON form of a field: ``rf`` is the largest over unit positions and axes, ``rf_min`` the
    smallest (a unit's field is its larger axis), ``period`` how many units repeat the pattern.
    ``line``: a 1-D input (N, C, L), whose H axis is a stand-in of extent 1: the one-number fields
    (rf, jump, start, period) are those of L, and ``line`` is set."""
    def num(x):
        return int(x) if float(x).is_integer() else round(x, 4)

    lo, hi, period = extent(f)
    if line:
        return {
            "rf": num(hi[1]), "rf_min": num(lo[1]), "rf_max": num(hi[1]),
            "rf_hw": [num(hi[0]), num(hi[1])], "rf_min_hw": [num(lo[0]), num(lo[1])],
            "period": period[1], "period_hw": list(period),
            "jump": num(f.jump[1]), "jump_hw": [num(f.jump[0]), num(f.jump[1])],
            "start": num(f.start[1]), "start_hw": [num(f.start[0]), num(f.start[1])],
            "global_context": f.global_context, "line": True,
        }
    return {
        "rf": num(max(hi)),
        "rf_min": num(max(lo)),
        "rf_max": num(max(hi)),
        "rf_hw": [num(hi[0]), num(hi[1])],
        "rf_min_hw": [num(lo[0]), num(lo[1])],
        "period": period[0] if period[0] == period[1] else list(period),
        "period_hw": list(period),
        "jump": num(max(f.jump)),
        "jump_hw": [num(f.jump[0]), num(f.jump[1])],
        "start": num(f.start[0]) if f.start[0] == f.start[1] else [num(f.start[0]), num(f.start[1])],
        "start_hw": [num(f.start[0]), num(f.start[1])],
        "global_context": f.global_context,
    }


# --- archlab rf ---------------------------------------------------------------------


class Row(dict):
    """A layer's receptive-field row: the dict it always was (its JSON), whose keys also read as
    attributes: ``archlab.receptive_field("resnet18").rf.jump`` is ``...rf["jump"]``."""

    __slots__ = ()

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"no '{key}' in this row (its keys: {', '.join(self)})") from None


@dataclass(frozen=True)
class RFResult:
    model: str
    input_shape: tuple[int, ...]
    layers: tuple[dict[str, Any], ...]
    rf: dict[str, Any] | None
    misaligned: tuple[dict[str, Any], ...]
    unsupported_ops: dict[str, int]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "input_shape": list(self.input_shape),
            "units": "rf and start in input pixels; jump = input pixels between neighbouring units",
            "rf": self.rf["rf"] if self.rf else None,
            "rf_layer": self.rf,
            "misaligned": list(self.misaligned),
            "unsupported_ops": self.unsupported_ops,
            "notes": list(self.notes),
            "layers": list(self.layers),
        }


def _rf_row(trace, call, rf: RFAnalysis, input_hw, line: bool = False) -> dict[str, Any] | None:
    if not call.outputs:
        return None
    f = rf.of(call.outputs[0])
    row = {"name": call.name, "type": call.type, "depth": call.depth,
           "output_shape": list(trace.values[call.outputs[0]].shape)}
    if f is None:
        row.update(rf=None, jump=None, start=None, exceeds_input=None)
    else:
        row.update(_described(f, trace.values[call.outputs[0]].shape, input_hw, line))
    return row


def _described(f: Field, out_shape, input_hw, line: bool = False) -> dict[str, Any]:
    d = describe(f, line)
    d["exceeds_input"] = any(d["rf_hw"][a] > input_hw[a] for a in range(2))
    out_hw = _spatial(tuple(out_shape), len(out_shape) == 3) or (1, 1)
    d["sees_padding"] = sees_padding(f, out_hw, input_hw)
    return d


def rf_of(trace: Trace, label: str, depth: int = 2, rf: RFAnalysis | None = None) -> RFResult:
    """Receptive field, jump and first-unit centre per layer of ``trace``, on the data-flow graph
    (``rf``: the trace's fields, when already computed)."""
    check_depth(depth)
    rf = rf or receptive_fields(trace)
    line = len(trace.input_shape) == 3
    input_hw = _spatial(tuple(trace.input_shape), line) or (1, 1)
    rows = tuple(r for c in trace.calls if 0 < c.depth <= depth
                 for r in [_rf_row(trace, c, rf, input_hw, line)] if r is not None)
    h = headline(trace, rf)
    top = None
    if h is not None:
        top = {"name": h.name, "type": h.call.type if h.call.depth > 0 else h.op, "depth": h.call.depth,
               "output_shape": list(trace.values[h.value].shape)}
        if h.field is None:
            top.update(rf=None, jump=None, start=None, exceeds_input=None, unknown_since=h.unknown_since)
        else:
            top.update(_described(h.field, trace.values[h.value].shape, input_hw, line))
    mis = tuple({"op": m.op, "module": m.module, "jumps": [list(j) for j in m.jumps],
                 "starts": [list(s) for s in m.starts]} for m in rf.misaligned)
    return RFResult(label, trace.input_shape, tuple(Row(r) for r in rows), None if top is None else Row(top), mis,
                    dict(rf.unsupported), tuple(rf.notes))
