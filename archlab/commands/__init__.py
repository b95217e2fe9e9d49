"""Commands that live in their own modules. Each module decorates its command functions with
``@app.command(...)`` on ``archlab.cli.app``; ``archlab.cli`` imports this package after the
app and its shared options exist. Modules here must not import torch at import time."""

from archlab.commands import latency, laws, verify  # noqa: F401
