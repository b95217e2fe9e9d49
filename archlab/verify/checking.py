"""Checking: each claim recomputed, compared within the tolerance its printing allows and given
its status (``ok``, ``known-discrepancy``, ``FAIL``; see ``archlab.verify``)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from archlab.errors import UserError
from archlab.verify.data import BOUNDS, EVIDENCE_FIELDS, UNITS, Claim, Fact, load
from archlab.verify.quantities import Context, evaluate

SCHEMA_VERSION = 1
STATUSES = ("ok", "known-discrepancy", "FAIL")


class ClaimsFailed(UserError):
    """Some claims FAIL: one line on stderr and exit code 3 (the report is written first); 1 stays
    an internal error and 2 a usage error, so a script can tell the three apart."""

    exit_code = 3


@dataclass(frozen=True)
class Evidence:
    label: str
    value: Any
    unit: str
    reproduces: str | None
    reproduced: bool | None  # None: not a reproduction

    def display(self) -> str:
        if self.unit == "Ki" and not isinstance(self.value, str):  # as the course would print it, and in k
            return f"{_display(self.value, self.unit, None)} (= {_display(self.value, 'k', None)})"
        return _display(self.value, self.unit, None)


def shown_unit(unit: str) -> str:
    """The unit archlab prints a value of a claim in: k = 1000 everywhere, so a claim the course
    printed with K = 1024 ("Ki", GoogLeNet's table) is shown in k; the claim keeps its own reading."""
    return "k" if unit == "Ki" else unit


@dataclass(frozen=True)
class Row:
    claim: Claim
    model: str | None  # resolved label of the model the row is about
    input: str | None  # its input, C x H x W
    course_value: Any  # number in the row's unit, or the normalised course string
    computed: Any  # raw computed value (a count, a ratio, a string)
    tolerance: float  # in the row's unit; 0: exact
    diff_percent: float | None
    status: str
    note: str
    evidence: tuple[Evidence, ...]

    @property
    def computed_in_unit(self) -> Any:
        return self.computed / UNITS[self.claim.unit][0] if self.claim.numeric else self.computed

    def computed_display(self) -> str:
        c = self.claim
        if not c.numeric:
            return str(self.computed)
        if self.tolerance == 0 and isinstance(self.computed, int) and not c.unit:
            return f"{self.computed:,}"
        decimals = max(_decimals(c.value), 0) + 2 if c.value is not None else None
        if c.unit == "Ki" and isinstance(self.computed, int):
            return f"{_num(self.computed / 1000)}k"  # a count of weights, exact in k = 1000
        return _display(self.computed, shown_unit(c.unit), decimals)

    def course_display(self) -> str:
        """The course's value as printed, with its reading in k = 1000 when it was printed in K = 1024."""
        c = self.claim
        if c.unit != "Ki" or not isinstance(self.course_value, (int, float)):
            return c.course
        return f"{c.course} (= {_num(round(self.course_value * 1.024, 3))}k)"

    def tolerance_display(self) -> str:
        if self.claim.bound:
            return f"{BOUNDS[self.claim.bound]} {self.claim.value}"
        if self.tolerance == 0:
            return "exact"
        scale = UNITS[self.claim.unit][0] / UNITS[shown_unit(self.claim.unit)][0]
        return f"±{_num(round(self.tolerance * scale, 6))}{UNITS[shown_unit(self.claim.unit)][1]}"

    def to_dict(self) -> dict[str, Any]:
        c = self.claim
        return {
            "id": c.id, "section": c.section, "where": c.where, "claim": c.claim, "model": self.model,
            "input": self.input, "quantity": c.compute["quantity"], "course": c.course,
            "course_value": self.course_value, "unit": c.unit, "computed": self.computed,
            "computed_in_unit": self.computed_in_unit, "diff_percent": self.diff_percent,
            "tolerance": self.tolerance, "status": self.status, "cause": c.cause,
            "explanation": c.explanation, "note": self.note,
            "evidence": [{"label": e.label, "value": e.value, "unit": e.unit, "display": e.display(),
                          "reproduces": e.reproduces, "reproduced": e.reproduced} for e in self.evidence],
        }


def _num(x: float) -> str:
    return f"{x:,.10f}".rstrip("0").rstrip(".")


def _display(value: Any, unit: str, decimals: int | None) -> str:
    if isinstance(value, str):
        return value
    scale, suffix = UNITS[unit]
    x = value / scale
    if decimals is None:
        if isinstance(value, int) and scale == 1:
            return f"{value:,}{suffix}"
        decimals = 2 if abs(x) >= 1 else 4
    return f"{x:,.{decimals}f}{suffix}"


def _decimals(printed: str) -> int:
    s = printed.strip().lstrip("+-")
    return len(s.split(".", 1)[1]) if "." in s else 0


def _places(printed: str, approx: bool) -> int:
    """Decimal places of the last significant printed digit; negative for the trailing zeros of
    an approximate integer ('~140': -1, the tens)."""
    places = _decimals(printed)
    digits = printed.strip().lstrip("+-")
    if places == 0 and approx and digits.rstrip("0"):
        places = -(len(digits) - len(digits.rstrip("0")))
    return places


def tolerance_of(printed: str, approx: bool = False) -> float:
    """Half a unit in the last significant printed digit: '4.2' -> 0.05; '569' -> 0.5; an
    approximate integer's trailing zeros are not significant: '~140' -> 5."""
    return 0.5 * 10.0 ** (-_places(printed, approx))


def rounds_to(x: float, printed: str, mode: str, approx: bool) -> bool:
    """Does ``x``, rounded to the printed precision (half up, or down), print as ``printed``?"""
    step = Decimal(1).scaleb(-_places(printed, approx))
    n = (Decimal(repr(float(x))) / step).to_integral_value(rounding=ROUND_FLOOR if mode == "down" else ROUND_HALF_UP)
    return n * step == Decimal(printed)


def _normalise(text: str) -> str:
    """Compare shapes as printed: '×' is 'x', '224 × 224' is '224x224', runs of spaces are one."""
    text = " ".join(str(text).replace("×", "x").replace("−", "-").split())
    return re.sub(r"(?<=\d) ?x ?(?=\d)", "x", text)


def check(claim: Claim, ctx: Context) -> Row:
    """Recompute one claim and give it its status."""
    try:
        computed = ctx.compute(claim.compute, claim.vars)
        model = ctx.model(claim.model) if claim.model else None
        evidence = tuple(_evidence(ev, claim, ctx) for ev in claim.evidence)
    except UserError as e:
        raise UserError(f"{claim.origin}: {e}") from None
    label = model.label if model else None
    shape = "x".join(map(str, model.input_shape[1:])) if model else None
    note = ""
    if claim.numeric:
        if isinstance(computed, str):
            raise UserError(f"{claim.origin}: quantity '{claim.compute['quantity']}' gives "
                            f"text ('{computed}'); give the course value as 'course' without 'value'")
        scale = UNITS[claim.unit][0]
        if claim.course_formula is not None:
            course_value, tol = evaluate(claim.course_formula, claim.vars), 0.0
        else:
            course_value = float(Decimal(claim.value))
            exact = claim.quantity.exact and scale == 1 and "." not in claim.value and not claim.approx
            tol = 0.0 if exact else tolerance_of(claim.value, claim.approx)
        x = computed / scale
        diff = x - course_value
        diff_percent = 100 * diff / course_value if course_value else None
        within = abs(diff) <= tol + 1e-9 * max(1.0, abs(course_value))
        if claim.bound:
            tol, within = 0.0, (x > course_value if claim.bound == "above" else x < course_value)
    else:
        course_value, tol, diff_percent = _normalise(claim.text or claim.course), 0.0, None
        within = _normalise(computed) == course_value
    if within:
        status = "ok"
        if claim.status:
            note = "recorded as a known discrepancy, but it now agrees: the record is stale"
    elif claim.status == "known-discrepancy":
        failed = [e.label for e in evidence if e.reproduced is False]
        if failed:
            status = "FAIL"
            note = "the recorded cause no longer reproduces the course's value: " + "; ".join(failed)
        else:
            status = "known-discrepancy"
    else:
        status = "FAIL"
    return Row(claim, label, shape, course_value, computed, tol, diff_percent, status, note, evidence)


def _evidence(ev: dict[str, Any], claim: Claim, ctx: Context) -> Evidence:
    spec = {k: v for k, v in ev.items() if k not in EVIDENCE_FIELDS}
    value = ctx.compute(spec, claim.vars)
    unit = ev.get("unit", claim.unit)
    mode = ev.get("reproduces")
    reproduced = None
    if mode:
        reproduced = not isinstance(value, str) and rounds_to(value / UNITS[claim.unit][0], claim.value, mode,
                                                               claim.approx)
    return Evidence(ev["label"], value, unit, mode, reproduced)


@dataclass(frozen=True)
class VerifyResult:
    data: str
    rows: tuple[Row, ...]
    facts: tuple[Fact, ...]
    only: str | None

    @property
    def summary(self) -> dict[str, int]:
        return {s: sum(1 for r in self.rows if r.status == s) for s in STATUSES}

    def raise_if_failed(self) -> None:
        failed = [r.claim.id for r in self.rows if r.status == "FAIL"]
        if failed:
            shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
            raise ClaimsFailed(f"{len(failed)} of {len(self.rows)} claims FAIL: {shown}")

    def summary_line(self) -> str:
        s = self.summary
        return f"{s['ok']} ok, {s['known-discrepancy']} known-discrepancy, {s['FAIL']} FAIL"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "data": self.data,
            "only": self.only,
            "units": {"MACs": "multiply-accumulates (the papers' mult-adds)",
                      "tolerance": "in the row's unit: half a unit in the last printed digit; 0: exact"},
            "summary": self.summary,
            "rows": [r.to_dict() for r in self.rows],
            "facts": [{"section": f.section, "text": f.text, "why": f.why} for f in self.facts],
        }


def verify(data: str | None = None, only: str | None = None) -> VerifyResult:
    """Recompute every claim of the data file (the shipped one by default); ``only``: a glob over
    the claim ids, e.g. 'mobilenet*'."""
    claims_data = load(data)
    claims = claims_data.claims
    if only:
        claims = tuple(c for c in claims if fnmatch.fnmatch(c.id.lower(), only.lower()))
        if not claims:
            raise UserError(f"no claim id matches '{only}' in {claims_data.path}")
    ctx = Context()
    rows = tuple(check(c, ctx) for c in claims)
    return VerifyResult(claims_data.path, rows, claims_data.facts if not only else (), only)
