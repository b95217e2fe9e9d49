"""Several measurements compared: which ranks of MACs hold as ranks of time (Spearman), each
model's latency and MACs as ratios to the first one, and the MobileNetV2 paper's CPU times as
ratios beside them where it has the networks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from archlab.measure.latency import LatencyResult

# Reference data, not ours: the paper's measurement, shown as ratios beside measured ones.
def paper_cpu() -> tuple[dict[str, float], str]:
    """The MobileNetV2 paper's CPU latencies (ms) and their source, from the course data
    (archlab/data), read on first use."""
    from archlab.models.course import paper_cpu as course_paper_cpu

    return course_paper_cpu()


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties given the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


# two points are always in order or in reverse: their correlation is ±1 whatever they are
SPEARMAN_MIN_PAIRS = 3


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation: the Pearson correlation of the (tie-averaged) ranks.
    None for fewer than three pairs (two always give ±1) or when either side has no variance."""
    if len(x) != len(y):
        raise ValueError(f"spearman needs pairs, got {len(x)} and {len(y)} values")
    if len(x) < SPEARMAN_MIN_PAIRS:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


@dataclass(frozen=True)
class RankRow:
    result: LatencyResult
    latency_ratio: float  # median / the first model's median
    macs_ratio: float | None  # MACs / the first model's MACs (None when the first has none)
    paper_ms: float | None  # the paper's measurement of this network, where it has one
    paper_ratio: float | None  # paper_ms / the paper's time of the first model


@dataclass(frozen=True)
class Comparison:
    """Several measurements: ratios to the first model given, rows sorted by latency."""

    baseline: str
    rows: tuple[RankRow, ...]  # sorted by measured latency
    spearman: float | None  # between MACs and median latency
    paper_source: str | None  # set when paper ratios are shown

    def to_dicts(self, order: Sequence[LatencyResult]) -> list[dict[str, Any]]:
        """One JSON object per result, in ``order``, each with its comparison."""
        rank = {id(r.result): i + 1 for i, r in enumerate(self.rows)}
        by_id = {id(r.result): r for r in self.rows}
        out = []
        for res in order:
            row = by_id[id(res)]
            comp: dict[str, Any] = {
                "baseline": self.baseline,
                "latency_rank": rank[id(res)],
                "latency_ratio": row.latency_ratio,
                "macs_ratio": row.macs_ratio,
                "spearman_macs_latency": self.spearman,
                "models": len(self.rows),
            }
            if row.paper_ms is not None:
                comp["paper"] = {"cpu_ms": row.paper_ms, "ratio": row.paper_ratio, "source": self.paper_source,
                                 "note": "the paper's measurement, not archlab's"}
            out.append({**res.to_dict(), "comparison": comp})
        return out


def compare(results: Sequence[LatencyResult]) -> Comparison:
    """Ratios to the first result, Spearman's rho of MACs vs latency, and the MobileNetV2
    paper's CPU times as ratios where the first model and a row are both in its table
    (batch 1 only: the paper's setting)."""
    if not results:
        raise ValueError("compare needs at least one result")
    base = results[0]
    paper_ms, paper_source = paper_cpu()
    paper_base = paper_ms.get(base.model) if base.batch == 1 else None
    rows = []
    for r in results:
        paper = paper_ms.get(r.model) if paper_base is not None and r.batch == 1 else None
        rows.append(RankRow(
            result=r,
            latency_ratio=r.median_ms / base.median_ms,
            macs_ratio=r.macs / base.macs if base.macs else None,
            paper_ms=paper,
            paper_ratio=paper / paper_base if paper is not None else None,
        ))
    shown = sum(row.paper_ms is not None for row in rows) >= 2
    if not shown:
        rows = [RankRow(row.result, row.latency_ratio, row.macs_ratio, None, None) for row in rows]
    rho = spearman([r.macs for r in results], [r.median_ms for r in results])
    return Comparison(base.model, tuple(sorted(rows, key=lambda row: row.result.median_ms)), rho,
                      paper_source if shown else None)
