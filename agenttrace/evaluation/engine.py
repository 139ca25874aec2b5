"""evaluate(): run an agent over a dataset under traces, score every answer, store it all.

Each record's prediction runs in a trace of its own (tagged with the eval run, the record and the
agent version); its spans are collected in memory so scorers see the whole `Trace` at once, with no
store round trip. Predictions run on a thread pool (sync `predict_fn`) or as asyncio tasks (async),
at most `concurrency` at a time; scorers run on the same workers. A prediction or scorer that
raises becomes that row's or cell's error, never the run's. Results are written in chunks as they
finish, so Ctrl-C keeps what was done and marks the run INTERRUPTED.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from agenttrace.errors import AgentTraceError, DatasetError, EvaluationError
from agenttrace.evaluation.data import EvalRecord, LoadedData, digest_of, load_data
from agenttrace.evaluation.progress import ProgressBar
from agenttrace.evaluation.result import EvaluationResult
from agenttrace.evaluation.scorers import JudgeWiring, judge_model_of, resolve_scorers, scoring_context
from agenttrace.evaluation.summary import build_metrics, build_table, final_status
from agenttrace.records import Assessment, Trace
from agenttrace.registry._loading import registered_agent
from agenttrace.scoring import Scorer, normalize_result
from agenttrace.store import DuckDBStore
from agenttrace.tracing.agent_context import AGENT_VERSION_ID
from agenttrace.tracing.context import wrap
from agenttrace.tracing.runtime import Runtime, flush, get_runtime
from agenttrace.tracing.spans import detached, span, trace_attributes
from agenttrace.tracking.runs import end_evaluation_run, evaluation_run
from evaluators.judges import Judge

logger = logging.getLogger("agenttrace")
_CHUNK = 100


def agent_identity(agent: Any) -> tuple[str | None, str | None]:
    """(name, version) from ("name", "v1"), "name@v1", {"name", "version"} or an object with both."""
    if agent is None:
        return None, None
    if isinstance(agent, tuple) and len(agent) == 2:
        return str(agent[0]), str(agent[1])
    if isinstance(agent, str):
        name, _, version = agent.partition("@")
        return name, version or None
    if isinstance(agent, dict):
        return agent.get("name"), agent.get("version")
    if hasattr(agent, "name") and hasattr(agent, "version"):  # a registered agent version plugs in here
        return str(agent.name), str(agent.version)
    raise EvaluationError(f"agent={agent!r}: give (name, version), 'name@version' or a registered agent version")


def _check_inputs(predict_fn: Callable[..., Any], records: list[EvalRecord]) -> None:
    try:
        signature = inspect.signature(predict_fn)
    except (TypeError, ValueError):
        return
    problems = []
    for r in records:
        try:
            signature.bind(**r.inputs)
        except TypeError as exc:
            problems.append(f"record {r.id!r} (position {r.position}) has inputs {sorted(r.inputs)}: {exc}")
    if problems:
        name = getattr(predict_fn, "__name__", "predict_fn")
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise EvaluationError(
            f"inputs do not fit {name}({', '.join(signature.parameters)}): "
            + "; ".join(problems[:3])
            + more
            + " - rename the inputs keys to the function's parameters"
        )


@dataclass(slots=True)
class _Row:
    record: EvalRecord
    trace_id: str | None
    outputs: Any
    error: str | None
    latency_ms: float | None
    total_tokens: int | None
    scores: dict[str, dict[str, Any]]
    assessments: list[Assessment]

    def as_stored(self) -> dict[str, Any]:
        r = self.record
        return {
            "record_id": r.id,
            "position": r.position,
            "trace_id": self.trace_id,
            "inputs": r.inputs,
            "outputs": self.outputs,
            "expectations": r.expectations,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "scores": self.scores,
        }


class _Evaluation:
    """One run's state: scorers, store, and the per-record work done on worker threads."""

    def __init__(
        self,
        rt: Runtime,
        run_id: str,
        scorers: list[Scorer],
        predict_fn: Any,
        loaded: LoadedData,
        agent: tuple[str | None, str | None],
        dataset_ref: str,
    ) -> None:
        self.rt = rt
        self.store = rt.store
        self.run_id = run_id
        self.scorers = scorers
        self.predict_fn = predict_fn
        self.loaded = loaded
        self.agent_name, self.agent_version = agent
        self.predict_name = getattr(predict_fn, "__name__", "predict") if predict_fn else "score"
        self.dataset_ref = dataset_ref
        self.collector = rt.collector() if rt.enabled else None
        self.agent_version_id: str | None = None
        self.done: list[_Row] = []
        self._unsaved: list[_Row] = []

    # ---- one record ----------------------------------------------------------------------

    def _span(self, record: EvalRecord) -> span:
        tags = {"eval_run_id": self.run_id, "record_id": record.id, "dataset": self.dataset_ref}
        if self.agent_version:
            tags["agent_version"] = self.agent_version
        attributes = trace_attributes(tags, self.agent_name, self.agent_version, always_sample=True)
        if self.agent_version_id:  # a registered version; a free-form label has none
            attributes[AGENT_VERSION_ID] = self.agent_version_id
        return span(self.predict_name, span_type="CHAIN", inputs=record.inputs, attributes=attributes)

    def predict_sync(self, record: EvalRecord) -> _Row:
        if self.loaded.from_traces:
            return self._existing(record)
        outputs, error, trace_id = None, None, None
        started = time.perf_counter()
        with detached():
            try:
                with self._span(record) as live:
                    trace_id = self._watch(live.trace_id)
                    outputs = self.predict_fn(**record.inputs)
                    live.set_outputs(outputs)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        return self._scored(record, outputs, error, trace_id, started)

    async def predict_async(self, record: EvalRecord) -> _Row:
        outputs, error, trace_id = None, None, None
        started = time.perf_counter()
        with detached():
            try:
                async with self._span(record) as live:
                    trace_id = self._watch(live.trace_id)
                    outputs = await self.predict_fn(**record.inputs)
                    live.set_outputs(outputs)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        return await asyncio.to_thread(self._scored, record, outputs, error, trace_id, started)

    def _watch(self, trace_id: str | None) -> str | None:
        if trace_id and self.collector is not None:
            self.collector.watch(trace_id)
        return trace_id

    def _existing(self, record: EvalRecord) -> _Row:
        trace = self.store.get_trace(record.trace_id) if self.store else None  # type: ignore[arg-type]
        expectations = dict(record.expectations)
        if trace is not None:
            expectations.update({a.name: a.value for a in trace.assessments if a.kind == "expectation"})
            record.expectations = expectations
        return self._score(
            record, record.outputs, None, record.trace_id, trace, trace.info.duration_ms if trace else None
        )

    def _scored(
        self, record: EvalRecord, outputs: Any, error: str | None, trace_id: str | None, started: float
    ) -> _Row:
        trace = self.collector.take(trace_id) if (self.collector and trace_id) else None
        latency = trace.info.duration_ms if trace else (time.perf_counter() - started) * 1000
        return self._score(record, outputs, error, trace_id, trace, latency)

    def _score(
        self,
        record: EvalRecord,
        outputs: Any,
        error: str | None,
        trace_id: str | None,
        trace: Trace | None,
        latency_ms: float | None,
    ) -> _Row:
        scores: dict[str, dict[str, Any]] = {}
        assessments: list[Assessment] = []
        token = scoring_context.set(
            {"eval_run_id": self.run_id, "scored_trace_id": trace_id or "", "record_id": record.id}
        )
        try:
            for scorer in self.scorers:
                for cell in self._cells(scorer, record, outputs, error, trace):
                    name = cell.pop("name")
                    scores[name] = cell
                    if trace_id:
                        assessments.append(self._assessment(scorer, trace_id, cell, name))
        finally:
            scoring_context.reset(token)
        tokens = trace.info.total_tokens if trace else None
        return _Row(record, trace_id, outputs, error, latency_ms, tokens, scores, assessments)

    def _cells(
        self, scorer: Scorer, record: EvalRecord, outputs: Any, error: str | None, trace: Trace | None
    ) -> list[dict[str, Any]]:
        if error is not None:
            return [{"name": scorer.name, "value": None, "error": f"prediction failed: {error}"}]
        try:
            result = scorer(inputs=record.inputs, outputs=outputs, expectations=record.expectations, trace=trace)
            scores = normalize_result(scorer.name, result)
        except Exception as exc:
            return [{"name": scorer.name, "value": None, "error": f"{type(exc).__name__}: {exc}"}]
        return [
            {
                "name": s.name or scorer.name,
                "value": s.value,
                "rationale": None if s.rationale is None else str(s.rationale),
                "label": None if s.label is None else str(s.label),
                "metadata": s.metadata,
                "error": s.error,
            }
            for s in scores
        ]

    def _assessment(self, scorer: Scorer, trace_id: str, cell: dict[str, Any], name: str) -> Assessment:
        metadata = dict(cell.get("metadata") or {})
        if cell.get("label") is not None:
            metadata["label"] = cell["label"]
        return Assessment(
            assessment_id=uuid.uuid4().hex,
            trace_id=trace_id,
            name=name,
            kind="feedback",
            value=cell.get("value"),
            rationale=cell.get("rationale"),
            source_type="LLM_JUDGE" if isinstance(scorer, Judge) else "CODE",
            source_id=scorer.client.model if isinstance(scorer, Judge) else scorer.name,
            metadata=metadata,
            error=cell.get("error"),
            eval_run_id=self.run_id,
            created_ns=time.time_ns(),
        )

    # ---- bookkeeping (main thread) -------------------------------------------------------

    def finished(self, row: _Row) -> None:
        self.done.append(row)
        self._unsaved.append(row)
        if len(self._unsaved) >= _CHUNK:
            try:
                self.save()
            except AgentTraceError as exc:  # kept in memory and retried with the next chunk and at the end
                logger.warning("agenttrace could not store evaluation results yet (will retry): %s", exc)

    def save(self) -> None:
        """Write finished rows; they leave the unsaved list only once the store has them."""
        rows = self._unsaved
        if rows and self.store is not None:
            self.store.add_eval_records(
                self.run_id, [r.as_stored() for r in rows], [a for r in rows for a in r.assessments]
            )
        self._unsaved = []


def _run_threads(ev: _Evaluation, records: list[EvalRecord], concurrency: int, bar: ProgressBar) -> None:
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="agenttrace-eval")
    try:
        pending = {pool.submit(wrap(ev.predict_sync), r) for r in records}  # wrap: the current run
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                ev.finished(future.result())
                bar.advance()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_async(ev: _Evaluation, records: list[EvalRecord], concurrency: int, bar: ProgressBar) -> None:
    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=concurrency))
        gate = asyncio.Semaphore(concurrency)

        async def one(record: EvalRecord) -> _Row:
            async with gate:
                return await ev.predict_async(record)

        for next_done in asyncio.as_completed([one(r) for r in records]):
            ev.finished(await next_done)
            bar.advance()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return
    # Called from inside a running loop (a notebook): run ours on a thread of its own.
    errors: list[BaseException] = []
    work = wrap(lambda: _capture(errors, lambda: asyncio.run(main())))  # wrap: the current run goes along
    runner = threading.Thread(target=work, name="agenttrace-eval")
    runner.start()
    runner.join()
    if errors:
        raise errors[0]


def _capture(errors: list[BaseException], work: Callable[[], Any]) -> None:
    try:
        work()
    except BaseException as exc:
        errors.append(exc)


def evaluate(
    data: Any,
    predict_fn: Callable[..., Any] | None = None,
    scorers: Iterable[Any] = (),
    experiment: str | None = None,
    run_name: str | None = None,
    agent: Any = None,
    concurrency: int = 8,
    judge_model: str | None = None,
    judge_base_url: str | None = None,
    progress: bool | None = None,
    judge_options: Mapping[str, Any] | None = None,
) -> EvaluationResult:
    """Run `predict_fn` over `data`, score every answer, and store results linked to traces.

    Args:
        data: a list of {"inputs", "expectations", "tags", "id"} dicts, a DataFrame, a path (.jsonl,
            .json, .csv, .parquet), a stored dataset ("name" or "name@version", or a Dataset), or the
            result of `search_traces` to score existing traces (then no predict_fn).
        predict_fn: called as predict_fn(**inputs) for each record, sync or async.
        scorers: Scorer objects, @scorer functions, or registered names ("exact_match", "correctness").
        experiment: the experiment name stamped on the run.
        run_name: a name for the run (`agenttrace eval show NAME` finds the newest one with it).
        agent: ("name", "version"), "name@version", "name/3" or a registered version (AgentVersion,
            load_agent's callable; a loaded agent given as predict_fn counts too); stamped on the run
            and every trace. A registered name resolves to its version; other names stay free-form.
        concurrency: records in flight at once.
        judge_model, judge_base_url: the endpoint for judges named in `scorers`.
        judge_options: timeout (s per attempt), max_retries, temperature for judges named in
            `scorers`, and max_concurrency per judge endpoint (default: `concurrency`).
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        EvaluationResult with `.metrics` and `.tables["eval_results"]`.
    """
    if concurrency < 1:
        raise EvaluationError(f"concurrency must be at least 1, got {concurrency}")
    rt = get_runtime()
    store = rt.store
    loaded = load_data(_as_data(data), _loader(store))
    if not loaded.records:
        raise DatasetError(f"{loaded.source} has no records; nothing to evaluate")
    if predict_fn is None and not loaded.from_traces:
        raise EvaluationError("predict_fn is required, unless data is a search_traces() result of existing traces")
    if predict_fn is not None:
        loaded.from_traces = False
        _check_inputs(predict_fn, loaded.records)
    scorer_objects, judges = resolve_scorers(
        scorers,
        store=store,
        judge_model=judge_model,
        judge_base_url=judge_base_url,
        concurrency=concurrency,
        judge_options=judge_options,
    )
    dataset_version = loaded.stored_version or _store_dataset(store, loaded)
    agent_name, agent_version = agent_identity(agent)
    agent_version_id = None
    if store is not None:  # a registered agent resolves to its real name, version and version id
        agent_name, agent_version, agent_version_id = registered_agent(agent, predict_fn, agent_name, agent_version)
    run_id = uuid.uuid4().hex
    # Each eval run belongs to one run: the current one, or one started for it (ended with it).
    tracked, owned_run = evaluation_run(run_name or f"evaluate {loaded.name}", experiment) if store else (None, None)
    if store is not None:
        store.start_eval_run(
            {
                "eval_run_id": run_id,
                "name": run_name,
                "experiment": experiment or (tracked.experiment if tracked else rt.settings.experiment),
                "dataset_name": loaded.name,
                "dataset_version": dataset_version,
                "agent_name": agent_name,
                "agent_version": agent_version,
                "scorers": [s.name for s in scorer_objects],
                "judge_model": judge_model_of(scorer_objects, judges),
                "record_count": len(loaded.records),
                "started_ns": time.time_ns(),
            }
        )
        if agent_version_id:
            store.link_eval_run_agent(run_id, agent_version_id)
        if tracked is not None:
            store.link_eval_run_to_run(run_id, tracked.run_id)
    else:
        logger.warning("agenttrace has no store (store=None or tracing off): evaluation results are not saved")
    ev = _Evaluation(
        rt, run_id, scorer_objects, predict_fn, loaded, (agent_name, agent_version), f"{loaded.name}@{dataset_version}"
    )
    ev.agent_version_id = agent_version_id
    status = "FINISHED"
    started = time.perf_counter()
    try:
        with ProgressBar(len(loaded.records), f"eval {loaded.name}", progress) as bar:
            if _is_async(predict_fn):
                _run_async(ev, loaded.records, concurrency, bar)
            else:
                _run_threads(ev, loaded.records, concurrency, bar)
    except KeyboardInterrupt:
        status = "INTERRUPTED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        metrics = _wind_up(ev, judges, scorer_objects, time.perf_counter() - started)
        if store is not None:
            store.finish_eval_run(run_id, final_status(status, metrics), metrics)
        end_evaluation_run(owned_run, status)
    rows = sorted(ev.done, key=lambda r: r.record.position)
    status = final_status(status, metrics)  # the tracking run above ended FINISHED: it did finish
    return EvaluationResult(run_id, status, metrics, {"eval_results": build_table(rows, scorer_objects)})


def _wind_up(ev: _Evaluation, judges: JudgeWiring, scorers: list[Scorer], wall_s: float) -> dict[str, Any]:
    """Close the judges (cache flushed), store what is left, flush traces; each step runs whatever the others did."""
    steps: list[Callable[[], Any]] = [judges.close, ev.save, flush]
    for step in steps:
        try:
            step()
        except Exception as exc:
            logger.warning("agenttrace evaluation clean-up step failed: %s", exc)
    metrics = build_metrics(ev.done, scorers, wall_s)
    if ev._unsaved:
        metrics["run"]["unsaved_records"] = len(ev._unsaved)
    return metrics


def _is_async(fn: Any) -> bool:
    """Coroutine functions, and objects whose __call__ is one."""
    call = type(fn).__call__ if callable(fn) and not inspect.isfunction(fn) else None
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


def _as_data(data: Any) -> Any:
    from agenttrace.evaluation.datasets import Dataset

    return (data.name, data.version) if isinstance(data, Dataset) else data


def _loader(store: DuckDBStore | None) -> Callable[[str, str | None], Any]:
    if store is not None:
        return store.load_dataset

    def no_store(name: str, version: str | None) -> Any:
        raise DatasetError(f"cannot load stored dataset {name!r}: no store is configured")

    return no_store


def _store_dataset(store: DuckDBStore | None, loaded: LoadedData) -> str:
    """Version the evaluated records by content; identical content keeps its version."""
    digest = digest_of(loaded.records)
    if store is not None and not loaded.from_traces:
        store.save_dataset(loaded.name, digest[:12], digest, loaded.source, [r.as_dict() for r in loaded.records])
    return digest[:12]
