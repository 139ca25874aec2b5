"""Tracing never breaks the traced program, and nothing it loses goes uncounted."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import SpanProcessor

import agenttrace
from agenttrace.store import DuckDBStore, _connection
from agenttrace.tracing import runtime


class _ExplodingProcessor(SpanProcessor):
    def on_start(self, span, parent_context=None) -> None:
        raise RuntimeError("tracer exploded")


def _explode_at_span_start() -> None:
    """Make OpenTelemetry's own span start fail, through a real processor on the real provider."""
    agenttrace.trace(lambda: None)()  # the runtime builds its provider on first use
    runtime.get_runtime().provider.add_span_processor(_ExplodingProcessor())


class ExplodingMapping(Mapping):
    """A mapping whose every access raises: unserialisable by any means but repr."""

    def __getitem__(self, key):
        raise RuntimeError("no")

    def __iter__(self):
        raise RuntimeError("no")

    def __len__(self):
        raise RuntimeError("no")


def test_unserialisable_arguments_behave_as_untraced() -> None:
    @agenttrace.trace
    def take(value):
        return "ok"

    assert take(ExplodingMapping()) == "ok"
    root = agenttrace.get_trace(agenttrace.search_traces().trace_id[0]).root
    assert "ExplodingMapping" in root.inputs["value"]


def test_unwritable_store_turns_tracing_off_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    agenttrace.configure(store=str(blocker / "sub" / "traces.duckdb"))

    @agenttrace.trace
    def work(x):
        return x + 1

    with caplog.at_level(logging.WARNING, logger="agenttrace"):
        assert [work(i) for i in range(3)] == [1, 2, 3]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "tracing is off" in warnings[0].getMessage()


def test_internal_errors_are_logged_once_counted_and_swallowed_in_production(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    agenttrace.configure(raise_internal_errors=False)
    _explode_at_span_start()
    calls = []

    @agenttrace.trace
    def work(x):
        calls.append(x)
        return x * 2

    monkeypatch.setattr(runtime, "_error_counts", runtime.Counter())  # logging is once per site per process
    assert [work(1), work(2)] == [2, 4]
    assert calls == [1, 2]  # called exactly once each
    assert runtime.internal_error_counts()["start span"] == 2
    assert caplog.text.count("tracer exploded") == 1


def test_internal_errors_reraise_under_the_test_setting() -> None:
    _explode_at_span_start()
    with pytest.raises(RuntimeError, match="tracer exploded"):
        agenttrace.trace(lambda: 1)()


def test_a_store_failing_at_export_is_counted_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "gone.duckdb"
    agenttrace.configure(store=str(path), raise_internal_errors=False)

    @agenttrace.trace
    def work():
        return 1

    work()
    agenttrace.flush()
    _connection.release()
    rt = runtime.get_runtime()
    # Make the store unusable under the running exporter: the file becomes a foreign file.
    path.unlink()
    path.with_name("gone.duckdb.wal").unlink(missing_ok=True)
    path.write_text("not a database any more")
    _connection.forget_prepared()
    for _ in range(5):
        work()
    assert work() == 1
    agenttrace.flush()
    assert rt.lost_spans() == (0, 6)
    assert "could not store" in caplog.text


def test_twenty_thousand_calls_leave_exactly_twenty_thousand_traces() -> None:
    @agenttrace.trace
    def step(i):
        return i

    for i in range(20_000):
        step(i)
    agenttrace.flush()
    assert agenttrace.search_traces(max_results=1).shape[0] == 1
    assert runtime.get_runtime().store.count_traces() == 20_000
    assert runtime.get_runtime().lost_spans() == (0, 0)


def test_queue_bound_drops_are_counted_and_shown(store_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agenttrace.configure(max_queue_size=50, export_batch_size=50, schedule_delay_ms=60_000)

    @agenttrace.trace
    def step(i):
        return i

    for i in range(2_000):
        step(i)
    rt = runtime.get_runtime()
    agenttrace.flush()
    dropped, failed = rt.lost_spans()
    stored = rt.store.count_traces()
    assert dropped > 0 and failed == 0
    assert stored + dropped == 2_000
    runtime.reset()  # shutdown records the count in the store and warns
    assert "lost" in caplog.text and f"{dropped} dropped" in caplog.text
    _connection.forget_prepared()
    assert DuckDBStore(store_path).stats()["dropped_spans"] == dropped


def test_disabled_tracing_stores_nothing(store_path: Path) -> None:
    agenttrace.configure(enabled=False)

    @agenttrace.trace
    def work():
        with agenttrace.span("inner") as s:
            s.set_outputs("x")
        return 1

    assert work() == 1
    assert agenttrace.search_traces().empty


def test_sample_rate_zero_keeps_no_traces() -> None:
    agenttrace.configure(sample_rate=0.0)

    @agenttrace.trace
    def work():
        return 1

    assert [work() for _ in range(20)] == [1] * 20
    assert agenttrace.search_traces().empty


def test_one_bad_span_costs_that_span_not_its_batch() -> None:
    @agenttrace.trace
    def step(i):
        if i == 7:  # values of the wrong type where the store expects text or a BIGINT
            agenttrace.get_current_span().set_attributes(
                {"user.id": 42, "gen_ai.usage.input_tokens": 2**70, "gen_ai.request.model": 3.5}
            )
        if i == 9:  # OpenTelemetry's own API, past our serialiser: text the store's JSON type refuses
            otel_trace.get_current_span().set_attribute("agenttrace.inputs", "{not json")
        return i

    for i in range(40):
        step(i)
    agenttrace.flush()
    rt = runtime.get_runtime()
    assert rt.store.count_traces() == 39 and rt.lost_spans() == (0, 1)
    row = agenttrace.search_traces("user_id = '42'").iloc[0]
    assert row.inputs == {"i": 7} and pd.isna(row.input_tokens)  # the overflowing count is dropped


def test_relative_store_path_stays_put_when_the_program_changes_folder(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    agenttrace.configure(store="rel.duckdb")

    @agenttrace.trace
    def work():
        return 1

    work()
    agenttrace.flush()
    monkeypatch.chdir(tmp_path / "b")
    work()
    assert len(agenttrace.search_traces()) == 2
    assert not (tmp_path / "b" / "rel.duckdb").exists()


@pytest.mark.parametrize(
    ("source", "setting", "message"),
    [
        ("env", ("AGENTTRACE_SCHEDULE_DELAY_MS", "0"), "schedule_delay_ms must be at least 1"),
        ("env", ("AGENTTRACE_SAMPLE_RATE", "lots"), "AGENTTRACE_SAMPLE_RATE='lots' is invalid"),
        ("file", 'sample_rate = "half"', "sample_rate = 'half' in the config file is invalid"),
        ("file", "export_batch_size = 0", "export_batch_size must be at least 1"),
        ("file", "enabled = 3", "enabled must be bool"),
    ],
)
def test_bad_settings_turn_tracing_off_with_a_warning_not_an_error(
    source: str, setting, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    runtime.reset()
    if source == "env":
        monkeypatch.setenv(*setting)
    else:
        (tmp_path / "agenttrace.toml").write_text(f"[agenttrace]\n{setting}\n")

    @agenttrace.trace
    def work(x):
        return x * 3

    assert [work(1), work(2)] == [3, 6]
    assert message in caplog.text and "tracing is off" in caplog.text
    with pytest.raises(agenttrace.errors.ConfigError, match=message.split("'")[0].split(" in ")[0]):
        agenttrace.configure()


def test_config_file_values_given_as_text_are_parsed(tmp_path: Path) -> None:
    runtime.reset()
    (tmp_path / "agenttrace.toml").write_text('[agenttrace]\nenabled = "false"\nsample_rate = "0.5"\n')
    settings = agenttrace.config.resolve()
    assert settings.enabled is False and settings.sample_rate == 0.5


def test_sampled_out_calls_do_not_serialise_their_arguments() -> None:
    agenttrace.configure(sample_rate=0.5)
    seen = []

    class Watched:
        def __repr__(self) -> str:
            seen.append(1)
            return "Watched()"

    @agenttrace.trace
    def work(x):
        return 1

    for _ in range(200):
        work(Watched())
    kept = len(agenttrace.search_traces(max_results=1000))
    assert 40 < kept < 160 and len(seen) == kept  # serialised exactly for the traces kept


def test_configure_inside_a_traced_call_warns_about_the_span_it_strands(caplog) -> None:
    @agenttrace.trace
    def outer():
        agenttrace.configure(experiment="moved")
        return "still works"

    assert outer() == "still works"
    assert "ended after tracing was reconfigured" in caplog.text and "'outer'" in caplog.text


def test_an_exception_that_cannot_be_printed_still_ends_its_span() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    @agenttrace.trace
    def fail() -> None:
        raise Unprintable()

    with pytest.raises(Unprintable):
        fail()
    span = agenttrace.get_trace(agenttrace.search_traces().trace_id[0]).root
    assert (span.status, span.status_message) == ("ERROR", "Unprintable: <unprintable Unprintable>")
    assert [e["name"] for e in span.events] == ["exception"]


def test_a_generator_called_with_wrong_arguments_ends_its_span() -> None:
    @agenttrace.trace
    def numbers(n: int):
        yield from range(n)

    with pytest.raises(TypeError):
        list(numbers(1, 2))  # type: ignore[call-arg]
    span = agenttrace.get_trace(agenttrace.search_traces().trace_id[0]).root
    assert span.status == "ERROR" and "TypeError" in span.status_message


def test_static_attributes_of_any_type_are_stored_without_warnings(caplog: pytest.LogCaptureFixture) -> None:
    import datetime

    @agenttrace.trace(attributes={"day": datetime.date(2026, 1, 2), "tags": ["a", "b"], "mixed": [1, "x"]})
    def work() -> int:
        return 1

    with agenttrace.span("block", attributes={"cfg": {"k": 1}}), caplog.at_level(logging.WARNING):
        assert work() == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    spans = {s.name: s for s in agenttrace.get_trace(agenttrace.search_traces().trace_id[0]).spans}
    assert spans["work"].attributes["day"] == '"2026-01-02"' and spans["work"].attributes["tags"] == ["a", "b"]
    assert spans["work"].attributes["mixed"] == '[1,"x"]' and spans["block"].attributes["cfg"] == '{"k":1}'
