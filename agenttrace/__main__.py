"""`python -m agenttrace` runs the CLI."""

from agenttrace.cli import main

# Guarded: the server's converter processes are spawned, and spawning imports the main module again.
if __name__ == "__main__":
    main()
