"""``archlab diagram``: the architecture as a block diagram, from the trace's data-flow graph.

Boxes are the module calls at the chosen depth; a module with no children above that depth (a
``conv1``, a ``fc``, GoogLeNet's LRN) is a box too, with its name. An op that runs in a module's
own ``forward`` at a shallower depth -- a residual ``add``, Inception's and DenseNet's ``cat``, a
U-Net skip's ``cat`` -- is a box of its own, so branches and merges show as they are in the
papers' figures. Pure reshapes (``view``, ``flatten``, ...) are see-through: an edge goes from
what made their input to what reads their output. An edge A -> B means an op of B reads a tensor
an op of A made. Every input of the model is its own box (token ids drawn as such).

Repeats are collapsed (unless ``expand``): consecutive sibling modules with the same structure
are one box, "Bottleneck x 6", with the summed params and MACs. The same structure: the same
type tree (the module's class and its called children's, in order), the same output shapes of
the module and of every module inside it, and the same input shape except for the channel count
(dimension 1): the run's first block may read another channel count, as a stage's first block
does in the papers' tables, when nothing inside it differs for that; a block that downsamples,
widens inside, or has another shortcut (ResNet's first block of a stage, with its
``downsample``; MobileNetV2's first of a stage) is drawn apart. The repeats must form a chain:
each reads only the one before.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from archlab.analysis.costs import OpCosts
from archlab.analysis.ops import SEE_THROUGH, has
from archlab.trace.graph import INPUT, PartialTrace, Trace
from archlab.errors import UserError


@dataclass(frozen=True)
class Box:
    id: str
    name: str  # the module's qualified name, or the op's name for an op box
    type: str  # the module's class, "op", "input" or "output"
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    label: str = ""  # the name as drawn: relative to the drawn block (layer1.0 for the whole model)
    repeat: int = 1  # a collapsed run of this many modules of the same structure
    members: tuple[str, ...] = ()  # the collapsed modules' names
    error: str = ""  # the forward failed in this box (a partial diagram)
    dtype: str = ""  # an input's dtype


@dataclass(frozen=True)
class Diagram:
    model: str
    input_shape: tuple[int, ...]
    depth: int
    block: str | None
    boxes: tuple[Box, ...]  # in forward order; the inputs first, the output last
    edges: tuple[tuple[str, str], ...]  # (from box id, to box id), in forward order
    error: str = ""  # a partial diagram: the forward failed (the message), drawn up to the failing op

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


def parents(trace: Trace) -> set[int]:
    """The calls that have calls inside them."""
    return {c.parent for c in trace.calls if c.parent >= 0}


def type_trees(trace: Trace) -> list[tuple]:
    """Per call: its class and its called children's trees, in call order (the structure repeats compare)."""
    children: dict[int, list[int]] = {}
    for c in trace.calls:
        children.setdefault(c.parent, []).append(c.index)
    trees: list[tuple] = [()] * len(trace.calls)
    for c in reversed(trace.calls):  # children are called after their parent: built first here
        trees[c.index] = (c.type, tuple(trees[k] for k in children.get(c.index, ())))
    return trees


def inner_shapes(trace: Trace, call: int) -> tuple:
    """The output shapes of the call and of every call inside it, in call order."""
    c = trace.calls[call]
    shapes = []
    for k in range(call, len(trace.calls)):
        d = trace.calls[k]
        if k > call and (d.depth <= c.depth or d.first_op >= c.end_op > c.first_op):
            break
        shapes.append(tuple(tuple(trace.values[v].shape) for v in d.outputs))
    return tuple(shapes)


def _box_of_op(trace: Trace, op_call: int, root: int, depth: int, inner: set[int]) -> int | None:
    """The call the op is drawn in: the one at ``depth`` (absolute) that contains it, or a module
    without children above that depth; None when the op runs in the forward of a module above
    ``depth`` that has children (it is then a box of its own)."""
    chain = []
    c = op_call
    while c >= 0:
        chain.append(c)
        if c == root:
            break
        c = trace.calls[c].parent
    chain.reverse()  # root ... innermost
    for c in chain:
        if c == root:
            continue
        if trace.calls[c].depth == depth or c not in inner:
            return c
    return None


def input_label(name: str, dtype: str, k: int, n: int) -> str:
    """An input's name as drawn: its keyword, or input (input 2, ... where there are several); integer
    inputs are token ids."""
    what = name or ("input" if n == 1 else f"input {k + 1}")
    return f"{what}: token ids" if dtype.startswith(("int", "uint")) else what


def diagram_of_trace(trace: Trace, label: str, depth: int = 1, block: str | None = None, *, expand: bool = False,
                     error: str = "", failed: PartialTrace | None = None) -> Diagram:
    """The diagram at ``depth`` below the model (or its module ``block``); ``expand``: repeats drawn
    one by one; ``failed``: the trace is a failed forward's (``failed.trace``), drawn up to the failing
    op, whose box is marked with ``error``."""
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
    prefix = trace.calls[root].name + "." if root >= 0 and trace.calls[root].name else ""
    target_depth = base + depth
    inner = parents(trace)
    boxes: dict[str, Box] = {}
    order: list[str] = []
    source: dict[int, str] = {}  # value id -> box id that made it
    edges: list[tuple[str, str]] = []

    def add_box(box: Box) -> None:
        if box.id not in boxes:
            boxes[box.id] = box
            order.append(box.id)

    in_values = list(trace.calls[root].inputs) if block else list(trace.inputs)
    for k, v in enumerate(in_values):
        value = trace.values[v]
        dtype = str(value.dtype).removeprefix("torch.")
        box_id = "input" if k == 0 else f"input{k + 1}"
        add_box(Box(box_id, value.name or box_id, "input", tuple(value.shape), 0, 0,
                    input_label(value.name if not block else "", dtype, k, len(in_values)), dtype=dtype))
        source.setdefault(v, box_id)
    if not in_values:
        add_box(Box("input", "input", "input", None, 0, 0, "input"))
    failed_box = None
    for op in trace.ops[first:end]:
        if has(SEE_THROUGH, op):
            srcs = [source[v] for v in op.inputs if v in source]
            for v in op.outputs:
                if srcs:
                    source[v] = srcs[0]
            continue
        call = _box_of_op(trace, op.call, root, target_depth, inner) if op.call >= 0 else None
        if call is None:  # runs in the forward of a module above the boxes' depth: a box of its own
            box_id = f"op{op.index}"
            add_box(Box(box_id, op.name, "op", tuple(trace.values[op.outputs[0]].shape) if op.outputs else None,
                        0, costs.macs[op.index], op.name))
        else:
            box_id = _module_box(trace, call, costs, prefix, add_box, boxes)
        for v in op.inputs:
            if v in source:
                s = source[v]
            elif trace.values[v].producer == INPUT or (0 <= trace.values[v].producer < first):
                s = "input"
            else:
                continue  # a parameter or constant
            if s != box_id and (s, box_id) not in edges:
                edges.append((s, box_id))
        for v in op.outputs:
            source[v] = box_id
    if failed is not None:
        failed_box = _failed_box(trace, failed, root, target_depth, inner, costs, prefix, add_box, boxes, edges,
                                 source)
    outputs = trace.calls[root].outputs if root >= 0 else trace.outputs
    if not error:
        out_shape = tuple(trace.values[outputs[0]].shape) if outputs else None
        add_box(Box("output", "output", "output", out_shape, 0, 0, "output"))
        for v in outputs:
            s = source.get(v, "input")
            if (s, "output") not in edges:
                edges.append((s, "output"))
    linked = {a for a, _ in edges} | {b for _, b in edges}
    # an op that reads nothing drawn and feeds nothing drawn (a factory's empty buffer) is left out
    keep = [i for i in order if not (boxes[i].type == "op" and i not in linked and boxes[i].macs == 0)]
    drawn = [boxes[i] for i in keep]
    if failed_box is not None:
        what = failed.failed_op[0] if failed and failed.failed_op else "forward"
        mark = f"{what}: {error.split(': ', 1)[-1]}"  # the op and PyTorch's words (the error line has the rest)
        drawn = [replace(b, error=mark) if b.id == failed_box else b for b in drawn]
    drawn_edges = list(edges)
    if not expand:
        drawn, drawn_edges = collapse(trace, drawn, drawn_edges)
    return Diagram(label, tuple(trace.input_shape), depth, block, tuple(drawn), tuple(drawn_edges), error)


def _module_box(trace: Trace, call: int, costs: OpCosts, prefix: str, add_box, boxes) -> str:
    c = trace.calls[call]
    box_id = f"m{c.index}"
    if box_id not in boxes:
        out = c.outputs[0] if c.outputs else None
        add_box(Box(box_id, c.name, c.type, tuple(trace.values[out].shape) if out is not None else None,
                    c.params, costs.by_call(c), c.name.removeprefix(prefix)))
    return box_id


def _failed_box(trace, failed, root, target_depth, inner, costs, prefix, add_box, boxes, edges, source) -> str:
    """The box the failing op ran in: its module's box at the drawn depth (drawn even when it ran no
    op before failing), or a box of the op's own; with the edges of the tensors the op was given."""
    call = _box_of_op(trace, failed.failed_call, root, target_depth, inner) if failed.failed_call >= 0 else None
    name, reads = failed.failed_op if failed.failed_op is not None else ("forward", ())
    if call is None:
        box_id = "failed"
        add_box(Box(box_id, name, "op", None, 0, 0, name))
    else:
        box_id = _module_box(trace, call, costs, prefix, add_box, boxes)
        if not reads:
            reads = tuple(trace.calls[call].inputs)
    for v in reads:
        s = source.get(v)
        if s is not None and s != box_id and (s, box_id) not in edges:
            edges.append((s, box_id))
    return box_id


def collapse(trace: Trace, boxes: list[Box], edges: list[tuple[str, str]]) -> tuple[list[Box], list[tuple[str, str]]]:
    """Runs of consecutive sibling module boxes of the same structure (the module's docstring) as one box each."""
    trees = type_trees(trace)
    ins: dict[str, list[str]] = {}
    outs: dict[str, list[str]] = {}
    for a, b in edges:
        outs.setdefault(a, []).append(b)
        ins.setdefault(b, []).append(a)

    def signature(box: Box) -> tuple | None:
        if not box.id.startswith("m") or box.error:
            return None
        c = trace.calls[int(box.id[1:])]
        shape = tuple(trace.values[c.inputs[0]].shape) if c.inputs else ()
        return (c.parent, trees[c.index], shape[:1] + shape[2:], len(shape), inner_shapes(trace, c.index))

    runs: list[list[Box]] = []
    for box in boxes:
        prev = runs[-1][-1] if runs else None
        if (prev is not None and signature(box) is not None and signature(box) == signature(prev)
                and ins.get(box.id) == [prev.id] and outs.get(prev.id) == [box.id]):
            runs[-1].append(box)
        else:
            runs.append([box])
    merged: dict[str, str] = {}
    out: list[Box] = []
    for run in runs:
        if len(run) == 1:
            out.append(run[0])
            continue
        head, last = run[0], run[-1]
        group = Box(f"g{head.id[1:]}", f"{head.name}-{last.name}", head.type, last.output_shape,
                    sum(b.params for b in run), sum(b.macs for b in run), span(head.label, last.label),
                    len(run), tuple(b.name for b in run))
        out.append(group)
        merged.update({b.id: group.id for b in run})
    new_edges: list[tuple[str, str]] = []
    for a, b in edges:
        e = (merged.get(a, a), merged.get(b, b))
        if e[0] != e[1] and e not in new_edges:
            new_edges.append(e)
    return out, new_edges


def span(first: str, last: str) -> str:
    """layer3.1 and layer3.35 as layer3.1-35 (names that differ in more than the last part: both in full)."""
    a, _, x = first.rpartition(".")
    b, _, y = last.rpartition(".")
    return f"{first}-{y}" if a == b else f"{first}-{last}"


@dataclass(frozen=True)
class Node:
    """One box of the interactive diagram: a module call, a run of repeats, an op, an input or the output."""

    id: int
    parent: int  # -1 for the model
    kind: str  # "model", "module", "repeat", "op", "input", "output"
    name: str  # the module's qualified name (a run: first-last), the op's name, the input's
    type: str  # the module's class (a run: its blocks'), "op", "input", "output"
    order: tuple[int, int]  # forward order: (first op, 0 for a module / 1 for an op)
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    other: int  # other ops (not MACs): comparisons, exps, ...
    read: int  # bytes read by its ops
    written: int  # bytes written by its ops
    ops: tuple[int, int]  # its ops' range in the trace (a run: the first's start to the last's end)
    rf: tuple[float, float] | None = None  # receptive field of its output (H, W), where known
    repeat: int = 1


@dataclass(frozen=True)
class Tree:
    """The whole model as nested boxes, down to single ops, and the data flow between its leaves
    (ops, inputs, the output): edges (from node, to node, the tensor's shape, its bytes)."""

    model: str
    nodes: tuple[Node, ...]
    edges: tuple[tuple[int, int, tuple[int, ...], int], ...]


def tree_of_trace(trace: Trace, label: str, costs: OpCosts, traffic: Any, fields: Any = None) -> Tree:
    """Every module call (with no ops of its own left out: an ``nn.Identity``), every op but the
    see-through reshapes, the inputs and the output, as nested nodes; runs of repeated sibling
    modules (the rule of ``collapse``, with "consecutive" meaning no op of the parent between
    them) get a node of their own around them."""
    from archlab.analysis.traffic import value_bytes

    other_prefix = [0]
    for n in costs.other:
        other_prefix.append(other_prefix[-1] + n)
    nodes: list[Node] = []
    root_call = 0 if trace.calls and trace.calls[0].parent == -1 else -1

    def rf_of(vids) -> tuple[float, float] | None:
        f = fields.of(vids[0]) if fields is not None and vids else None
        return tuple(f.rf) if f is not None else None

    def shape(v: int) -> tuple[int, ...]:
        return tuple(trace.values[v].shape)

    def module_node(c, parent: int, kind: str) -> Node:
        r, w = traffic.by_call(c)
        return Node(len(nodes), parent, kind, c.name or label, c.type, (c.first_op, 0),
                    tuple(shape(v) for v in c.inputs), shape(c.outputs[0]) if c.outputs else None,
                    c.params, costs.by_call(c), other_prefix[c.end_op] - other_prefix[c.first_op], r, w,
                    (c.first_op, c.end_op), rf_of(c.outputs))

    if root_call >= 0:
        nodes.append(module_node(trace.calls[root_call], -1, "model"))
    else:
        nodes.append(Node(0, -1, "model", label, "model", (0, 0), (), None, trace.params, costs.total_macs,
                          other_prefix[-1], traffic.total_read, traffic.total_written, (0, len(trace.ops))))
    node_of_call: dict[int, int] = {}
    if root_call >= 0:
        node_of_call[root_call] = 0
    source: dict[int, int] = {}
    for k, v in enumerate(trace.inputs):
        value = trace.values[v]
        dtype = str(value.dtype).removeprefix("torch.")
        nodes.append(Node(len(nodes), 0, "input", input_label(value.name, dtype, k, len(trace.inputs)), "input",
                          (-1, k), (), shape(v), 0, 0, 0, 0, 0, (0, 0)))
        source[v] = nodes[-1].id
    for c in trace.calls:
        if c.index == root_call or c.end_op <= c.first_op or c.parent not in node_of_call:
            continue
        node_of_call[c.index] = len(nodes)
        nodes.append(module_node(c, node_of_call[c.parent], "module"))
    edges: dict[tuple[int, int], tuple[int, int, tuple[int, ...], int]] = {}
    for op in trace.ops:
        if has(SEE_THROUGH, op):
            srcs = [source[v] for v in op.inputs if v in source]
            for v in op.outputs:
                if srcs:
                    source[v] = srcs[0]
            continue
        parent = node_of_call.get(op.call, 0)
        node = Node(len(nodes), parent, "op", op.name, "op", (op.index, 1), tuple(shape(v) for v in op.inputs
                    if trace.values[v].producer >= INPUT), shape(op.outputs[0]) if op.outputs else None, 0,
                    costs.macs[op.index], costs.other[op.index], traffic.read[op.index], traffic.written[op.index],
                    (op.index, op.index + 1), rf_of(op.outputs))
        nodes.append(node)
        for v in op.inputs:
            s = source.get(v)
            if s is not None and (s, node.id) not in edges:
                edges[(s, node.id)] = (s, node.id, shape(v), value_bytes(trace, v))
        for v in op.outputs:
            source[v] = node.id
    out = Node(len(nodes), 0, "output", "output", "output", (len(trace.ops), 2), (),
               shape(trace.outputs[0]) if trace.outputs else None, 0, 0, 0, 0, 0, (0, 0))
    nodes.append(out)
    for v in trace.outputs:
        s = source.get(v)
        if s is not None and (s, out.id) not in edges:
            edges[(s, out.id)] = (s, out.id, shape(v), value_bytes(trace, v))
    linked = {e[0] for e in edges} | {e[1] for e in edges}
    # an op that reads nothing drawn and feeds nothing (a factory's empty buffer) is left out
    gone = {n.id for n in nodes if n.kind == "op" and n.id not in linked and n.macs == 0}
    if gone:
        renumber = {}
        for n in nodes:
            if n.id not in gone:
                renumber[n.id] = len(renumber)
        nodes = [replace(n, id=renumber[n.id], parent=renumber.get(n.parent, -1)) for n in nodes if n.id not in gone]
        node_of_call = {c: renumber[i] for c, i in node_of_call.items()}
        edges = {(renumber[a], renumber[b]): (renumber[a], renumber[b], sh, nb) for (a, b), (_, _, sh, nb)
                 in edges.items()}
    nodes = _repeat_nodes(trace, nodes, node_of_call)
    return Tree(label, tuple(nodes), tuple(edges.values()))


def _repeat_nodes(trace: Trace, nodes: list[Node], node_of_call: dict[int, int]) -> list[Node]:
    """A "repeat" node around each run of repeated sibling modules (appended; members re-parented)."""
    trees = type_trees(trace)
    children: dict[int, list[Node]] = {}
    for n in nodes:
        children.setdefault(n.parent, []).append(n)
    call_of_node = {v: k for k, v in node_of_call.items()}

    def signature(n: Node) -> tuple | None:
        if n.kind != "module":
            return None
        c = trace.calls[call_of_node[n.id]]
        s = n.input_shapes[0] if n.input_shapes else ()
        return (trees[c.index], s[:1] + s[2:], len(s), inner_shapes(trace, c.index))

    out = list(nodes)
    for parent, kids in children.items():
        kids = sorted(kids, key=lambda n: n.order)
        runs: list[list[Node]] = []
        for n in kids:
            prev = runs[-1][-1] if runs else None
            if (prev is not None and signature(n) is not None and signature(n) == signature(prev)
                    and n.ops[0] == prev.ops[1]):
                runs[-1].append(n)
            else:
                runs.append([n])
        for run in runs:
            if len(run) < 2:
                continue
            head, last = run[0], run[-1]
            g = Node(len(out), parent, "repeat", span(head.name, last.name), head.type, head.order,
                     head.input_shapes, last.output_shape, sum(n.params for n in run), sum(n.macs for n in run),
                     sum(n.other for n in run), sum(n.read for n in run), sum(n.written for n in run),
                     (head.ops[0], last.ops[1]), last.rf, len(run))
            out.append(g)
            for n in run:
                out[n.id] = replace(n, parent=g.id)
    return out
