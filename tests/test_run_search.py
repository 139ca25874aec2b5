"""search_runs: the trace filter language over params, metrics, tags and run fields; order and pages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import agenttrace
from agenttrace.errors import ExperimentNotFoundError, FilterError, UnknownFieldError
from agenttrace.tracking import runs


@pytest.fixture(autouse=True)
def three_runs() -> Iterator[None]:
    """a (lab, lr 0.1, acc 0.9), b (lab, lr 0.01, acc 0.7, FAILED), c (prod, no lr, acc 0.8)."""
    runs.forget_active_runs()
    table = [
        ("a", "lab", {"lr": "0.1", "model": "small"}, {"acc": 0.9, "loss": 0.1}, {"team": "search"}, "FINISHED"),
        ("b", "lab", {"lr": "0.01", "model": "large"}, {"acc": 0.7}, {"team": "ranking"}, "FAILED"),
        ("c", "prod", {"model": "small"}, {"acc": 0.8, "loss": 0.3}, {}, "FINISHED"),
    ]
    for name, experiment, params, metrics, tags, status in table:
        with agenttrace.start_run(name=name, experiment=experiment, tags=tags) as run:
            agenttrace.log_params(params)
            agenttrace.log_metric("acc", 0.0, step=0)  # an older value the latest one replaces
            agenttrace.log_metrics(metrics, step=1)
            if status != "FINISHED":
                run.end(status)
    yield
    runs.forget_active_runs()


def names(filter_string: str | None = None, **kwargs: object) -> list[str]:
    return agenttrace.search_runs(filter_string, **kwargs)["name"].tolist()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("metrics.acc > 0.75", {"a", "c"}),
        ("metrics.acc >= 0.9 AND params.lr = '0.1'", {"a"}),
        ("params.model = 'small' AND NOT tags.team = 'search'", set()),
        ("params.model = 'small' AND (tags.team IS NULL OR tags.team = 'search')", {"a", "c"}),
        ("params.lr IS NULL", {"c"}),
        ("metrics.loss < 0.2 OR status = 'FAILED'", {"a", "b"}),
        ("tags.team IN ('search', 'ranking')", {"a", "b"}),
        ("name LIKE '%b%'", {"b"}),
        ("experiment = 'prod'", {"c"}),
        ("attributes.status != 'FINISHED'", {"b"}),
        ("start_time > '2000-01-01'", {"a", "b", "c"}),
        ("start_time < 946684800000", set()),
        ("metrics.`acc` = 0.7", {"b"}),
        ("metrics.missing > 0", set()),
    ],
)
def test_filters_select_the_runs_they_name(filter_string: str, expected: set[str]) -> None:
    assert set(names(filter_string)) == expected


def test_the_frame_has_params_latest_metrics_and_tags_columns() -> None:
    frame = agenttrace.search_runs(order_by="name")
    assert frame["name"].tolist() == ["a", "b", "c"]
    wide = [c for c in frame.columns if "." in c]
    assert wide == ["params.lr", "params.model", "metrics.acc", "metrics.loss", "tags.team"]
    first = frame.iloc[0]
    assert (first["params.lr"], first["metrics.acc"], first["tags.team"], first["status"]) == (
        "0.1",
        0.9,
        "search",
        "FINISHED",
    )
    assert frame.iloc[1]["status"] == "FAILED"


def test_order_by_a_metric_puts_missing_values_last_and_pages_follow_the_order() -> None:
    assert names(order_by=["metrics.loss DESC"]) == ["c", "a", "b"]
    assert names(order_by="metrics.acc") == ["b", "c", "a"]
    assert names(order_by=["params.model DESC", "name ASC"]) == ["a", "c", "b"]
    assert names(order_by="metrics.acc", max_results=2) == ["b", "c"]
    assert names(order_by="metrics.acc", max_results=2, offset=2) == ["a"]


def test_experiments_narrow_the_search_by_name_or_id() -> None:
    assert set(names(experiment="lab")) == {"a", "b"}
    lab_id = agenttrace.tracking.get_experiment("lab")["experiment_id"]
    assert set(names(experiment=[str(lab_id), "prod"])) == {"a", "b", "c"}


def test_an_unknown_experiment_lists_the_closest_names() -> None:
    with pytest.raises(ExperimentNotFoundError, match="no experiment 'labs'; experiments: lab"):
        agenttrace.search_runs(experiment="labs")


def test_bad_filters_name_the_problem() -> None:
    with pytest.raises(UnknownFieldError, match="params.<key>"):
        agenttrace.search_runs("duration_ms > 1")
    with pytest.raises(FilterError, match="position"):
        agenttrace.search_runs("metrics.acc >")
    with pytest.raises(FilterError, match="numeric"):
        agenttrace.search_runs("metrics.acc > 'high'")
    with pytest.raises(UnknownFieldError, match="cannot order by"):
        agenttrace.search_runs(order_by="metrics.acc; DROP TABLE runs")


def test_a_value_is_never_spliced_into_sql() -> None:
    assert names("params.model = 'x'' OR ''1''=''1'") == []
    assert len(names("name != 'a''; DROP TABLE runs --'")) == 3
    assert len(agenttrace.search_runs()) == 3
