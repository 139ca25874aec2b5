"""JSON in and out of the store's JSON columns, and appending Python rows through Arrow."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from agenttrace import jsontext
from agenttrace.jsontext import loads

__all__ = ["append_rows", "dumps", "loads"]


def dumps(value: Any) -> str | None:
    """JSON text for a JSON column, None for SQL NULL."""
    return None if value is None else jsontext.dumps(value)


def append_rows(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list[Any]]) -> None:
    """Insert columns by name in one statement; `table` is always one of ours, never user text."""
    con.register("rows_batch", pa.table(columns))
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rows_batch")
    finally:
        con.unregister("rows_batch")
