"""Ordered, named schema migrations, recorded in `schema_migrations`.

An applied migration is never edited: a change to the schema is a new function appended to
MIGRATIONS. A store whose recorded version is above len(MIGRATIONS) was written by a newer
agenttrace and is refused before anything is written to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb

from agenttrace.store._transaction import transaction

Migration = Callable[[duckdb.DuckDBPyConnection], None]


def _001_core_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE spans (
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR NOT NULL,
            parent_span_id VARCHAR,
            name VARCHAR NOT NULL,
            span_type VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            status_message VARCHAR,
            start_time_ns BIGINT NOT NULL,
            end_time_ns BIGINT NOT NULL,
            duration_ms DOUBLE NOT NULL,
            inputs JSON,
            outputs JSON,
            attributes JSON,
            events JSON,
            model VARCHAR,
            input_tokens BIGINT,
            output_tokens BIGINT,
            resource JSON,
            scope VARCHAR
        )
        """
    )
    con.execute(
        """
        CREATE TABLE traces (
            trace_id VARCHAR PRIMARY KEY,
            experiment VARCHAR,
            run_id VARCHAR,
            name VARCHAR,
            status VARCHAR NOT NULL,
            start_time_ns BIGINT,
            end_time_ns BIGINT,
            duration_ms DOUBLE,
            inputs JSON,
            outputs JSON,
            session_id VARCHAR,
            user_id VARCHAR,
            tags JSON,
            metadata JSON,
            agent_name VARCHAR,
            agent_version VARCHAR,
            span_count BIGINT NOT NULL,
            input_tokens BIGINT,
            output_tokens BIGINT,
            total_tokens BIGINT,
            cost DOUBLE,
            -- 2: the true root (no parent) arrived; 1: only a local root (parent outside this store)
            root_rank SMALLINT NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE assessments (
            assessment_id VARCHAR PRIMARY KEY,
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR,
            name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            value JSON,
            rationale VARCHAR,
            source_type VARCHAR NOT NULL,
            source_id VARCHAR,
            metadata JSON,
            error VARCHAR,
            eval_run_id VARCHAR,
            created_ns BIGINT NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE experiments (
            name VARCHAR PRIMARY KEY,
            created_ns BIGINT NOT NULL
        )
        """
    )
    con.execute("CREATE TABLE tracing_stats (name VARCHAR PRIMARY KEY, value BIGINT NOT NULL)")


def _002_evaluation(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE datasets (
            name VARCHAR NOT NULL,
            version VARCHAR NOT NULL,      -- the content digest's first 12 hex characters
            digest VARCHAR NOT NULL,
            record_count BIGINT NOT NULL,
            source VARCHAR,
            created_ns BIGINT NOT NULL,
            PRIMARY KEY (name, version)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE dataset_records (
            dataset_name VARCHAR NOT NULL,
            dataset_version VARCHAR NOT NULL,
            position BIGINT NOT NULL,
            record_id VARCHAR NOT NULL,
            inputs JSON NOT NULL,
            expectations JSON,
            tags JSON,
            source_trace_id VARCHAR
        )
        """
    )
    con.execute(
        """
        CREATE TABLE eval_runs (
            eval_run_id VARCHAR PRIMARY KEY,
            name VARCHAR,
            experiment VARCHAR,
            status VARCHAR NOT NULL,          -- RUNNING, FINISHED, INTERRUPTED, FAILED
            dataset_name VARCHAR,
            dataset_version VARCHAR,
            agent_name VARCHAR,
            agent_version VARCHAR,
            scorers JSON,
            judge_model VARCHAR,
            record_count BIGINT,
            started_ns BIGINT NOT NULL,
            ended_ns BIGINT,
            summary JSON
        )
        """
    )
    con.execute(
        """
        CREATE TABLE eval_records (
            eval_run_id VARCHAR NOT NULL,
            record_id VARCHAR NOT NULL,
            position BIGINT NOT NULL,
            trace_id VARCHAR,
            inputs JSON,
            outputs JSON,
            expectations JSON,
            error VARCHAR,
            latency_ms DOUBLE,
            scores JSON               -- {scorer: {"value", "rationale", "error", ...}}
        )
        """
    )
    con.execute(
        """
        CREATE TABLE judge_cache (
            key VARCHAR PRIMARY KEY,
            value VARCHAR NOT NULL,
            created_ns BIGINT NOT NULL
        )
        """
    )


def _003_span_provider_and_agent_version_id(con: duckdb.DuckDBPyConnection) -> None:
    # The conventions mapper reads the LLM provider; the registry stamps a version's unique id.
    con.execute("ALTER TABLE spans ADD COLUMN provider VARCHAR")
    con.execute("ALTER TABLE traces ADD COLUMN agent_version_id VARCHAR")


def _004_agent_registry(con: duckdb.DuckDBPyConnection) -> None:
    """The agent registry: agents, their versions (code fingerprint + config + prompts), aliases.

    `agents.last_version` is a counter, so a deleted version's number is never given again. A
    version's `identity` (a hash of target, code, config and prompts) is unique per agent: with
    DuckDB's single-writer file lock it makes a concurrent re-registration find the first one.
    `eval_runs.agent_version_id` links an evaluation to the registered version it ran.
    """
    con.execute(
        """
        CREATE TABLE agents (
            name VARCHAR PRIMARY KEY,
            description VARCHAR,
            tags JSON,
            last_version INTEGER NOT NULL,
            created_ns BIGINT NOT NULL,
            updated_ns BIGINT NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE agent_versions (
            version_id VARCHAR PRIMARY KEY,   -- stamped on traces as agenttrace.agent.version_id
            agent_name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            identity VARCHAR NOT NULL,        -- sha256 of target + code digest + config + prompts
            target VARCHAR NOT NULL,          -- "pkg.module:attr" or "path/file.py:attr"
            code_digest VARCHAR NOT NULL,
            code_root VARCHAR,
            code_files JSON,                  -- {relative path: sha256}
            git_commit VARCHAR,
            git_dirty BOOLEAN,
            environment JSON,                 -- {"python": ..., "packages": {...}}
            config JSON,
            prompts JSON,                     -- {name: {"text": ..., "sha256": ...}}
            description VARCHAR,
            tags JSON,
            created_by VARCHAR,
            created_ns BIGINT NOT NULL,
            run_id VARCHAR,
            UNIQUE (agent_name, version),
            UNIQUE (agent_name, identity)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE agent_aliases (
            agent_name VARCHAR NOT NULL,
            alias VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            updated_ns BIGINT NOT NULL,
            PRIMARY KEY (agent_name, alias)
        )
        """
    )
    con.execute("ALTER TABLE eval_runs ADD COLUMN agent_version_id VARCHAR")


def _005_runs_and_experiments(con: duckdb.DuckDBPyConnection) -> None:
    """Experiments get an id, tags and a lifecycle; runs with params, metrics, tags and artifacts.

    `experiments` is rebuilt (DuckDB cannot add a primary key to a table): the old rows keep their
    names and creation times and get ids in creation order, and any experiment named only by a trace
    or an eval run gets a row too, so nothing stored before is lost. Every column but `name` and
    `created_ns` has a default, so the trace writer's `INSERT INTO experiments (name, created_ns)`
    still creates experiments as traces name them. Metric history is append-only (`run_metrics`);
    `run_latest_metrics` keeps each key's latest value (highest step, then newest) so searching
    runs never scans a history. `eval_runs.run_id` ties each evaluation to exactly one run.
    """
    con.execute("CREATE SEQUENCE experiment_ids START 1")
    con.execute(
        """
        CREATE TABLE experiments_v4 (
            experiment_id BIGINT PRIMARY KEY DEFAULT nextval('experiment_ids'),
            name VARCHAR NOT NULL UNIQUE,
            created_ns BIGINT NOT NULL,
            tags JSON,
            description VARCHAR,
            lifecycle VARCHAR NOT NULL DEFAULT 'active',   -- active, deleted
            deleted_ns BIGINT
        )
        """
    )
    con.execute(
        """
        INSERT INTO experiments_v4 (name, created_ns)
        SELECT name, min(created_ns) FROM (
            SELECT name, created_ns FROM experiments
            UNION ALL SELECT experiment, coalesce(start_time_ns, 0) FROM traces WHERE experiment IS NOT NULL
            UNION ALL SELECT experiment, started_ns FROM eval_runs WHERE experiment IS NOT NULL
        ) GROUP BY name ORDER BY min(created_ns), name
        """
    )
    con.execute("DROP TABLE experiments")
    con.execute("ALTER TABLE experiments_v4 RENAME TO experiments")
    con.execute(
        """
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            experiment_id BIGINT NOT NULL,
            name VARCHAR,
            status VARCHAR NOT NULL,          -- RUNNING, FINISHED, FAILED, KILLED
            parent_run_id VARCHAR,
            description VARCHAR,
            start_time_ns BIGINT NOT NULL,
            end_time_ns BIGINT,
            lifecycle VARCHAR NOT NULL DEFAULT 'active',
            user_name VARCHAR,
            host VARCHAR,
            pid INTEGER,
            source VARCHAR,
            artifact_uri VARCHAR             -- the run's artifact folder, fixed when it starts
        )
        """
    )
    con.execute(
        "CREATE TABLE run_params (run_id VARCHAR NOT NULL, key VARCHAR NOT NULL, value VARCHAR NOT NULL, "
        "PRIMARY KEY (run_id, key))"
    )
    con.execute(
        "CREATE TABLE run_tags (run_id VARCHAR NOT NULL, key VARCHAR NOT NULL, value VARCHAR NOT NULL, "
        "PRIMARY KEY (run_id, key))"
    )
    con.execute(
        "CREATE TABLE run_metrics (run_id VARCHAR NOT NULL, key VARCHAR NOT NULL, value DOUBLE NOT NULL, "
        "step BIGINT NOT NULL, timestamp_ns BIGINT NOT NULL)"
    )
    con.execute(
        "CREATE TABLE run_latest_metrics (run_id VARCHAR NOT NULL, key VARCHAR NOT NULL, value DOUBLE NOT NULL, "
        "step BIGINT NOT NULL, timestamp_ns BIGINT NOT NULL, PRIMARY KEY (run_id, key))"
    )
    con.execute(
        "CREATE TABLE run_artifacts (run_id VARCHAR NOT NULL, path VARCHAR NOT NULL, size_bytes BIGINT NOT NULL, "
        "sha256 VARCHAR NOT NULL, created_ns BIGINT NOT NULL, PRIMARY KEY (run_id, path))"
    )
    con.execute("ALTER TABLE eval_runs ADD COLUMN run_id VARCHAR")


def _006_trace_root_start(con: duckdb.DuckDBPyConnection) -> None:
    # Which root the root fields came from, so a later batch replaces them only with a better root.
    # Traces stored before kept their root's fields; their own start stands in for the root's.
    con.execute("ALTER TABLE traces ADD COLUMN root_start_ns BIGINT")
    con.execute("UPDATE traces SET root_start_ns = start_time_ns WHERE root_rank > 0")


def _007_monitors(con: duckdb.DuckDBPyConnection) -> None:
    # Online monitors, and the claims that let several `monitor run` processes share the work:
    # the primary key (trace_id, scorer) is what makes "each trace scored at most once per scorer".
    con.execute(
        """
        CREATE TABLE monitors (
            monitor_id VARCHAR PRIMARY KEY,
            agent_name VARCHAR NOT NULL,
            agent_version VARCHAR,          -- a number or an alias; NULL: every version
            scorer VARCHAR NOT NULL,        -- a scorer spec, e.g. "regex_match:pattern=^ok"
            scorer_name VARCHAR NOT NULL,   -- the name its scores carry
            sample DOUBLE NOT NULL,
            filter VARCHAR,
            alerts JSON,                    -- [{"scorer", "op", "threshold"}]
            webhook VARCHAR,
            judge_model VARCHAR,
            since_ns BIGINT NOT NULL,       -- traces that started before this are not its work
            created_ns BIGINT NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE monitor_claims (
            trace_id VARCHAR NOT NULL,
            scorer_name VARCHAR NOT NULL,
            monitor_id VARCHAR NOT NULL,
            owner VARCHAR NOT NULL,
            state VARCHAR NOT NULL,         -- claimed, done
            claimed_ns BIGINT NOT NULL,
            PRIMARY KEY (trace_id, scorer_name)
        )
        """
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_core_tables", _001_core_tables),
    ("002_evaluation", _002_evaluation),
    ("003_span_provider_and_agent_version_id", _003_span_provider_and_agent_version_id),
    ("004_agent_registry", _004_agent_registry),
    ("005_runs_and_experiments", _005_runs_and_experiments),
    ("006_trace_root_start", _006_trace_root_start),
    ("007_monitors", _007_monitors),
]

LATEST_VERSION = len(MIGRATIONS)


def declared_columns() -> dict[str, dict[str, str]]:
    """Table name to {column: "TYPE" or "TYPE NOT NULL"} for the tables `agenttrace.schema` declares."""
    from agenttrace.schema import SPAN_COLUMNS, TRACE_COLUMNS
    from agenttrace.store._writer import DUCKDB_TYPES

    def spelled(kind: Any, nullable: bool) -> str:
        return DUCKDB_TYPES[kind] + ("" if nullable else " NOT NULL")

    return {
        "spans": {c.name: spelled(c.kind, c.nullable) for c in SPAN_COLUMNS if c.stored},
        "traces": {c.name: spelled(c.kind, c.nullable) for c in TRACE_COLUMNS},
    }


def column_mismatches(con: duckdb.DuckDBPyConnection) -> list[str]:
    """How the migrated tables differ from the declaration (empty when they agree).

    Run once per process when a store is opened: a column declared but not created by a migration,
    created but not declared, or of another type or nullability is found here, not as a failed
    write later.
    """
    problems = []
    for table, declared in declared_columns().items():
        rows = con.execute(
            "SELECT column_name, data_type || CASE WHEN is_nullable = 'NO' THEN ' NOT NULL' ELSE '' END "
            "FROM information_schema.columns WHERE table_name = ?",
            [table],
        ).fetchall()
        actual = dict(rows)
        missing = [c for c in declared if c not in actual]
        extra = [c for c in actual if c not in declared]
        typed = [f"{c} is {actual[c]}, declared {t}" for c, t in declared.items() if c in actual and actual[c] != t]
        if missing:
            problems.append(f"table {table} lacks declared columns {', '.join(missing)}")
        if extra:
            problems.append(f"table {table} has undeclared columns {', '.join(extra)}")
        problems.extend(f"table {table}: {t}" for t in typed)
    return problems


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()
    if not exists or exists[0] == 0:
        return 0
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def apply_pending(con: duckdb.DuckDBPyConnection, now_ns: int) -> int:
    """Apply every migration above the recorded version, each in its own transaction."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_ns BIGINT NOT NULL)"
    )
    start = current_version(con)
    for version, (name, migrate) in enumerate(MIGRATIONS[start:], start=start + 1):
        with transaction(con):
            migrate(con)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, now_ns])
    return LATEST_VERSION
