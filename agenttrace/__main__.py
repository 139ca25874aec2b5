"""`python -m agenttrace` runs the CLI."""

# Guarded, import included: the server's converter processes are spawned, and spawning imports the
# main module again, where the whole CLI would only slow every converter's start.
if __name__ == "__main__":
    from agenttrace.cli import main

    main()
