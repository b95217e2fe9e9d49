"""The data file: ``[[group]]``, ``[[discrepancy]]`` and ``[[fact]]`` tables read and validated
into claims, each naming a registered quantity (see ``archlab.verify``)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from archlab.errors import UserError
from archlab.models.course import read
from archlab.verify.quantities import QUANTITIES, Quantity, evaluate

CAUSES = {
    "erratum": "the printed value contradicts the source's own definition of the network",
    "rounded-down": "the printed value truncates the count instead of rounding it",
    "convention": "the printed value counts something else (a stated counting convention)",
    "variant": "the printed value is for another variant of the network",
    "idealisation": "the printed value is an idealised law; the built network departs from it as shown",
}
# unit -> (scale, suffix as printed). "Ki" is GoogLeNet's K = 1024.
UNITS = {"": (1, ""), "x": (1, "x"), "k": (1e3, "k"), "Ki": (1024, "K"), "M": (1e6, "M"), "G": (1e9, "G")}
ROW_FIELDS = {"id", "section", "where", "claim", "course", "value", "text", "unit", "approx", "course_formula", "vars",
              "status", "cause", "explanation", "evidence", "bound"}
# a claim that a quantity lies above or below a number (a law's direction: 'dilation enlarges the field'), not
# that it equals one: the row holds when the computed value is strictly on that side of 'value'
BOUNDS = {"above": ">", "below": "<"}
EVIDENCE_FIELDS = {"label", "unit", "reproduces"}


@dataclass(frozen=True)
class Claim:
    index: int  # 1-based position in the file
    id: str
    section: str
    where: str
    claim: str
    course: str  # as printed
    value: str | None  # the printed number (numeric claims); None: a text claim
    text: str | None  # a text claim's value when the printed cell says more (else the course string)
    unit: str
    approx: bool
    course_formula: str | None
    vars: dict[str, Any]
    compute: dict[str, Any]  # quantity and its arguments
    status: str | None  # the expected status: only "known-discrepancy" may be recorded
    cause: str | None
    explanation: str
    evidence: tuple[dict[str, Any], ...]
    about: str = ""  # the group's note (conventions shared by its rows)
    origin: str = ""  # file, group and row: where errors point
    bound: str | None = None  # 'above' | 'below': the computed value must lie strictly on that side of 'value'

    @property
    def quantity(self) -> Quantity:
        return QUANTITIES[self.compute["quantity"]]

    @property
    def numeric(self) -> bool:
        return self.value is not None or self.course_formula is not None

    @property
    def model(self) -> str | None:
        return self.compute.get("model")


@dataclass(frozen=True)
class Fact:
    section: str
    text: str
    why: str
    # measurements other commands show beside their own (never checked): the printed values,
    # keyed by the archlab spec of the network they were measured on
    values: tuple[tuple[str, float], ...] = ()
    source: str = ""


@dataclass(frozen=True)
class ClaimData:
    path: str
    claims: tuple[Claim, ...]
    facts: tuple[Fact, ...]


def load(path: str | None = None) -> ClaimData:
    """Read and validate a claims file; a malformed one raises a UserError naming the file and row.

    The file holds ``[[group]]`` tables (shared fields, an optional ``about`` text and ``rows``:
    one inline table per claim, inheriting the group's fields), ``[[discrepancy]]`` records (the
    cause of a known discrepancy, by claim id) and ``[[fact]]`` entries (claims that are facts,
    not computations, listed in the report and not checked).
    """
    shown, doc = read(path)
    unknown = set(doc) - {"group", "discrepancy", "fact"}
    if unknown:
        raise UserError(f"{shown}: unknown top-level key(s) {', '.join(sorted(unknown))} "
                        "(expected [[group]], [[discrepancy]], [[fact]])")
    records = _discrepancies(doc.get("discrepancy", []), shown)
    groups = doc.get("group", [])
    if not isinstance(groups, list) or not groups:
        raise UserError(f"{shown}: no [[group]] of claims")
    claims, seen = [], set()
    for g, group in enumerate(groups, start=1):
        rows = group.get("rows") if isinstance(group, dict) else None
        if not isinstance(rows, list) or not rows:
            raise UserError(f"{shown}: group #{g}: missing 'rows' (an array of inline tables, one per claim)")
        about = group.get("about", "")
        defaults = {k: v for k, v in group.items() if k not in ("rows", "about")}
        for r, row in enumerate(rows, start=1):
            rid = row.get("id") if isinstance(row, dict) else None
            where = f"{shown}: group #{g}, row #{r}" + (f" ('{rid}')" if isinstance(rid, str) else " (no id)")
            if not isinstance(row, dict):
                raise UserError(f"{where}: not a table")
            if isinstance(rid, str) and rid in seen:
                raise UserError(f"{where}: the id '{rid}' is used twice")
            merged = defaults | row
            record = records.pop(rid, None) if isinstance(rid, str) else None
            if record is not None:
                merged |= record
            claim = _claim(merged, len(claims) + 1, where, about)
            seen.add(claim.id)
            claims.append(claim)
    if records:
        raise UserError(f"{shown}: [[discrepancy]] for unknown claim id(s): {', '.join(sorted(records))}")
    facts = []
    for i, row in enumerate(doc.get("fact", []), start=1):
        missing = [k for k in ("section", "text", "why") if not isinstance(row.get(k), str)]
        if missing:
            raise UserError(f"{shown}: fact #{i}: missing or non-text field(s) {', '.join(missing)}")
        values = row.get("values", {})
        if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
            raise UserError(f"{shown}: fact #{i}: 'values' must be a table of numbers keyed by model spec")
        facts.append(Fact(row["section"], row["text"], row["why"], tuple((k, float(v)) for k, v in values.items()),
                          str(row.get("source", ""))))
    return ClaimData(shown, tuple(claims), tuple(facts))


def _discrepancies(records: Any, shown: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(records, list):
        raise UserError(f"{shown}: 'discrepancy' must be an array of tables ([[discrepancy]])")
    for i, rec in enumerate(records, start=1):
        rid = rec.get("id") if isinstance(rec, dict) else None
        if not isinstance(rid, str):
            raise UserError(f"{shown}: discrepancy #{i}: missing 'id' (the claim it explains)")
        extra = set(rec) - {"id", "cause", "explanation", "evidence"}
        if extra:
            raise UserError(f"{shown}: discrepancy #{i} ('{rid}'): unknown field(s) {', '.join(sorted(extra))}")
        if rid in out:
            raise UserError(f"{shown}: discrepancy #{i} ('{rid}'): recorded twice")
        out[rid] = {k: v for k, v in rec.items() if k != "id"} | {"status": "known-discrepancy"}
    return out


def _claim(row: dict[str, Any], index: int, where: str, about: str = "") -> Claim:
    def bad(msg: str) -> UserError:
        return UserError(f"{where}: {msg}")

    for key in ("id", "section", "where", "claim", "course"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise bad(f"missing field '{key}' (text)")
    compute = {k: v for k, v in row.items() if k not in ROW_FIELDS}
    _check_compute(compute, bad)
    value = row.get("value")
    if value is not None:
        if not isinstance(value, str):
            raise bad("'value' must be the printed number as text (e.g. \"4.2\"), so that its digits are kept")
        try:
            Decimal(value)
        except ArithmeticError:
            raise bad(f"'value' is not a number: '{value}'") from None
        if value.lstrip("-") not in row["course"].replace(",", ""):
            raise bad(f"'value' {value} does not appear in the printed course value '{row['course']}'")
    unit = row.get("unit", "")
    if unit not in UNITS:
        raise bad(f"unknown unit '{unit}' (known: {', '.join(repr(u) for u in UNITS)})")
    course_formula = row.get("course_formula")
    if course_formula is not None and value is not None:
        raise bad("give either 'value' or 'course_formula', not both")
    vars_ = row.get("vars", {})
    if not isinstance(vars_, dict) or not all(isinstance(v, (int, float)) for v in vars_.values()):
        raise bad("'vars' must be a table of numbers")
    if course_formula is not None:
        try:
            evaluate(course_formula, vars_)
        except UserError as e:
            raise bad(str(e)) from None
    status = row.get("status")
    if status is not None and status != "known-discrepancy":
        raise bad(f"'status' can only record 'known-discrepancy', got '{status}'")
    cause, explanation = row.get("cause"), row.get("explanation", "")
    if not isinstance(explanation, str):
        raise bad("'explanation' must be text")
    if status:
        if cause not in CAUSES:
            raise bad(f"a known-discrepancy needs a 'cause' among {', '.join(CAUSES)}")
        if len(explanation.split()) < 8:
            raise bad("a known-discrepancy needs a written 'explanation' of its cause")
        if not row.get("evidence"):
            raise bad("a known-discrepancy needs 'evidence': at least one computation shown beside it")
    elif cause is not None:
        raise bad("'cause' is only for rows with status = \"known-discrepancy\"")
    evidence = row.get("evidence", [])
    if not isinstance(evidence, list):
        raise bad("'evidence' must be an array of tables ([[claim.evidence]])")
    for j, ev in enumerate(evidence, start=1):
        if not isinstance(ev, dict) or not isinstance(ev.get("label"), str):
            raise bad(f"evidence #{j}: needs a 'label'")
        if ev.get("unit", unit) not in UNITS:
            raise bad(f"evidence #{j}: unknown unit '{ev.get('unit')}'")
        if ev.get("reproduces") not in (None, "nearest", "down"):
            raise bad(f"evidence #{j}: 'reproduces' must be \"nearest\" or \"down\"")
        if ev.get("reproduces") and value is None:
            raise bad(f"evidence #{j}: 'reproduces' needs the row's printed 'value'")
        _check_compute({k: v for k, v in ev.items() if k not in EVIDENCE_FIELDS}, lambda m: bad(f"evidence #{j}: {m}"))
    bound = row.get("bound")
    if bound is not None and (bound not in BOUNDS or value is None):
        raise bad(f"'bound' must be one of {', '.join(BOUNDS)}, beside the printed 'value' it bounds")
    text = row.get("text")
    if text is not None and (not isinstance(text, str) or value is not None or course_formula is not None):
        raise bad("'text' (the value of a text claim) must be text, and not beside 'value' or 'course_formula'")
    return Claim(index, row["id"], row["section"], row["where"], row["claim"], row["course"], value, text, unit,
                 bool(row.get("approx", False)), course_formula, dict(vars_), compute, status, cause,
                 " ".join(explanation.split()), tuple(evidence), " ".join(about.split()), where, bound)


def _check_compute(spec: dict[str, Any], bad: Callable[[str], UserError]) -> None:
    name = spec.get("quantity")
    if name is None:
        raise bad("missing field 'quantity'")
    q = QUANTITIES.get(name)
    if q is None:
        raise bad(f"unknown quantity '{name}' (known: {', '.join(sorted(QUANTITIES))})")
    given = set(spec) - {"quantity"}
    unknown = given - set(q.params)
    if unknown:
        raise bad(f"quantity '{name}' takes no {', '.join(sorted(unknown))} "
                  f"(it takes: {', '.join(q.params) or 'nothing'})")
    missing = [p for p, par in q.params.items() if par.default is par.empty and p not in given and p != "vars"]
    if missing:
        raise bad(f"quantity '{name}' needs {', '.join(missing)}")
    for key in given:
        want, v = q.params[key].annotation, spec[key]
        ok = {"str": isinstance(v, str), "list": isinstance(v, list) and all(isinstance(x, str) for x in v),
              "dict": isinstance(v, dict), "float": isinstance(v, (int, float)) and not isinstance(v, bool)}[want]
        if not ok:
            raise bad(f"quantity '{name}': '{key}' must be {_KIND_WORDS[want]}")
        if want == "dict" and key in ("of", "to"):
            _check_compute(v, lambda m, k=key: bad(f"'{k}': {m}"))


_KIND_WORDS = {"str": "text", "list": "a list of texts", "dict": "a table", "float": "a number"}
