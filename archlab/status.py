"""What archlab is doing now, in a few words ("tracing the forward of ResNet", "timing resnet18"),
for a watcher to name when a step runs long (the command line's notice: ``archlab.cli.progress.watch``).
Library code only records it here; nothing in this module prints."""

from __future__ import annotations

_now = ""


def doing(what: str) -> None:
    """The step under way from now on."""
    global _now
    _now = what


def now() -> str:
    """The step under way ('' before the first)."""
    return _now
