"""Structured-output checks: does the output parse as JSON, and does it satisfy a JSON Schema.

A string output is parsed; a dict or list output is already structured and is checked as it is.
Models often wrap JSON in a Markdown code fence, so one surrounding fence is removed by default;
turn ``allow_code_fence`` off to demand bare JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for

from agenttrace.errors import InvalidArgumentError
from agenttrace.records import Score

from ._common import HeuristicScorer, clip

__all__ = ["JsonSchema", "JsonValid"]

_SCALARS = {int: "number", float: "number", str: "string"}
_FENCE = re.compile(r"\A```[\w-]*[ \t]*\n(.*?)\n?```\Z", re.DOTALL)


class _NotJson(Exception):
    """The output cannot be read as JSON; the message says why, for the rationale."""


def _load(outputs: Any, allow_code_fence: bool) -> Any:
    """Return the JSON value an output holds, or raise _NotJson saying why it holds none."""
    if outputs is None:
        raise _NotJson("the output is empty")
    if not isinstance(outputs, str):
        try:
            json.dumps(outputs)
        except (TypeError, ValueError) as exc:
            raise _NotJson(f"the output holds a value JSON cannot represent: {exc}") from exc
        return outputs
    text = outputs.strip()
    fenced = _FENCE.match(text) if allow_code_fence else None
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        raise _NotJson("the output is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _NotJson(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"a JSON object with {_count(len(value), 'key')}"
    if isinstance(value, list | tuple):
        return f"a JSON array of {_count(len(value), 'item')}"
    kind = "null" if value is None else "boolean" if isinstance(value, bool) else _SCALARS.get(type(value), "value")
    return f"a JSON {kind} ({clip(json.dumps(value), 30)})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class JsonValid(HeuristicScorer):
    """Passes when the output is JSON; by default it must be an object or array, not a bare scalar.

    A bare ``3`` or ``"yes"`` is valid JSON, but an agent asked for structured output that
    returns one has not produced structure, so ``require_container`` is on unless turned off.
    """

    name = "json_valid"
    aggregation = "boolean"

    def __init__(
        self, *, require_container: bool = True, allow_code_fence: bool = True, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        self.require_container = require_container
        self.allow_code_fence = allow_code_fence

    def score(self, *, outputs: Any = None) -> Score:
        try:
            value = _load(outputs, self.allow_code_fence)
        except _NotJson as exc:
            return Score(False, rationale=str(exc))
        if self.require_container and not isinstance(value, Mapping | list | tuple):
            return Score(False, rationale=f"parsed {_describe(value)}, not an object or array")
        return Score(True, rationale=f"parsed {_describe(value)}")


class JsonSchema(HeuristicScorer):
    """Passes when the output is JSON that validates against ``schema``.

    The schema's own ``$schema`` picks the draft (2020-12 when absent). It is checked here, so a
    broken schema fails when the scorer is built rather than once per record. The rationale lists
    the first ``max_errors`` violations as ``json-path: message``.
    """

    name = "json_schema"
    aggregation = "boolean"

    def __init__(
        self,
        schema: Mapping[str, Any] | bool,
        *,
        allow_code_fence: bool = True,
        max_errors: int = 5,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        cls = validator_for(schema)
        try:
            if not isinstance(schema, bool):  # true and false are complete schemas; the check takes objects
                cls.check_schema(dict(schema))
        except SchemaError as exc:
            raise InvalidArgumentError(f"JsonSchema: the schema is invalid at {exc.json_path}: {exc.message}") from exc
        self.schema = schema
        self._validator = cls(schema)
        self.allow_code_fence = allow_code_fence
        self.max_errors = max_errors

    def score(self, *, outputs: Any = None) -> Score:
        try:
            value = _load(outputs, self.allow_code_fence)
        except _NotJson as exc:
            return Score(False, rationale=str(exc))
        errors = sorted(self._validator.iter_errors(value), key=lambda e: (e.json_path, e.message))
        if not errors:
            return Score(True, rationale=f"{_describe(value)} that matches the schema")
        shown = "; ".join(f"{e.json_path}: {clip(e.message, 120)}" for e in errors[: self.max_errors])
        more = f" (and {len(errors) - self.max_errors} more)" if len(errors) > self.max_errors else ""
        noun = "violation" if len(errors) == 1 else "violations"
        return Score(
            False,
            rationale=f"{len(errors)} schema {noun}: {shown}{more}",
            metadata={"errors": [{"path": e.json_path, "message": e.message} for e in errors]},
        )
