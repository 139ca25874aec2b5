"""Encryption at rest: an encrypted store works everywhere unchanged; a wrong key touches nothing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

import agenttrace
from agenttrace.cli import cli
from agenttrace.errors import ConfigError, StoreError
from agenttrace.store import DuckDBStore, _connection, _encryption, _maintenance
from agenttrace.tracing import runtime
from tests.otlp_builders import make_request, make_span, new_ids
from tests.server_harness import ServerThread, http, http_json


def _trace_with_key(monkeypatch: pytest.MonkeyPatch, store: Path, key: str | None, n: int = 3) -> None:
    """Trace `n` calls into `store` from a runtime configured through the environment, as a user would."""
    if key is None:
        monkeypatch.delenv("AGENTTRACE_ENCRYPTION_KEY", raising=False)
    else:
        monkeypatch.setenv("AGENTTRACE_ENCRYPTION_KEY", key)
    runtime.reset()
    _connection.forget_prepared()
    agenttrace.configure(store=str(store), raise_internal_errors=True, schedule_delay_ms=50)

    @agenttrace.trace
    def answer(question: str) -> str:
        return f"secret answer to {question}"

    for i in range(n):
        answer(f"q{i}")
    agenttrace.flush()
    runtime.get_runtime().store.release()  # type: ignore[union-attr]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_encrypted(path: Path, key: str) -> bool:
    con = duckdb.connect(":memory:")
    try:
        _encryption.attach(con, path, "s", key, read_only=True)
        row = con.execute("SELECT encrypted FROM duckdb_databases() WHERE database_name = 's'").fetchone()
        return bool(row and row[0])
    finally:
        con.close()


def test_traces_written_and_read_through_the_key_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "enc.duckdb"
    _trace_with_key(monkeypatch, store, "k-1")
    frame = agenttrace.search_traces()
    assert sorted(frame["name"]) == ["answer"] * 3
    assert _is_encrypted(store, "k-1")
    with pytest.raises(duckdb.Error, match="encrypted"):
        duckdb.connect(str(store), read_only=True)  # without the key DuckDB itself cannot read it


@pytest.mark.parametrize(
    ("key", "message"),
    [("wrong-key", "does not open store"), (None, "is encrypted and no key was given")],
)
def test_a_wrong_or_missing_key_is_clear_and_touches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str | None, message: str
) -> None:
    store = tmp_path / "enc.duckdb"
    _trace_with_key(monkeypatch, store, "right-key")
    runtime.reset()
    _connection.forget_prepared()
    before = _digest(store)
    for read_only in (True, False):  # the read-only check on first open and a writer's open alike
        with pytest.raises(StoreError, match=message) as caught:
            DuckDBStore(store, encryption_key=key)._run(read_only, lambda con: None)
        assert "right-key" not in str(caught.value) and "wrong-key" not in str(caught.value)
    assert _digest(store) == before
    assert sorted(p.name for p in tmp_path.glob("enc.duckdb*")) == ["enc.duckdb"]  # no WAL left either


def test_a_key_set_for_a_plain_store_is_refused_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "plain.duckdb"
    _trace_with_key(monkeypatch, store, None)
    runtime.reset()
    _connection.forget_prepared()
    before = _digest(store)
    with pytest.raises(StoreError, match="is not encrypted, but an encryption key is set"):
        DuckDBStore(store, encryption_key="k").count_traces()
    assert _digest(store) == before


def test_encrypt_rekey_decrypt_in_place_keep_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "conv.duckdb"
    _trace_with_key(monkeypatch, store, None, n=5)
    runtime.reset()
    _connection.forget_prepared()
    monkeypatch.delenv("AGENTTRACE_ENCRYPTION_KEY", raising=False)

    def rows(key: str | None) -> dict[str, tuple[int, int]]:
        con = duckdb.connect(":memory:")
        try:
            _encryption.attach(con, store, "s", key, read_only=True)
            return _maintenance.fingerprint(con, "s")
        finally:
            con.close()

    original = rows(None)
    assert original["spans"][0] == 5
    (tmp_path / "new.key").write_text("second-key\n")
    runner = CliRunner()
    steps = [
        (["store", "encrypt", "--store", str(store)], {"AGENTTRACE_ENCRYPTION_KEY": "first-key"}, "first-key"),
        (["store", "rekey", "--store", str(store), "--new-key-file", str(tmp_path / "new.key")],
         {"AGENTTRACE_ENCRYPTION_KEY": "first-key"}, "second-key"),
        (["store", "decrypt", "--store", str(store)], {"AGENTTRACE_ENCRYPTION_KEY": "second-key"}, None),
    ]  # fmt: skip
    for args, env, key_after in steps:
        result = runner.invoke(cli, args, env=env)
        assert result.exit_code == 0, result.output
        assert rows(key_after) == original
        if key_after is not None:
            assert _is_encrypted(store, key_after)
    assert sorted(p.name for p in tmp_path.glob("*conv.duckdb*")) == ["conv.duckdb"]  # no temporary copy left


def test_the_key_file_setting_and_its_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "store.key"
    key_file.write_text("from-a-file\n")
    monkeypatch.setenv("AGENTTRACE_ENCRYPTION_KEY_FILE", str(key_file))
    assert agenttrace.config.encryption_key(agenttrace.config.resolve()) == "from-a-file"
    store = DuckDBStore(tmp_path / "k.duckdb")
    store.initialise()
    _connection.forget_prepared()
    assert _is_encrypted(store.path, "from-a-file")
    monkeypatch.setenv("AGENTTRACE_ENCRYPTION_KEY", "x")
    with pytest.raises(ConfigError, match="not both"):
        agenttrace.config.resolve()
    monkeypatch.delenv("AGENTTRACE_ENCRYPTION_KEY")
    key_file.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        DuckDBStore(tmp_path / "k.duckdb")


def test_the_key_as_a_configure_argument_encrypts_traces_and_runs(tmp_path: Path) -> None:
    """configure(encryption_key=...) reaches every store object of the process: tracing, reads, runs."""
    store = tmp_path / "arg.duckdb"
    runtime.reset()
    _connection.forget_prepared()
    agenttrace.configure(store=str(store), encryption_key="arg-key", raise_internal_errors=True, schedule_delay_ms=50)

    @agenttrace.trace
    def answer(question: str) -> str:
        return f"secret answer to {question}"

    with agenttrace.start_run(experiment="enc") as run:
        answer("q")
        run.log_metric("score", 0.5)
    agenttrace.flush()
    assert list(agenttrace.search_traces()["name"]) == ["answer"]
    assert agenttrace.get_run(run.run_id).metrics["score"] == 0.5
    runtime.reset()
    _connection.forget_prepared()
    assert _is_encrypted(store, "arg-key")
    assert b"secret answer" not in store.read_bytes()


def test_evaluation_and_the_cli_on_an_encrypted_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "enc.duckdb"
    _trace_with_key(monkeypatch, store, "eval-key", n=1)

    def echo(question: str) -> str:
        return question

    records = [{"inputs": {"question": q}, "expectations": {"expected_response": q}} for q in ("a", "b")]
    result = agenttrace.evaluate(records, echo, scorers=["exact_match"], progress=False)
    assert result.metrics["scorers"]["exact_match"]["pass_rate"] == 1.0
    agenttrace.flush()
    runtime.get_runtime().store.release()  # type: ignore[union-attr]
    listed = CliRunner().invoke(cli, ["traces", "list", "--store", str(store), "--json"])
    assert listed.exit_code == 0, listed.output
    assert len([json.loads(line) for line in listed.output.splitlines()]) == 3  # the call and one per record
    run, rows = DuckDBStore(store).load_eval_run(result.eval_run_id)  # the key from the environment
    assert run["status"] == "FINISHED" and len(rows) == 2


def test_the_server_ingests_into_and_reads_from_an_encrypted_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "srv.duckdb"
    monkeypatch.setenv("AGENTTRACE_ENCRYPTION_KEY", "srv-key")  # the server's store takes the key from it
    trace_id, span_id = new_ids()
    body = make_request([make_span("remote-call", trace_id, span_id)]).SerializeToString()
    with ServerThread(store) as srv:
        status, _, _ = http(srv.url + "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
        assert status == 200
        for _ in range(200):
            status, listed = http_json(srv.url + "/api/traces")
            if status == 200 and listed["count"]:
                break
        assert [t["name"] for t in listed["traces"]] == ["remote-call"]
    _connection.release(store)
    assert _is_encrypted(store, "srv-key")


def test_a_key_given_explicitly_is_not_replaced_by_a_later_store_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "explicit.duckdb"
    DuckDBStore(path, encryption_key="given").initialise()
    monkeypatch.delenv("AGENTTRACE_ENCRYPTION_KEY", raising=False)
    later = DuckDBStore(path)  # the settings name no key: the one given for this file still holds
    assert later.count_traces() == 0
    _connection.forget_prepared()
    assert _is_encrypted(path, "given")


# Another process holding the encrypted file through its own ATTACH, as an encrypted store's writer does.
_HOLDER = """
import sys, time
import duckdb
con = duckdb.connect(":memory:")
con.execute(f"ATTACH '{sys.argv[1]}' AS s (ENCRYPTION_KEY 'lock-key', READ_ONLY)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def test_another_process_holding_an_encrypted_store_is_waited_for_then_read(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    DuckDBStore(path, encryption_key="lock-key").initialise()
    _connection.release()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), "1.0"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    assert holder.poll() is None  # still holding it when the writer comes
    # A writer's open meets the lock: retried as a lock (not reported as a key problem), then it succeeds.
    DuckDBStore(path, encryption_key="lock-key", lock_timeout_s=30).add_counter("probe", 1)
    holder.wait(30)
    assert DuckDBStore(path, encryption_key="lock-key").stats().get("probe") == 1


def test_a_key_given_to_a_store_object_is_kept_when_tracing_starts(tmp_path: Path) -> None:
    """A key passed explicitly for a file is never replaced by the (empty) key of the settings."""
    path = tmp_path / "explicit.duckdb"
    store = DuckDBStore(path, encryption_key="given-key")
    store.initialise()
    runtime.reset()
    agenttrace.configure(store=str(path), raise_internal_errors=True, schedule_delay_ms=50)

    @agenttrace.trace
    def answer(question: str) -> str:
        return question

    answer("q")
    agenttrace.flush()
    assert list(store.search_traces()["name"]) == ["answer"]
    runtime.reset()
    _connection.forget_prepared()
    assert _is_encrypted(path, "given-key")


def test_a_store_object_built_later_without_the_key_keeps_the_configured_one(tmp_path: Path) -> None:
    """configure(encryption_key=...) holds for the file: a DuckDBStore(path) built afterwards by the
    program (whose own settings name no key) must not turn the tracer's writes into failures."""
    path = tmp_path / "configured.duckdb"
    runtime.reset()
    agenttrace.configure(store=str(path), encryption_key="k1", raise_internal_errors=True, schedule_delay_ms=50)

    @agenttrace.trace
    def answer(question: str) -> str:
        return question

    answer("first")
    assert agenttrace.flush()
    _connection.release()
    assert DuckDBStore(path).count_traces() == 1  # read with the key this process was given
    answer("second")
    assert agenttrace.flush() and runtime.get_runtime().lost_spans() == (0, 0)
    runtime.reset()
    _connection.forget_prepared()
    assert _is_encrypted(path, "k1")
    assert DuckDBStore(path, encryption_key="k1").count_traces() == 2
