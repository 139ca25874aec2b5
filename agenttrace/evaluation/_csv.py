"""CSV datasets, read as text: what the file says is what the record holds.

pandas guesses types per column, so a ZIP code `02134` became 2134.0, a version `3.10` became 3.1
and `007` became 7.0, and `exact_match` then failed against what the file plainly said. Here every
cell is text unless its column asks otherwise with a suffix on the header: ``inputs.k:int``,
``expectations.score:float``, ``inputs.strict:bool`` or ``inputs.options:json``. An empty cell
means the field is absent (CSV cannot tell an empty string from a missing value).

The standard library's csv reader is used instead of pandas so that every problem names the file
and the line it is on (``data.csv:7: 3 fields, the header has 2``), a UTF-8 BOM is skipped, and a
malformed or empty file is an agenttrace DatasetError rather than a pandas traceback.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agenttrace.errors import DatasetError

__all__ = ["read_csv_rows"]

_TRUE, _FALSE = frozenset({"true", "yes", "1"}), frozenset({"false", "no", "0"})


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    raise ValueError(f"{text!r} is not true/false, yes/no or 1/0")


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": _bool,
    "json": json.loads,
}


def _columns(header: list[str], where: str) -> list[tuple[str, Callable[[str], Any], str]]:
    """(field name, converter, type name) per header cell: 'inputs.k:int' -> ('inputs.k', int, 'int')."""
    columns = []
    for cell in header:
        name, sep, kind = cell.strip().rpartition(":") if ":" in cell else (cell.strip(), "", "str")
        kind = kind.strip().lower() if sep else "str"
        if kind not in _CONVERTERS:
            raise DatasetError(
                f"{where}: column {cell!r} asks for type {kind!r}; use one of {', '.join(_CONVERTERS)} "
                "(e.g. inputs.k:int), or no suffix for text"
            )
        if not name:
            raise DatasetError(f"{where}: the header has an empty column name; name every column")
        columns.append((name, _CONVERTERS[kind], kind))
    return columns


def read_csv_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, {column: value}) for each data row; empty cells are left out."""
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise DatasetError(
                    f"{path}: the CSV file is empty; give a header row (inputs.<name>, expectations.<name>, "
                    "or inputs as JSON) and one row per record"
                )
            columns = _columns(header, f"{path}:1")
            previous_end = reader.line_num
            for cells in reader:
                line = previous_end + 1
                previous_end = reader.line_num
                if not cells or not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(columns):
                    raise DatasetError(
                        f"{path}:{line}: {len(cells)} fields, the header has {len(columns)}; "
                        "quote cells that contain commas"
                    )
                rows.append((line, _typed(cells, columns, f"{path}:{line}")))
    except csv.Error as exc:
        raise DatasetError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    return rows


def _typed(cells: list[str], columns: list[tuple[str, Callable[[str], Any], str]], where: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for text, (name, convert, kind) in zip(cells, columns, strict=True):
        if text == "":
            continue
        try:
            row[name] = convert(text)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise DatasetError(f"{where}: column {name!r} is typed {kind} but holds {text[:60]!r} ({exc})") from exc
    return row
