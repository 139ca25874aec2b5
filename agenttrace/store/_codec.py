"""JSON in and out of the store's JSON columns, and appending Python rows through Arrow."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pyarrow as pa


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, ensure_ascii=False)


def loads(text: Any) -> Any:
    # pandas may hand a missing JSON value over as NaN rather than None
    return json.loads(text) if isinstance(text, str) else None


def append_rows(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list[Any]]) -> None:
    """Insert columns by name in one statement; `table` is always one of ours, never user text."""
    con.register("rows_batch", pa.table(columns))
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rows_batch")
    finally:
        con.unregister("rows_batch")
