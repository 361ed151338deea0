"""``python -m flows.cli``: the ``loyalty`` command."""

from flows.cli import app

app()
