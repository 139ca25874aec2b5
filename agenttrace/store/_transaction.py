"""One transaction whose failure is reported as itself, never as the rollback's failure.

When a statement or the COMMIT fails for a reason outside the transaction (a full disk, an I/O
error), DuckDB may already have ended the transaction, and the ROLLBACK that follows raises
"cannot rollback - no transaction is active". Raised from an `except` block, that second error
would replace the first, and the user would read about a rollback instead of a full disk. Here
the first error is always the one raised; a failed rollback is added to it as a note.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

__all__ = ["transaction"]


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in BEGIN ... COMMIT; on any error roll back and re-raise that error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException as exc:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error as rollback_exc:
            exc.add_note(f"(the rollback after it failed too: {rollback_exc})")
        raise
