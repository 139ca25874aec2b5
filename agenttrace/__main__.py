"""`python -m agenttrace` runs the CLI."""

from agenttrace.cli import main

main()
