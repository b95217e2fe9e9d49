"""``archlab diagram``: the architecture as a block diagram, from the trace's data-flow graph.

Boxes are the module calls at the chosen depth (a module with no children above that depth is a
box too); an op that runs in a module's own ``forward`` at a shallower depth -- a residual
``add``, Inception's and DenseNet's ``cat``, a U-Net skip's ``cat`` -- is a box of its own,
so branches and merges show as they are in the papers' figures. Pure reshapes (``view``,
``flatten``, ...) are see-through: an edge goes from what made their input to what reads
their output. An edge A -> B means an op of B reads a tensor an op of A made.
"""

from __future__ import annotations

from dataclasses import dataclass

from archlab.analysis.costs import OpCosts
from archlab.analysis.ops import SEE_THROUGH, has
from archlab.trace.graph import INPUT, Trace
from archlab.errors import UserError

@dataclass(frozen=True)
class Box:
    id: str
    name: str  # the module's qualified name, or the op's name for an op box
    type: str  # the module's class, or "op"
    output_shape: tuple[int, ...] | None
    params: int
    macs: int


@dataclass(frozen=True)
class Diagram:
    model: str
    input_shape: tuple[int, ...]
    depth: int
    block: str | None
    boxes: tuple[Box, ...]  # in forward order; the first is the input, the last the output
    edges: tuple[tuple[str, str], ...]  # (from box id, to box id), in forward order

    def merges(self) -> dict[str, int]:
        """Box id -> number of incoming edges, for boxes with more than one (adds, concatenations)."""
        counts: dict[str, int] = {}
        for _, b in self.edges:
            counts[b] = counts.get(b, 0) + 1
        return {b: n for b, n in counts.items() if n > 1}

    def branches(self) -> dict[str, int]:
        """Box id -> number of outgoing edges, for boxes read by more than one box."""
        counts: dict[str, int] = {}
        for a, _ in self.edges:
            counts[a] = counts.get(a, 0) + 1
        return {a: n for a, n in counts.items() if n > 1}


def _box_of_op(trace: Trace, op_call: int, root: int, depth: int) -> int | None:
    """The call at ``depth`` (absolute) that contains the op, or None when the op runs in a
    call shallower than that (it is then a box of its own)."""
    chain = []
    c = op_call
    while c >= 0:
        chain.append(c)
        if c == root:
            break
        c = trace.calls[c].parent
    chain.reverse()  # root ... innermost
    for c in chain:
        if trace.calls[c].depth == depth:
            return c
    return None


def diagram_of_trace(trace: Trace, label: str, depth: int = 1, block: str | None = None) -> Diagram:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise UserError(f"--depth must be 1 or more, got {depth!r}")
    costs = OpCosts(trace)
    root = 0 if trace.calls and trace.calls[0].parent == -1 else -1
    if block:
        found = [c for c in trace.calls if c.name == block]
        if not found:
            names = [c.name for c in trace.calls if c.depth == 1]
            raise UserError(f"no module '{block}' in {label} (its top-level modules: {', '.join(names[:12])}"
                            f"{', ...' if len(names) > 12 else ''})")
        root = found[0].index
    base = trace.calls[root].depth if root >= 0 else 0
    first, end = (trace.calls[root].first_op, trace.calls[root].end_op) if root >= 0 else (0, len(trace.ops))
    target_depth = base + depth
    boxes: dict[str, Box] = {}
    order: list[str] = []
    source: dict[int, str] = {}  # value id -> box id that made it
    edges: list[tuple[str, str]] = []

    def add_box(box: Box) -> None:
        if box.id not in boxes:
            boxes[box.id] = box
            order.append(box.id)

    add_box(Box("input", "input", "input", None, 0, 0))
    for op in trace.ops[first:end]:
        if has(SEE_THROUGH, op):
            srcs = [source[v] for v in op.inputs if v in source]
            for v in op.outputs:
                if srcs:
                    source[v] = srcs[0]
            continue
        call = _box_of_op(trace, op.call, root, target_depth) if op.call >= 0 else None
        if call is None:  # runs in the forward of a module above the boxes' depth: a box of its own
            box_id = f"op{op.index}"
            add_box(Box(box_id, op.name, "op", tuple(trace.values[op.outputs[0]].shape) if op.outputs else None,
                        0, costs.macs[op.index]))
        else:
            c = trace.calls[call]
            box_id = f"m{c.index}"
            if box_id not in boxes:
                out = c.outputs[0] if c.outputs else None
                add_box(Box(box_id, c.name, c.type, tuple(trace.values[out].shape) if out is not None else None,
                            c.params, costs.by_call(c)))
        for v in op.inputs:
            if v in source:
                s = source[v]
            elif trace.values[v].producer == INPUT or (trace.values[v].producer >= 0
                                                        and trace.values[v].producer < first):
                s = "input"
            else:
                continue  # a parameter or constant
            if s != box_id and (s, box_id) not in edges:
                edges.append((s, box_id))
        for v in op.outputs:
            source[v] = box_id
    outputs = trace.calls[root].outputs if root >= 0 else trace.outputs
    out_shape = tuple(trace.values[outputs[0]].shape) if outputs else None
    add_box(Box("output", "output", "output", out_shape, 0, 0))
    for v in outputs:
        s = source.get(v, "input")
        if (s, "output") not in edges:
            edges.append((s, "output"))
    boxes["input"] = Box("input", "input", "input", tuple(trace.input_shape) if not block else
                         tuple(trace.values[trace.calls[root].inputs[0]].shape), 0, 0)
    return Diagram(label, tuple(trace.input_shape), depth, block, tuple(boxes[i] for i in order), tuple(edges))
