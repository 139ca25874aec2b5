"""search_runs: one row per run, with `params.*`, `metrics.*` (latest value) and `tags.*` columns.

The runs are chosen first (filter, order, page) in one query over `runs`; only then are the
params, latest metrics and tags of the chosen runs pivoted wide, each by DuckDB's PIVOT over the
chosen ids, and joined onto them in order. So the cost follows the page size, and a long metric
history costs nothing here: the latest values are kept in their own table as metrics are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import duckdb

from agenttrace.store._run_filters import compile_run_filter, compile_run_order
from agenttrace.store._tracking import get_experiment

if TYPE_CHECKING:
    import pandas as pd

# Columns of search_runs before the params.*, metrics.* and tags.* ones, in this order.
RUN_FRAME_COLUMNS = (
    "run_id", "experiment_id", "experiment", "name", "status", "start_time", "end_time",
    "parent_run_id", "description", "user", "host", "pid",
)  # fmt: skip
_SELECT = (
    "SELECT r.run_id, r.experiment_id, e.name AS experiment, r.name, r.status, "
    "make_timestamp(r.start_time_ns // 1000) AS start_time, make_timestamp(r.end_time_ns // 1000) AS end_time, "
    "r.parent_run_id, r.description, r.user_name AS user, r.host, r.pid "
    "FROM runs r JOIN experiments e USING (experiment_id)"
)
_WIDE = {
    "params": "run_params",
    "metrics": "run_latest_metrics",
    "tags": "run_tags",
}


def search_runs(
    con: duckdb.DuckDBPyConnection,
    filter_string: str | None,
    experiments: Sequence[str] | None,
    order_by: list[str] | str | None,
    max_results: int,
    offset: int = 0,
) -> pd.DataFrame:
    """Runs matching the filter (active runs of active experiments unless experiments are named)."""
    where, params = compile_run_filter(filter_string)
    conditions = [f"({where})", "r.lifecycle = 'active'"]
    if experiments:
        ids = [get_experiment(con, ref)["experiment_id"] for ref in experiments]
        conditions.append(f"r.experiment_id IN ({', '.join('?' * len(ids))})")
        params = [*params, *ids]
    else:
        conditions.append("e.lifecycle = 'active'")
    order, order_params = compile_run_order(order_by)
    sql = f"{_SELECT} WHERE {' AND '.join(conditions)} ORDER BY {order} LIMIT ? OFFSET ?"
    frame = con.execute(sql, [*params, *order_params, max_results, offset]).df()
    if frame.empty:
        return frame
    return _widen(con, frame)


def _widen(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> pd.DataFrame:
    """Add the params.*, metrics.* and tags.* columns of the chosen runs, each key a column.

    Per table, DuckDB returns (row position, key index, value) for the chosen runs and numpy drops
    the values into a grid: faster than DuckDB's PIVOT (which first scans for the distinct keys in
    a query of its own) or pandas' pivot, both measured at 3-4x the time on 10,000 runs.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    chosen = pa.table({"run_id": frame["run_id"].to_numpy(), "pos": np.arange(len(frame), dtype=np.int64)})
    con.register("chosen_runs", chosen)
    parts = [frame]
    try:
        for prefix, table in _WIDE.items():
            keys = [r[0] for r in con.execute(
                f"SELECT DISTINCT x.key FROM {table} x SEMI JOIN chosen_runs c ON x.run_id = c.run_id ORDER BY 1"
            ).fetchall()]  # fmt: skip
            if not keys:
                continue
            con.register("wide_keys", pa.table({"key": keys, "idx": np.arange(len(keys), dtype=np.int64)}))
            try:
                cells = con.execute(
                    f"SELECT c.pos, k.idx, x.value FROM {table} x JOIN chosen_runs c ON x.run_id = c.run_id "
                    "JOIN wide_keys k ON x.key = k.key"
                ).fetchnumpy()
            finally:
                con.unregister("wide_keys")
            numeric = prefix == "metrics"
            grid = np.full((len(frame), len(keys)), np.nan if numeric else None, dtype=float if numeric else object)
            grid[cells["pos"], cells["idx"]] = cells["value"]
            parts.append(pd.DataFrame(grid, columns=[f"{prefix}.{k}" for k in keys], index=frame.index))
    finally:
        con.unregister("chosen_runs")
    return pd.concat(parts, axis=1)
