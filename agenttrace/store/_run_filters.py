"""The filter language of runs and experiments: the trace filter's parser over other fields.

Runs are searched with the same syntax traces are (MLflow's, plus OR, NOT and parentheses), so the
tokenizer, the grammar, value parsing and error messages are the trace filter's own (imported from
`_filters`); only the field table differs. A field is a SQL fragment over `runs r` joined to
`experiments e`:

    metrics.accuracy > 0.9 AND params.lr = '0.1' AND tags.team = 'search' AND status = 'FINISHED'

`params.x`, `metrics.x` (the latest value) and `tags.x` are scalar subqueries on the key, with the
key bound as a parameter: a run without the key compares as NULL, so `metrics.x IS NULL` finds
it. Every user-typed value, keys included, travels as a bound parameter.
"""

from __future__ import annotations

import re
from typing import Any

from agenttrace.errors import UnknownFieldError
from agenttrace.store._filters import _Parser, _Tok

__all__ = [
    "EXPERIMENT_FIELDS",
    "RUN_FIELDS",
    "compile_experiment_filter",
    "compile_run_filter",
    "compile_run_order",
]

# field -> (SQL over runs r JOIN experiments e, kind); `attributes.<field>` is accepted too (MLflow).
_RUN_COLUMNS: dict[str, tuple[str, str]] = {
    "run_id": ("r.run_id", "text"),
    "name": ("r.name", "text"),
    "run_name": ("r.name", "text"),
    "status": ("r.status", "text"),
    "experiment": ("e.name", "text"),
    "experiment_id": ("r.experiment_id", "number"),
    "parent_run_id": ("r.parent_run_id", "text"),
    "user": ("r.user_name", "text"),
    "start_time": ("r.start_time_ns", "time"),
    "end_time": ("r.end_time_ns", "time"),
}
_RUN_KEYED: dict[str, tuple[str, str]] = {
    "params": ("(SELECT p.value FROM run_params p WHERE p.run_id = r.run_id AND p.key = ?)", "text"),
    "metrics": ("(SELECT m.value FROM run_latest_metrics m WHERE m.run_id = r.run_id AND m.key = ?)", "number"),
    "tags": ("(SELECT g.value FROM run_tags g WHERE g.run_id = r.run_id AND g.key = ?)", "text"),
}
RUN_FIELDS = sorted([*_RUN_COLUMNS, "params.<key>", "metrics.<key>", "tags.<key>"])

_EXPERIMENT_COLUMNS: dict[str, tuple[str, str]] = {
    "experiment_id": ("e.experiment_id", "number"),
    "name": ("e.name", "text"),
    "lifecycle": ("e.lifecycle", "text"),
    "description": ("e.description", "text"),
    "created_time": ("e.created_ns", "time"),
}
_EXPERIMENT_KEYED = {"tags": ("json_extract_string(e.tags, ?)", "text")}
EXPERIMENT_FIELDS = sorted([*_EXPERIMENT_COLUMNS, "tags.<key>"])


def _split(name: str) -> tuple[str, str]:
    head, _, key = name.partition(".")
    return head, key.strip('`"')


class _FieldParser(_Parser):
    """The trace filter's parser with a field table of its own."""

    def __init__(
        self,
        text: str,
        columns: dict[str, tuple[str, str]],
        keyed: dict[str, tuple[str, str]],
        valid: list[str],
        json_keys: bool = False,
    ) -> None:
        super().__init__(text)
        self.columns = columns
        self.keyed = keyed
        self.valid = valid
        self.json_keys = json_keys

    def _field(self, tok: _Tok) -> tuple[str, str, bool]:
        name = tok.text
        head, key = _split(name)
        if head == "attributes" and key in self.columns:
            name = key
        if name in self.columns:
            sql, kind = self.columns[name]
            return sql, kind, False
        if head in self.keyed and key:
            sql, kind = self.keyed[head]
            self.params.append(_json_path(key) if self.json_keys else key)
            return sql, kind, False
        raise UnknownFieldError(
            f"unknown field {name!r} at position {tok.pos}; valid fields: {', '.join(self.valid)}",
            position=tok.pos,
        )


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def _compile(parser: _FieldParser) -> tuple[str, list[Any]]:
    if not parser.text.strip():
        return "TRUE", []
    return parser.parse(), parser.params


def compile_run_filter(text: str | None) -> tuple[str, list[Any]]:
    """A SQL boolean over `runs r JOIN experiments e` and its parameters."""
    return _compile(_FieldParser(text or "", _RUN_COLUMNS, _RUN_KEYED, RUN_FIELDS))


def compile_experiment_filter(text: str | None) -> tuple[str, list[Any]]:
    """A SQL boolean over `experiments e` and its parameters."""
    return _compile(_FieldParser(text or "", _EXPERIMENT_COLUMNS, _EXPERIMENT_KEYED, EXPERIMENT_FIELDS, True))


_ORDER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.(?:`[^`]+`|\"[^\"]+\"|[^\s`\"]+))?)\s*(ASC|DESC)?\s*$", re.I)


def compile_run_order(items: list[str] | str | None) -> tuple[str, list[Any]]:
    """["metrics.acc DESC", "start_time"] as an ORDER BY list (missing values last) and its parameters."""
    if not items:
        return "r.start_time_ns DESC, r.run_id", []
    parts, params = [], []
    for item in [items] if isinstance(items, str) else items:
        m = _ORDER.match(item)
        head, key = _split(m.group(1)) if m else ("", "")
        if m and head == "attributes" and key in _RUN_COLUMNS:
            head, key = key, ""
        if m and (m.group(1) in _RUN_COLUMNS or head in _RUN_COLUMNS and not key):
            sql = _RUN_COLUMNS[head if head in _RUN_COLUMNS else m.group(1)][0]
        elif m and head in _RUN_KEYED and key:
            sql = _RUN_KEYED[head][0]
            params.append(key)
        else:
            raise UnknownFieldError(
                f"cannot order by {item!r}; use a field and optional ASC/DESC, fields: {', '.join(RUN_FIELDS)}"
            )
        parts.append(f"{sql} {(m.group(2) or 'ASC').upper()} NULLS LAST")
    return ", ".join([*parts, "r.run_id"]), params
