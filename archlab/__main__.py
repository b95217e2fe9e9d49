from archlab.cli import run

run()
