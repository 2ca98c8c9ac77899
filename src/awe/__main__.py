"""``python -m awe`` runs the CLI."""

from awe.cli.main import main

main()
