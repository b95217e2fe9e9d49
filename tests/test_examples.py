"""examples/: every script runs and prints something."""

import os


def test_examples_run():
    import subprocess
    import sys

    folder = os.path.join(os.path.dirname(__file__), "..", "examples")
    scripts = sorted(f for f in os.listdir(folder) if f.endswith(".py"))
    assert len(scripts) >= 4
    for script in scripts:
        p = subprocess.run([sys.executable, os.path.join(folder, script)], capture_output=True, text=True,
                           cwd=folder, timeout=300)
        assert p.returncode == 0, (script, p.stderr[-2000:])
        assert p.stdout.strip(), f"{script} printed nothing"
