"""``archlab verify``: every quantitative claim of the course's tables, recomputed.

The claims live in a data file (``archlab/data/course_claims.toml``), one ``[[claim]]`` per
number or shape the course prints: where it is, what it is about, the quantity that
recomputes it (a function registered in ``quantities``, reading a real model's meta trace or
counting real layers) and the value as printed. Nothing here knows the answers; the data file
holds the course's numbers and this package computes ours.

Tolerance follows the printing: a value printed with k decimals allows half a unit in its
last digit ("4.2" M: ±0.05 M); an integer count, a shape or a layer list must match exactly.
Trailing zeros of an integer are significant unless the course marks the value as approximate
("~140M": ±5 M).

Status of a row:

* ``ok``: within tolerance;
* ``known-discrepancy``: outside it, and the data file records the cause (an erratum, a
  rounding, a counting convention, a variant) with evidence: computations shown beside the
  row, some of which must reproduce the printed value (``reproduces``) or the row fails;
* ``FAIL``: anything else. A row recorded as a known discrepancy that now agrees is ``ok``,
  with a note saying the record is stale.

The package: ``quantities`` (the registry of computations by name), ``readings`` and
``formulas`` (the computations), ``data`` (the claims file, read and validated) and
``checking`` (statuses, tolerances, rows, ``verify``).
"""

from __future__ import annotations

from archlab.verify.checking import (
    SCHEMA_VERSION,
    STATUSES,
    ClaimsFailed,
    Evidence,
    Row,
    VerifyResult,
    check,
    rounds_to,
    tolerance_of,
    verify,
)
from archlab.models.course import DEFAULT_DATA, course_value
from archlab.verify.data import (
    CAUSES,
    EVIDENCE_FIELDS,
    ROW_FIELDS,
    UNITS,
    Claim,
    ClaimData,
    Fact,
    load,
)
from archlab.verify.effective import erf_change, erf_exponent, erf_metric
from archlab.verify.formulas import compound, dwsc, dwsc_ratio, formula, ratio
from archlab.verify.quantities import QUANTITIES, Context, Quantity, evaluate, quantity
from archlab.verify.readings import (
    channels,
    input_size,
    layer_list,
    layer_spec,
    macs,
    neurons,
    output_size,
    params,
    patch,
    stacked_rf,
    stage_blocks,
    stage_row,
    table1_row,
    weight_layers,
    weights,
)

__all__ = [
    # checking
    "SCHEMA_VERSION", "STATUSES", "ClaimsFailed", "Evidence", "Row", "VerifyResult", "check", "course_value", "rounds_to",
    "tolerance_of", "verify",
    # the data file
    "CAUSES", "DEFAULT_DATA", "EVIDENCE_FIELDS", "ROW_FIELDS", "UNITS", "Claim", "ClaimData", "Fact", "load",
    # the computations
    "QUANTITIES", "Context", "Quantity", "quantity", "evaluate", "channels", "compound", "dwsc", "dwsc_ratio",
    "erf_change", "erf_exponent", "erf_metric", "formula", "input_size", "layer_list", "layer_spec", "macs",
    "neurons", "output_size", "params", "patch",
    "ratio", "stacked_rf", "stage_blocks", "stage_row", "table1_row", "weight_layers", "weights",
]
