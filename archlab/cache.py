"""A small on-disk cache for results that only change with the code: ``archlab list``'s rows.

The key is a hash of every source file of the installed archlab package and of torch's version
(read from its metadata, without importing it), so an edit to a model, to the trace or to the
counting rules, or another torch, starts afresh. The files live in ``$ARCHLAB_CACHE_DIR``,
else ``$XDG_CACHE_HOME/archlab``, else ``~/.cache/archlab``; ``ARCHLAB_CACHE_DIR=off`` turns
the cache off. A cache that cannot be read or written is ignored: it is never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parent


def directory() -> Path | None:
    chosen = os.environ.get("ARCHLAB_CACHE_DIR")
    if chosen:
        return None if chosen.lower() == "off" else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archlab"


def code_key() -> str:
    """What the cached results depend on: archlab's sources and torch's version."""
    from importlib import metadata

    digest = hashlib.sha256()
    try:
        digest.update(metadata.version("torch").encode())
    except metadata.PackageNotFoundError:
        digest.update(b"no torch metadata")
    for path in sorted(_PACKAGE.rglob("*")):
        if path.suffix in (".py", ".toml") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(_PACKAGE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _path(name: str) -> Path | None:
    folder = directory()
    return None if folder is None else folder / f"archlab-{name}-{code_key()}.json"


def _ours(name: str) -> re.Pattern[str]:
    """The names of the files this module writes for ``name`` (and no other file)."""
    return re.compile(rf"archlab-{re.escape(name)}-[0-9a-f]{{16}}\.json")


def load(name: str) -> Any | None:
    path = _path(name)
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def store(name: str, data: Any) -> None:
    path = _path(name)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ours = _ours(name)
        for old in path.parent.iterdir():  # this cache's results for other code versions, nothing else
            if old != path and ours.fullmatch(old.name):
                old.unlink(missing_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
