"""The trace filter language, parsed into parameterised SQL.

Follows MLflow's search syntax and extends it with OR, NOT and parentheses:

    status = 'ERROR' AND duration_ms > 500 AND tags.env = 'prod' AND name LIKE 'plan%'
    timestamp > '2026-11-01' OR span.type = 'TOOL'

Field names come from a fixed table and map to SQL fragments written here; every value the user
typed travels as a bound parameter, so no user text is ever spliced into SQL. Errors name the
offending token and its position.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agenttrace.errors import FilterError, UnknownFieldError
from agenttrace.schema import SPAN_COLUMNS, TRACE_COLUMNS, Fold, Kind

__all__ = ["FIELDS", "compile_filter", "compile_order_by", "order_by_items"]

_KINDS = {Kind.TEXT: "text", Kind.INT64: "number", Kind.FLOAT64: "number"}


def _trace_fields() -> dict[str, tuple[str, str]]:
    """field name -> (SQL over the traces table aliased t, kind), from the declared trace columns."""
    fields: dict[str, tuple[str, str]] = {}
    for column in TRACE_COLUMNS:
        if not column.public or column.kind not in _KINDS:
            continue
        if column.name.endswith("_time_ns"):  # searched as times, by the names search results show
            fields[column.name[: -len("_ns")]] = (f"t.{column.name}", "time")
        else:
            fields[column.name] = (f"t.{column.name}", _KINDS[column.kind])
    fields["timestamp"] = fields["start_time"]
    return fields


def _span_fields() -> dict[str, tuple[str, str]]:
    """`span.<column>` -> (SQL over the spans table aliased s, kind), from the declared span columns."""
    fields = {
        f"span.{c.name}": (f"s.{c.name}", _KINDS[c.kind])
        for c in SPAN_COLUMNS
        if c.stored and c.kind in _KINDS and not c.name.endswith(("_id", "_ns"))
    }
    fields["span.type"] = fields["span.span_type"]  # the short name the README uses
    return fields


_COLUMNS = _trace_fields()
_SPAN_COLUMNS = _span_fields()
_JSON_PREFIXES = {
    c.name: f"t.{c.name}" for c in TRACE_COLUMNS if c.public and c.kind is Kind.JSON and c.fold is Fold.MERGE
}
FIELDS = sorted([*_COLUMNS, *_SPAN_COLUMNS, *(f"{prefix}.<key>" for prefix in _JSON_PREFIXES)])

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z0-9_\-]+|`[^`]+`|"[^"]+"))*)
    """,
    re.VERBOSE,
)
_MAX_NESTING = 50
_KIND_NAMES = {
    "op": "a comparison (=, !=, <, <=, >, >=)",
    "string": "a quoted value",
    "number": "a number",
    "ident": "a field name",
    "lparen": "'('",
    "rparen": "')'",
    "end": "the end of the filter",
}
_KEYWORDS = {"AND", "OR", "NOT", "LIKE", "ILIKE", "IN", "IS", "NULL", "TRUE", "FALSE"}


@dataclass(slots=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise FilterError(f"unexpected character {text[pos]!r} at position {pos} in filter {text!r}", position=pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            word = m.group()
            if kind == "ident" and word.upper() in _KEYWORDS:
                kind = word.upper()
            tokens.append(_Tok(kind, word, pos))
        pos = m.end()
    tokens.append(_Tok("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.params: list[Any] = []
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self, *kinds: str) -> _Tok:
        tok = self.peek()
        if tok.kind not in kinds:
            found = "end of filter" if tok.kind == "end" else f"`{tok.text}`"
            wanted = " or ".join(_KIND_NAMES.get(k, k) for k in kinds)
            raise FilterError(
                f"expected {wanted} but found {found} at position {tok.pos} in filter {self.text!r}",
                position=tok.pos,
            )
        self.i += 1
        return tok

    def parse(self) -> str:
        sql = self.or_expr()
        self.take("end")
        return sql

    def or_expr(self) -> str:
        parts = [self.and_expr()]
        while self.peek().kind == "OR":
            self.i += 1
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def and_expr(self) -> str:
        parts = [self.unary()]
        while self.peek().kind == "AND":
            self.i += 1
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def unary(self) -> str:
        tok = self.peek()
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise FilterError(f"filter nests deeper than {_MAX_NESTING} at position {tok.pos}", position=tok.pos)
        try:
            if tok.kind == "NOT":
                self.i += 1
                return f"(NOT {self.unary()})"
            if tok.kind == "lparen":
                self.i += 1
                inner = self.or_expr()
                self.take("rparen")
                return inner
            return self.comparison()
        finally:
            self.depth -= 1

    def comparison(self) -> str:
        field_tok = self.take("ident")
        sql, kind, span_scoped = self._field(field_tok)
        op_tok = self.peek()
        if op_tok.kind == "IS":
            self.i += 1
            negate = self.peek().kind == "NOT"
            if negate:
                self.i += 1
            self.take("NULL")
            cond = f"{sql} IS {'NOT ' if negate else ''}NULL"
        else:
            negate = op_tok.kind == "NOT"
            if negate:
                self.i += 1
            op = self.take("op", "LIKE", "ILIKE", "IN")
            if op.kind == "IN":
                self.take("lparen")
                values = [self._value(kind, field_tok)]
                while self.peek().kind == "comma":
                    self.i += 1
                    values.append(self._value(kind, field_tok))
                self.take("rparen")
                self.params.extend(values)
                cond = f"{sql} {'NOT ' if negate else ''}IN ({', '.join('?' * len(values))})"
            elif op.kind in ("LIKE", "ILIKE"):
                self.params.append(self._value("text", field_tok))
                cond = f"{sql} {'NOT ' if negate else ''}{op.kind} ?"
            else:
                if negate:
                    raise FilterError(f"NOT before {op.text!r} at position {op.pos}; write != instead", position=op.pos)
                self.params.append(self._value(kind, field_tok))
                cond = f"{sql} {'<>' if op.text == '!=' else op.text} ?"
        if span_scoped:
            return f"EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND {cond})"
        return cond

    def _field(self, tok: _Tok) -> tuple[str, str, bool]:
        name = tok.text
        if name in _COLUMNS:
            sql, kind = _COLUMNS[name]
            return sql, kind, False
        if name in _SPAN_COLUMNS:
            sql, kind = _SPAN_COLUMNS[name]
            return sql, kind, True
        head, _, key = name.partition(".")
        if head in _JSON_PREFIXES and key:
            key = key.strip('`"')
            self.params.append('$."' + key.replace('"', '\\"') + '"')
            return f"json_extract_string({_JSON_PREFIXES[head]}, ?)", "text", False
        raise UnknownFieldError(
            f"unknown field {name!r} at position {tok.pos}; valid fields: {', '.join(FIELDS)}",
            position=tok.pos,
        )

    def _value(self, kind: str, field_tok: _Tok) -> Any:
        tok = self.take("string", "number", "TRUE", "FALSE")
        if tok.kind == "string":
            raw = tok.text[1:-1].replace("''", "'").replace("\\'", "'").replace('\\"', '"')
            if kind == "time":
                return _parse_time(raw, tok)
            if kind == "number":
                try:
                    return float(raw)
                except ValueError:
                    raise FilterError(
                        f"{field_tok.text} is numeric but got {tok.text} at position {tok.pos}", position=tok.pos
                    ) from None
            return raw
        if tok.kind == "number":
            number = float(tok.text)
            if not math.isfinite(number) or abs(number) >= 2**62:
                raise FilterError(f"number {tok.text} at position {tok.pos} is out of range", position=tok.pos)
            if kind == "time":
                if abs(number) >= 9e12:  # past year 2255 in milliseconds: no nanosecond BIGINT holds it
                    raise FilterError(f"time {tok.text} at position {tok.pos} is out of range", position=tok.pos)
                return int(number * 1_000_000)  # milliseconds since the epoch, as MLflow
            return str(tok.text) if kind == "text" else number
        return tok.kind == "TRUE" if kind != "text" else tok.kind.lower()


def _parse_time(raw: str, tok: _Tok) -> int:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise FilterError(
            f"cannot read {tok.text} at position {tok.pos} as a time; use ISO 8601 like '2026-11-01' "
            "or '2026-11-01T12:00:00+00:00', or milliseconds since the epoch",
            position=tok.pos,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000_000)


def compile_filter(text: str | None) -> tuple[str, list[Any]]:
    """Return a SQL boolean expression over `traces t` and its parameters."""
    if text is None or not text.strip():
        return "TRUE", []
    parser = _Parser(text)
    sql = parser.parse()
    return sql, parser.params


_ORDER = re.compile(r"^\s*([A-Za-z_]+)\s*(ASC|DESC)?\s*$", re.IGNORECASE)


def order_by_items(order_by: object) -> list[str]:
    """order_by as a list of "field [ASC|DESC]" texts; anything but text or a list of texts is refused.

    Checked before any SQL is built, so a wrong type is reported as what it is rather than as the
    store refusing a query.
    """
    if order_by is None:
        return []
    if isinstance(order_by, str):
        return [order_by]
    if isinstance(order_by, list | tuple) and all(isinstance(item, str) for item in order_by):
        return list(order_by)
    raise FilterError(f"order_by must be a string or a list of strings like ['duration_ms DESC'], got {order_by!r}")


def compile_order_by(order_by: list[str] | str | None) -> str:
    """Turn ["duration_ms DESC", "name"] into an ORDER BY list of known columns."""
    items = order_by_items(order_by)
    if not items:
        return "t.start_time_ns DESC, t.trace_id"
    parts = []
    for item in items:
        m = _ORDER.match(item)
        if not m or m.group(1) not in _COLUMNS:
            raise UnknownFieldError(
                f"cannot order by {item!r}; use a field and optional ASC/DESC, fields: {', '.join(sorted(_COLUMNS))}"
            )
        parts.append(f"{_COLUMNS[m.group(1)][0]} {(m.group(2) or 'ASC').upper()}")
    return ", ".join([*parts, "t.trace_id"])
