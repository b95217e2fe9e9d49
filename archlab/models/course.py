"""The course's data file (``archlab/data/course_claims.toml``) read as it is written: what the
course and its papers print, for the commands that show a printed number beside a computed one
(``compare``'s MobileNet multiplier tables, ``latency``'s MobileNetV2 paper CPU times).

``archlab verify`` (``archlab.verify.data``) builds on the same reader and validates every claim
against its quantities; this module only reads (the shipped file is read once)."""

from __future__ import annotations

import functools
import os
from typing import Any

from archlab.errors import UserError

# archlab/data/course_claims.toml: this module is archlab/models/, one level below archlab/.
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "course_claims.toml")
SHIPPED_NAME = "archlab/data/course_claims.toml"  # as reports name the shipped file, from anywhere
MAX_DATA_BYTES = 16 * 2**20


def read(path: str | None = None) -> tuple[str, dict[str, Any]]:
    """(the file's name as reports show it, its TOML document); a file that cannot be read as TOML
    raises a UserError naming it. Bounded: ``--data /dev/zero`` must not exhaust memory."""
    import tomllib

    shown = path or SHIPPED_NAME
    try:
        with open(path or DEFAULT_DATA, "rb") as f:
            raw = f.read(MAX_DATA_BYTES + 1)
        if len(raw) > MAX_DATA_BYTES:
            raise UserError(f"claims file '{shown}' is larger than {MAX_DATA_BYTES // 2**20} MiB")
        return shown, tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"claims file '{shown}' does not exist") from None
    except OSError as e:
        raise UserError(f"cannot read claims file '{shown}': {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{shown}: not UTF-8 text (byte {e.start}); a claims file is TOML") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{shown}: not valid TOML: {e}") from None
    except RecursionError:
        raise UserError(f"{shown}: not valid TOML here: arrays or tables nested too deeply") from None


@functools.cache
def _shipped() -> dict[str, Any]:
    return read()[1]


def rows() -> list[dict[str, Any]]:
    """Every claim row of the shipped file, with its group's shared fields."""
    out = []
    for group in _shipped().get("group", []):
        shared = {k: v for k, v in group.items() if k not in ("rows", "about")}
        out += [shared | row for row in group.get("rows", [])]
    return out


def paper_cpu() -> tuple[dict[str, float], str]:
    """The MobileNetV2 paper's CPU latencies (ms, keyed by the archlab spec of each network) and
    their source: a ``[[fact]]`` of the shipped file."""
    for fact in _shipped().get("fact", []):
        if fact.get("section") == "MobileNetV2" and fact.get("values"):
            return {k: float(v) for k, v in fact["values"].items()}, str(fact.get("source", ""))
    return {}, ""


def course_value(model: str, alpha: float, resolution: int) -> dict[str, str] | None:
    """The course's MobileNet width/resolution-multiplier table entry for this variant, as printed
    ({claim: value}), or None when the tables have no such row."""
    from archlab.models.resolve import resolve

    out: dict[str, str] = {}
    for row in rows():
        where, spec = str(row.get("where", "")), row.get("model")
        if not where.lower().startswith(("width multiplier table", "resolution multiplier table")) or not spec:
            continue
        r = resolve(spec)
        if r.info.name == model and float(r.options.get("alpha", 1.0)) == float(alpha) \
                and r.input_shape[-1] == resolution:
            out.setdefault(row["claim"], row["course"])
    return out or None
