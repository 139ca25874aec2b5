"""Lineage: what each version of an agent did, two versions compared, and where a result came from.

`agent_history` puts a version's evaluations and its traces in one row: the trace figures come
from one GROUP BY in the store; a scorer's figure is its headline (mean or pass rate) averaged over
the version's finished eval runs, weighted by how many records each scored, so a run of 500
records counts more than a run of 5. `compare_versions` reuses the newest finished evaluation of
each version on the dataset version (one that ran every scorer asked for), runs one only where
none exists, and hands both to `compare_evals`' record-by-record comparison.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from agenttrace.errors import EvaluationError
from agenttrace.evaluation.metrics import headline
from agenttrace.registry._loading import load_agent
from agenttrace.registry._versions import _store, get_agent_version

if TYPE_CHECKING:
    import pandas as pd

    from agenttrace.evaluation.result import Comparison

__all__ = ["agent_history", "compare_versions", "lineage"]

# Evaluations that ran to the end; one whose cells errored counts, its errors scoring as failures.
_COMPLETE = frozenset({"FINISHED", "FINISHED_WITH_ERRORS"})
_FIGURE_COLUMNS = ("trace_count", "error_rate", "latency_p50_ms", "latency_p95_ms", "total_tokens", "mean_tokens")


def _scores(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Each scorer's headline over finished runs, weighted by the records it scored."""
    sums: dict[str, list[float]] = {}
    for run in runs:
        if run["status"] not in _COMPLETE:
            continue
        for scorer, summary in (run["summary"].get("scorers") or {}).items():
            # The headline counts every record (an errored cell fails), so it is weighted by all of them.
            value, count = headline(summary), summary.get("n") or summary.get("count") or 0
            if value is None or not count:
                continue
            acc = sums.setdefault(scorer, [0.0, 0.0])
            acc[0] += value * count
            acc[1] += count
    return {scorer: total / count for scorer, (total, count) in sorted(sums.items())}


def agent_history(name: str) -> pd.DataFrame:
    """One row per version of `name`, oldest first: its eval runs, scorer means and trace figures.

    Columns: version, version_id, aliases, created, created_by, git_commit, description,
    eval_runs, eval_run_ids, `score.<scorer>` for every scorer any run used, and trace_count,
    error_rate, latency_p50_ms, latency_p95_ms, total_tokens, mean_tokens over the version's traces.
    """
    import pandas as pd

    parts = _store().agent_history_parts(name)  # AgentNotFoundError, listing the agents, for an unknown name
    agent, versions = parts["agent"], parts["versions"]
    figures = parts["figures"].set_index("version_id")
    runs_by_version: dict[str, list[dict[str, Any]]] = {}
    for run in parts["eval_runs"]:
        runs_by_version.setdefault(run["agent_version_id"], []).append(run)
    aliases_by_version: dict[int, list[str]] = {}
    for alias, number in agent["aliases"].items():
        aliases_by_version.setdefault(int(number), []).append(alias)
    rows = []
    for v in versions:
        runs = runs_by_version.get(v["version_id"], [])
        row: dict[str, Any] = {
            "version": v["version"],
            "version_id": v["version_id"],
            "aliases": sorted(aliases_by_version.get(v["version"], [])),
            "created": pd.Timestamp(v["created_ns"], unit="ns", tz="UTC"),
            "created_by": v["created_by"],
            "git_commit": v["git_commit"],
            "description": v["description"],
            "eval_runs": len(runs),
            "eval_run_ids": [r["eval_run_id"] for r in runs],
        }
        row.update({f"score.{k}": value for k, value in _scores(runs).items()})
        found = v["version_id"] in figures.index
        for column in _FIGURE_COLUMNS:
            row[column] = figures.at[v["version_id"], column] if found else (0 if column == "trace_count" else None)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    scores = sorted(c for c in frame.columns if c.startswith("score."))
    fixed = [c for c in frame.columns if not c.startswith("score.") and c not in _FIGURE_COLUMNS]
    frame = frame[[*fixed, *scores, *_FIGURE_COLUMNS]]
    frame["trace_count"] = frame["trace_count"].fillna(0).astype("int64")
    return frame


def _dataset_version(dataset: Any) -> tuple[str, str]:
    """(name, version) of what `evaluate(data=dataset)` would run on, without running anything."""
    from agenttrace.evaluation.data import digest_of, load_data
    from agenttrace.evaluation.datasets import Dataset

    if isinstance(dataset, Dataset):
        return dataset.name, dataset.version
    loaded = load_data(dataset, _store().load_dataset)
    return loaded.name, loaded.stored_version or digest_of(loaded.records)[:12]


def _scorer_names(scorers: Iterable[Any] | None) -> set[str]:
    return {s if isinstance(s, str) else str(getattr(s, "name", s)) for s in scorers or ()}


def compare_versions(
    name: str,
    a: int | str,
    b: int | str,
    dataset: Any,
    scorers: Iterable[Any] | None = None,
    **evaluate_options: Any,
) -> Comparison:
    """Compare versions `a` and `b` (numbers or aliases) of `name` on one dataset version.

    For each version the newest finished evaluation on that dataset version that ran every scorer
    in `scorers` is reused; where there is none, the version is loaded and evaluated (which needs
    `scorers`). `evaluate_options` (concurrency, judge_model, ...) go to those evaluate() calls.

    Returns:
        compare_evals' result for (a's run, b's run): per-scorer deltas b - a with a paired test,
        and the records that regressed or improved.
    """
    from agenttrace.evaluation.compare import compare_runs
    from agenttrace.evaluation.engine import evaluate

    wanted = _scorer_names(scorers)
    dataset_name, dataset_version = _dataset_version(dataset)
    run_ids = []
    for ref in (a, b):
        version = get_agent_version(name, ref)
        reusable = [
            r for r in _store().agent_eval_runs(name, (dataset_name, dataset_version))
            if r["agent_version_id"] == version.version_id and r["status"] in _COMPLETE
            and wanted <= set(r["scorers"])
        ]  # fmt: skip
        if reusable:
            run_ids.append(reusable[-1]["eval_run_id"])
            continue
        if not wanted:
            raise EvaluationError(
                f"{version.ref} has no finished evaluation on dataset {dataset_name}@{dataset_version}; "
                "pass scorers=[...] so compare_versions can run one"
            )
        result = evaluate(dataset, load_agent(version.ref), scorers=list(scorers or ()), agent=version,
                          **evaluate_options)  # fmt: skip
        run_ids.append(result.eval_run_id)
    return compare_runs(_store(), run_ids[0], run_ids[1])


def lineage(ref: str) -> dict[str, Any]:
    """Where a trace (by id) or an eval run (by id, name or id prefix) came from, in one record.

    Keys: kind ("trace" or "eval_run"), trace_id, eval_run_id, run (the tracking run's row, or
    None), experiment, agent ({name, version, registered: the version's id, number, target, code
    digest and git commit, or None for a free-form label}), dataset ({name, version} or None) and
    scorers (name with its source: judge model or code).
    """
    return _store().lineage(ref)
