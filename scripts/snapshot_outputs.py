"""Every output archlab prints for the registered models, one file each, to compare two commits.

    python scripts/snapshot_outputs.py OUT_DIR

writes, for every registered model, the JSON of ``count``, ``trace``, ``rf`` and ``memory`` and the
table/csv/md of ``count``; and the JSON and table of ``list``, ``dwsc`` (one layer and a sweep),
``compare`` (one model's scaling, two and three models), ``efficientnet`` (phi 1 and 3) and
``verify``. Each file starts with the exit code and what went to stderr. Run it at two commits
and ``diff -r`` the folders: a change of layout must leave every file as it was (new models and
new claims add files and rows, nothing else). The list cache is off, so nothing is reused.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys


def main(out: str) -> int:
    os.environ["ARCHLAB_CACHE_DIR"] = "off"
    os.makedirs(out, exist_ok=True)
    from archlab.cli import main as archlab

    def run(name: str, args: list[str]) -> str:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = archlab(args)
            except SystemExit as e:
                code = e.code
        with open(os.path.join(out, name), "w") as f:
            f.write(f"# exit {code}\n# stderr {stderr.getvalue()}\n{stdout.getvalue()}")
        return stdout.getvalue()

    listing = json.loads(run("list.json", ["list", "-f", "json"]))
    rows = listing["models"] if isinstance(listing, dict) else listing
    for name in (r["name"] for r in rows):
        for command in ("count", "trace", "rf", "memory"):
            run(f"{command}-{name}.json", [command, name, "-f", "json"])
        for fmt in ("table", "csv", "md"):
            run(f"count-{name}.{fmt}", ["count", name, "-f", fmt])
    others = [["dwsc"], ["dwsc", "--sweep", "n=64..2048"], ["compare", "mobilenet", "--alpha", "0.5", "--rho", "160"],
              ["compare", "resnet152", "vgg19"], ["compare", "googlenet", "resnet50", "mobilenet_v2"],
              ["efficientnet", "--phi", "1"], ["efficientnet", "--phi", "3"], ["verify"]]
    for i, args in enumerate(others):
        run(f"misc{i}-{'_'.join(args)}.json", args + ["-f", "json"])
        run(f"misc{i}-{'_'.join(args)}.table", args)
    print(f"{len(os.listdir(out))} files in {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
