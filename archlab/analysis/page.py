"""``archlab report``: what one model's report page shows, computed (the page itself is drawn
in ``archlab.report.page``).

A ``PageData`` holds the count (summary and per-layer table), the receptive field per layer,
the memory analysis, and the activation-memory timeline of the forward: the live activation
bytes after each op, by the same rule as the inference peak of ``archlab memory`` (a tensor is
allocated by the op that makes it and freed after its last consumer), so the timeline's
maximum is that peak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from archlab.analysis.memory import MemoryResult, Storages
from archlab.trace.graph import Trace


@dataclass(frozen=True)
class TimelinePoint:
    index: int  # the op's place in the forward
    op: str  # the op and the module that ran it
    live_bytes: int  # activation bytes live while the op runs (its outputs allocated, before frees)


@dataclass(frozen=True)
class PageData:
    model: str
    input_shape: tuple[int, ...]
    count: Any  # archlab.analysis.count.CountResult
    rf: Any  # archlab.analysis.receptive_field.RFResult
    memory: MemoryResult
    timeline: tuple[TimelinePoint, ...]
    depth: int
    diagram: Any = None  # archlab.analysis.diagram.Tree: the interactive diagram's nested boxes
    latency: Any = None  # archlab.measure.latency.LatencyResult with per-layer times, when measured
    erf: Any = None  # the effective receptive field (an ERFResult: real forwards and backwards), when asked for
    training: Any = None  # one rank's training bills (PerRankBill), one per scheme, when asked for
    shard: str | None = None  # the scheme chosen among them

    @property
    def stage_boundaries(self) -> tuple[int, ...]:
        """Indices into the leaf layers of ``count.layers`` (see ``leaves``) where a stage
        begins (where the resolution changes, see ``stage_boundaries``): where the bars change stage."""
        names = [layer.name for layer in self.count.layers]
        keep = leaves(names)
        return stage_boundaries([names[i] for i in keep], [self.count.layers[i].output_shape for i in keep])

    @property
    def status(self) -> str:
        unsupported = self.count.unsupported_ops
        if unsupported:
            calls = sum(n for _, n in unsupported)
            return f"count PARTIAL: {calls:,} op call{'' if calls == 1 else 's'} not counted"
        return "count complete"


def leaves(names: list[str]) -> list[int]:
    """Indices of the names that contain no other listed name (``layer1`` is left out when
    ``layer1.0`` is listed): the rows whose costs add up without counting anything twice."""
    parents = {name.rsplit(".", 1)[0] for name in names if "." in name}
    for name in names:  # every dotted prefix: layer1.0.conv1 makes layer1 a parent too
        parts = name.split(".")
        parents.update(".".join(parts[:k]) for k in range(1, len(parts)))
    return [i for i, name in enumerate(names) if name not in parents]


def stage_boundaries(names: list[str], shapes: Sequence[Sequence[int] | None] | None = None) -> tuple[int, ...]:
    """Positions ``i > 0`` where a stage begins. With the layers' output ``shapes``: where the
    resolution (the spatial sizes after batch and channels) changes scale from the previous layer's
    (by 1.5x or more), among layers with spatial outputs (a U-Net's every module is a container; its stages are its
    resolutions). Without shapes, by name: where a top-level container (``layer1``, ``features``)
    begins or ends: ``names[i]``'s first dotted component differs from ``names[i-1]``'s and one of
    the two lies inside a container (``conv1`` -> ``bn1`` is no boundary, ``maxpool`` -> ``layer1.0`` is)."""
    if shapes is not None:
        def hw(shape: Sequence[int] | None) -> tuple[int, ...] | None:
            return tuple(shape[2:]) if shape is not None and len(shape) >= 3 else None

        def rescaled(a: tuple[int, ...] | None, b: tuple[int, ...] | None) -> bool:
            # a new scale (pooling, a strided convolution, upsampling): some side changes by 1.5x or
            # more; an unpadded 3x3 convolution's two pixels less is the same stage
            return a is not None and b is not None and len(a) == len(b) and \
                any(max(x, y) >= 1.5 * min(x, y) for x, y in zip(a, b))

        sizes = [hw(s) for s in shapes]
        return tuple(i for i in range(1, len(sizes)) if rescaled(sizes[i - 1], sizes[i]))
    tops = [name.split(".")[0] for name in names]
    return tuple(i for i in range(1, len(tops))
                 if tops[i] != tops[i - 1] and ("." in names[i] or "." in names[i - 1]))


def live_timeline(trace: Trace, act_bytes: int) -> tuple[TimelinePoint, ...]:
    """Live activation bytes at each op of the forward (the freeing rule of
    ``archlab.analysis.memory.inference_peak`` with ``held=False``)."""
    st = Storages(trace, act_bytes)
    last_use: dict[int, int] = {}
    for op in trace.ops:
        for sid in st.of(op.inputs):
            last_use[sid] = op.index
    keep = st.of(trace.outputs)
    live = {sid: st.size(sid) for sid in st.of(trace.inputs)}
    total = sum(live.values())
    points = []
    for op in trace.ops:
        for sid in st.of(op.outputs):
            if sid not in live:
                live[sid] = st.size(sid)
                total += live[sid]
        module = trace.calls[op.call].name if op.call >= 0 else ""
        points.append(TimelinePoint(op.index, f"{op.target} in '{module}'" if module else op.target, total))
        for sid in [s for s in live if s not in keep and last_use.get(s, op.index) <= op.index]:
            total -= live.pop(sid)
    return tuple(points)
