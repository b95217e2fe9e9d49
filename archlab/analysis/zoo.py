"""The zoo's rows: every registered model with its params and MACs, computed (a meta trace of
each model at its default input), never typed in, and cached.

The rows of the whole zoo are computed once per version of archlab's code and torch's, then read
from a cache file (see ``archlab.cache``): a listing then needs neither torch nor any trace, so
this module imports nothing heavy until it has to count.
"""

from __future__ import annotations

from typing import Any

ROW_KEYS = {"name", "family", "paper", "input_shape", "params", "macs", "reference_params", "reference_source"}


def zoo_rows(pattern: str | None = None, *, cache: bool = True) -> list[dict[str, Any]]:
    """Every registered model's row (or those ``pattern`` selects), from the cache when it holds
    them; computed (and stored) otherwise."""
    from archlab import cache as zoo_cache
    from archlab.models._registry import match_names

    rows = zoo_cache.load("zoo") if cache else None
    if not _well_formed(rows):  # missing, or damaged: computed again and stored over it
        rows = None
    if rows is None:
        rows = _compute_rows()
        if cache:
            zoo_cache.store("zoo", rows)
    keep = set(match_names([r["name"] for r in rows], pattern))
    return [r for r in rows if r["name"] in keep]


def _well_formed(rows: Any) -> bool:
    """A cached listing is used only if it is a non-empty list of complete rows (a damaged or
    edited cache file is not trusted)."""
    return (isinstance(rows, list) and bool(rows)
            and all(isinstance(r, dict) and set(r) == ROW_KEYS and isinstance(r["name"], str)
                    and isinstance(r["params"], int) and isinstance(r["macs"], int) for r in rows))


def _compute_rows() -> list[dict[str, Any]]:
    from archlab.analysis.count import count_model
    from archlab.models.catalog import get_model_info, list_models

    rows = []
    for name in list_models():
        info = get_model_info(name)
        result = count_model(name, depth=0)
        rows.append({
            "name": name,
            "family": info.family,
            "paper": info.paper,
            "input_shape": list(info.input_shape()),
            "params": result.params,
            "macs": result.macs,
            "reference_params": info.reference.params if info.reference else None,
            "reference_source": info.reference.source if info.reference else None,
        })
    return rows
