"""Judge: a Scorer that renders a jinja2 prompt, asks a JudgeClient and returns a validated Score.

The prompt template is the user message; the system message states the reply format for the
judge's output type. A reply that cannot be used is answered once with a corrective message
(the bad reply, then "Reply only with JSON ..."); a second bad reply raises JudgeError with
``raw_reply`` set. Never a silent default score.

Templates see optional fields leniently (``{{ expectations.expected_answer }}`` of a record without
that key renders empty) but a top-level variable the record lacks entirely (``{{ expectations }}``
with no expectations) raises a JudgeError naming it; ``{% if expectations %}`` is always safe.
Dicts and lists render as indented JSON.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.meta
from jinja2.utils import missing

from agenttrace.records import Score, Trace
from agenttrace.scoring import Scorer
from evaluators.judges.cache import JudgeCache
from evaluators.judges.client import JudgeCall, JudgeClient, JudgeReply
from evaluators.judges.errors import JudgeConfigError, JudgeError
from evaluators.judges.parsing import OutputType, ReplyProblem, Verdict, output_type, parse_verdict

__all__ = ["TEMPLATES_DIR", "CustomJudge", "Judge", "Usage", "make_judge"]

TEMPLATES_DIR = Path(__file__).parent / "templates"
RECORD_VARIABLES = ("inputs", "outputs", "expectations", "trace")

SYSTEM_PROMPT = (
    "You are a careful, impartial evaluator of an AI application's behaviour. Judge only from the "
    "material you are given and do not assume facts that are not there.\n"
    "Reply with a single JSON object and nothing else, of the form "
    '{{"rationale": "<your reasoning in at most three sentences>", "value": {example}}} '
    'where "value" is {describe}.'
)
CORRECTIVE_PROMPT = (
    "Your previous reply could not be used: {problem}. "
    'Reply only with JSON {{"rationale": "<your reasoning>", "value": {example}}} '
    'where "value" is {describe}, and nothing else.'
)


class _RecordUndefined(jinja2.ChainableUndefined):
    """Missing fields render empty; a missing top-level record variable raises, naming it."""

    __slots__ = ()

    def _top_level(self) -> bool:
        return self._undefined_obj is missing

    def _fail(self) -> None:
        name = self._undefined_name
        raise jinja2.UndefinedError(f"the template uses {{{{ {name} }}}} but this record has no {name}")

    def __str__(self) -> str:
        if self._top_level():
            self._fail()
        return ""

    def __iter__(self) -> Any:
        if self._top_level():
            self._fail()
        return iter(())


def _finalize(value: Any) -> Any:
    if isinstance(value, Mapping | list | tuple) and not isinstance(value, jinja2.Undefined):
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return value


@functools.cache
def template_environment() -> jinja2.Environment:
    """The one jinja2 environment of all judges (thread-safe once built)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=_RecordUndefined,
        finalize=_finalize,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


class _TraceView:
    """A trace for templates: renders as a readable tree, attributes pass through."""

    def __init__(self, trace: Trace) -> None:
        self._trace = trace

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trace, name)

    def __str__(self) -> str:
        return self._trace.to_text(width=2000)


@dataclass(slots=True)
class Usage:
    """Token, latency and cache totals over the judge calls behind one Score."""

    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float = 0.0
    calls: int = 0
    cached_calls: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, reply: JudgeReply) -> None:
        self.model = reply.model
        self.calls += 1
        self.cached_calls += int(reply.cached)
        self.latency_ms += reply.latency_ms
        if reply.input_tokens is not None:
            self.input_tokens = (self.input_tokens or 0) + reply.input_tokens
        if reply.output_tokens is not None:
            self.output_tokens = (self.output_tokens or 0) + reply.output_tokens

    def metadata(self) -> dict[str, Any]:
        return {
            "judge_model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latency_ms": round(self.latency_ms, 3),
            "cached": self.calls > 0 and self.cached_calls == self.calls,
            "judge_calls": self.calls,
            **self.extra,
        }


class Judge(Scorer):
    """Base of every LLM judge.

    Subclasses set ``name``, ``template`` (a file name in ``templates/``), ``output`` (bool, an
    ``(lo, hi)`` int range, float or a list of categories) and implement ``score`` with the record
    arguments they need, usually ending in ``return self.judge(**variables)``.

    Args:
        model, base_url, api_key: the endpoint; omitted ones come from the environment, read now.
        cache: a JudgeCache for replies (default: in memory; False: none).
        on_call: hook called with a JudgeCall after each endpoint call (see JudgeClient).
        client: a JudgeClient to share between judges (then the arguments above are not used).
        client_options: more JudgeClient options (timeout, max_retries, max_concurrency, ...).
    """

    name = "judge"
    template = ""
    output: Any = bool

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        cache: JudgeCache | Literal[False] | None = None,
        on_call: Callable[[JudgeCall], object] | None = None,
        client: JudgeClient | None = None,
        **client_options: Any,
    ) -> None:
        self.output_type: OutputType = output_type(self.output)
        self.aggregation = self.output_type.aggregation
        self._template = self._load_template()
        if client is not None:
            given = {
                "model": model,
                "base_url": base_url,
                "api_key": api_key,
                "cache": cache,
                "on_call": on_call,
            }
            clash = [k for k, v in given.items() if v is not None] + list(client_options)
            if clash:
                raise JudgeConfigError(
                    f"judge {self.name!r}: pass either client= or {', '.join(clash)}, not both; "
                    "configure the shared JudgeClient instead"
                )
        self.client = client or JudgeClient(model, base_url, api_key, cache=cache, on_call=on_call, **client_options)

    def _load_template(self) -> jinja2.Template:
        try:
            return template_environment().get_template(self.template)
        except jinja2.TemplateError as exc:
            raise JudgeConfigError(f"judge {self.name!r}: cannot load template {self.template!r}: {exc}") from exc

    def render(self, **variables: Any) -> str:
        """The user prompt for these variables; None values count as absent."""
        present = {k: (_TraceView(v) if isinstance(v, Trace) else v) for k, v in variables.items() if v is not None}
        try:
            return self._template.render(**present).strip()
        except jinja2.UndefinedError as exc:
            raise JudgeError(f"judge {self.name!r}: {exc}", reason="missing_input") from exc

    def messages(self, prompt: str, output: OutputType | None = None) -> list[dict[str, str]]:
        output = output or self.output_type
        system = SYSTEM_PROMPT.format(example=output.example(), describe=output.describe())
        return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]

    def ask(self, prompt: str, usage: Usage, output: OutputType | None = None) -> Verdict:
        """Ask once, re-ask once with a correction if the reply is unusable, else raise JudgeError."""
        output = output or self.output_type
        messages = self.messages(prompt, output)
        accept = functools.partial(_usable, output=output)
        reply = self.client.complete(messages, accept=accept, judge=self.name)
        usage.add(reply)
        try:
            return parse_verdict(reply.text, output)
        except ReplyProblem as problem:
            corrective = CORRECTIVE_PROMPT.format(problem=problem, example=output.example(), describe=output.describe())
            retry_messages = [
                *messages,
                {"role": "assistant", "content": reply.text},
                {"role": "user", "content": corrective},
            ]
        second = self.client.complete(retry_messages, accept=accept, judge=self.name)
        usage.add(second)
        try:
            return parse_verdict(second.text, output)
        except ReplyProblem as problem:
            raise JudgeError(
                f"judge {self.name!r} gave no usable reply after a corrective re-ask: {problem}. "
                f"Raw reply (kept on .raw_reply): {second.text[:200]!r}",
                reason=problem.kind,
                raw_reply=second.text,
                attempts=2,
            ) from problem

    def judge(self, **variables: Any) -> Score:
        """Render the template with ``variables``, ask, and return the Score."""
        usage = Usage()
        verdict = self.ask(self.render(**variables), usage)
        return Score(verdict.value, verdict.rationale, verdict.label, usage.metadata())

    def close(self) -> None:
        self.client.close()


def _usable(text: str, output: OutputType) -> bool:
    try:
        parse_verdict(text, output)
    except ReplyProblem:
        return False
    return True


class CustomJudge(Judge):
    """A judge made by `make_judge` from a template over inputs, outputs, expectations and trace."""

    def __init__(self, name: str, template: jinja2.Template, output: Any, **kwargs: Any) -> None:
        self.name = name
        self.output = output
        self._given_template = template
        super().__init__(**kwargs)

    def _load_template(self) -> jinja2.Template:
        return self._given_template

    def score(
        self, *, inputs: Any = None, outputs: Any = None, expectations: Any = None, trace: Trace | None = None
    ) -> Score:
        return self.judge(inputs=inputs, outputs=outputs, expectations=expectations, trace=trace)


def make_judge(
    name: str,
    template: str | Path,
    output: Any = bool,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    cache: JudgeCache | Literal[False] | None = None,
    **kwargs: Any,
) -> CustomJudge:
    """Build a judge from a jinja2 template over ``inputs``, ``outputs``, ``expectations``, ``trace``.

    Args:
        name: the scorer name its scores carry.
        template: inline jinja2 text, or a path (a ``Path``, or a string naming an existing file
            ending in .jinja, .j2, .txt or .md) to a template file.
        output: bool, an ``(lo, hi)`` int range, float, an ``(lo, hi)`` float range, or a list of
            categories (matched case-insensitively).
        model, base_url, api_key, cache: as for Judge; also on_call, client and JudgeClient options.

    Raises:
        JudgeConfigError: the template names an unknown variable or none of the four, or no model.
    """
    source = _template_source(template)
    env = template_environment()
    try:
        parsed = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise JudgeConfigError(f"judge {name!r}: template syntax error on line {exc.lineno}: {exc}") from exc
    used = jinja2.meta.find_undeclared_variables(parsed) - set(env.globals)
    unknown = sorted(used - set(RECORD_VARIABLES))
    if unknown:
        raise JudgeConfigError(
            f"judge {name!r}: the template uses {', '.join(unknown)}, which no record has; "
            f"use only {', '.join(RECORD_VARIABLES)} (e.g. {{{{ inputs.question }}}})"
        )
    if not used:
        raise JudgeConfigError(
            f"judge {name!r}: the template uses none of {', '.join(RECORD_VARIABLES)}, so it cannot "
            "judge anything; reference at least one, e.g. {{ outputs }}"
        )
    return CustomJudge(
        name,
        env.from_string(source),
        output,
        model=model,
        base_url=base_url,
        api_key=api_key,
        cache=cache,
        **kwargs,
    )


_TEMPLATE_SUFFIXES = (".jinja", ".jinja2", ".j2", ".txt", ".md")


def _template_source(template: str | Path) -> str:
    if isinstance(template, Path) or (
        "\n" not in template and "{" not in template and template.endswith(_TEMPLATE_SUFFIXES)
    ):
        path = Path(template)
        if not path.is_file():
            raise JudgeConfigError(f"judge template file {str(path)!r} does not exist")
        return path.read_text(encoding="utf-8")
    return template
