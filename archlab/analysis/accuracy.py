"""Published ImageNet top-1 accuracies, as cited data (``archlab/data/imagenet_top1.toml``):
each value is the paper's, with the paper and the table; archlab computes none of them."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from archlab.errors import UserError


@dataclass(frozen=True)
class PublishedTop1:
    model: str  # the zoo name
    top1: float  # percent, as printed
    source: str
    where: str


def published_top1() -> tuple[PublishedTop1, ...]:
    """Every cited accuracy, in the file's order."""
    text = resources.files("archlab").joinpath("data/imagenet_top1.toml").read_text(encoding="utf-8")
    try:
        entries = tomllib.loads(text)["accuracy"]
    except (tomllib.TOMLDecodeError, KeyError) as e:  # pragma: no cover - the file ships with archlab
        raise UserError(f"archlab/data/imagenet_top1.toml is malformed: {e}") from None
    return tuple(PublishedTop1(e["model"], float(e["top1"]), e["source"], e["where"]) for e in entries)
