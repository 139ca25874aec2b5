"""SQL for the agent registry: agents, versions, aliases, and the lineage reads over them.

A registration is one unit of work under DuckDB's single-writer file lock: look the identity up,
and insert version `last_version + 1` only if no version of the agent has that identity. Another
process registering at the same moment waits for the lock and then finds the first one's row, so
two racing registrations make one version; the UNIQUE (agent_name, identity) constraint is the
second line of defence (threads of one process are serialised by the connection lock already).

Versions are referred to by number; aliases map a name to a number. Deleted numbers are never
reused (`agents.last_version` only grows). Traces link to versions by `agent_version_id` when the
store has that column, else by the (agent_name, agent_version) labels they carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import duckdb

from agenttrace.errors import AgentNotFoundError, RegistryError, UnknownFieldError, VersionInUseError
from agenttrace.store._codec import dumps as _dumps
from agenttrace.store._codec import loads as _loads
from agenttrace.store._filters import _Parser, _Tok
from agenttrace.store._transaction import transaction

if TYPE_CHECKING:  # pandas loads only when a DataFrame is asked for
    import pandas as pd

LATEST = "latest"
_JSON_COLUMNS = ("code_files", "environment", "config", "prompts", "tags")
_VERSION_COLUMNS = (
    "version_id, agent_name, version, identity, target, code_digest, code_root, code_files, git_commit, git_dirty, "
    "environment, config, prompts, description, tags, created_by, created_ns, run_id"
)


def _version_row(cursor: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    row = cursor.fetchone()
    if row is None:
        return None
    names = [d[0] for d in cursor.description or ()]
    entry = dict(zip(names, row, strict=True))
    for key in _JSON_COLUMNS:
        if key in entry:
            entry[key] = _loads(entry[key])
    return entry


def _known_agents(con: duckdb.DuckDBPyConnection) -> str:
    names = [r[0] for r in con.execute("SELECT name FROM agents ORDER BY name LIMIT 50").fetchall()]
    return ", ".join(names) or "(none)"


def _require_agent(con: duckdb.DuckDBPyConnection, name: str) -> None:
    if con.execute("SELECT 1 FROM agents WHERE name = ?", [name]).fetchone() is None:
        raise AgentNotFoundError(
            f"no registered agent {name!r}; registered: {_known_agents(con)} - register one with "
            "agenttrace.register_agent(name, target) or `agenttrace agents register`"
        )


def _what_exists(con: duckdb.DuckDBPyConnection, name: str) -> str:
    versions = [str(r[0]) for r in con.execute(
        "SELECT version FROM agent_versions WHERE agent_name = ? ORDER BY version", [name]
    ).fetchall()]  # fmt: skip
    aliases = [f"{a}->{v}" for a, v in con.execute(
        "SELECT alias, version FROM agent_aliases WHERE agent_name = ? ORDER BY alias", [name]
    ).fetchall()]  # fmt: skip
    return f"versions: {', '.join(versions) or '(none)'}; aliases: {', '.join(aliases) or '(none)'}"


def register_version(con: duckdb.DuckDBPyConnection, entry: dict[str, Any], now_ns: int) -> tuple[dict[str, Any], bool]:
    """Insert a version unless one of the agent has the same identity; (version row, created)."""
    name = entry["agent_name"]
    with transaction(con):
        existing = _version_row(con.execute(
            f"SELECT {_VERSION_COLUMNS} FROM agent_versions WHERE agent_name = ? AND identity = ?",
            [name, entry["identity"]],
        ))  # fmt: skip
        if existing is not None:
            return existing, False
        row = con.execute("SELECT last_version FROM agents WHERE name = ?", [name]).fetchone()
        if row is None:
            number = 1
            con.execute(
                "INSERT INTO agents VALUES (?, ?, ?, 1, ?, ?)",
                [name, entry.get("agent_description"), _dumps(entry.get("agent_tags")), now_ns, now_ns],
            )
        else:
            number = int(row[0]) + 1
            con.execute("UPDATE agents SET last_version = ?, updated_ns = ? WHERE name = ?", [number, now_ns, name])
        values = {**entry, "version": number, "created_ns": now_ns}
        for key in _JSON_COLUMNS:
            values[key] = _dumps(values.get(key))
        columns = [c.strip() for c in _VERSION_COLUMNS.split(",")]
        con.execute(
            f"INSERT INTO agent_versions ({_VERSION_COLUMNS}) VALUES ({', '.join('?' * len(columns))})",
            [values.get(c) for c in columns],
        )
    created = get_version(con, name, number)
    return created, True


def resolve_number(con: duckdb.DuckDBPyConnection, name: str, ref: int | str | None) -> int:
    """A version number from a number, a numeric string, an alias, "latest" or None (latest)."""
    _require_agent(con, name)
    if ref is None or ref == LATEST:
        row = con.execute("SELECT max(version) FROM agent_versions WHERE agent_name = ?", [name]).fetchone()
        if row is None or row[0] is None:
            raise AgentNotFoundError(f"agent {name!r} has no versions left; register one")
        return int(row[0])
    if isinstance(ref, int) or (str(ref).isascii() and str(ref).isdigit() and len(str(ref)) < 19):
        number = int(ref)
        if con.execute(
            "SELECT 1 FROM agent_versions WHERE agent_name = ? AND version = ?", [name, number]
        ).fetchone() is None:  # fmt: skip
            raise AgentNotFoundError(f"agent {name!r} has no version {number}; {_what_exists(con, name)}")
        return number
    row = con.execute("SELECT version FROM agent_aliases WHERE agent_name = ? AND alias = ?", [name, ref]).fetchone()
    if row is None:
        raise AgentNotFoundError(f"agent {name!r} has no alias {ref!r}; {_what_exists(con, name)}")
    return int(row[0])


def get_version(con: duckdb.DuckDBPyConnection, name: str, ref: int | str | None) -> dict[str, Any]:
    number = resolve_number(con, name, ref)
    entry = _version_row(con.execute(
        f"SELECT {_VERSION_COLUMNS} FROM agent_versions WHERE agent_name = ? AND version = ?", [name, number]
    ))  # fmt: skip
    assert entry is not None  # resolve_number checked it
    entry["aliases"] = [r[0] for r in con.execute(
        "SELECT alias FROM agent_aliases WHERE agent_name = ? AND version = ? ORDER BY alias", [name, number]
    ).fetchall()]  # fmt: skip
    return entry


def find_version_id(con: duckdb.DuckDBPyConnection, name: str, ref: str | None) -> dict[str, Any] | None:
    """The version a (name, ref) label names, or None when the name is not registered at all."""
    if con.execute("SELECT 1 FROM agents WHERE name = ?", [name]).fetchone() is None:
        return None
    return get_version(con, name, ref)


def get_agent(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any]:
    _require_agent(con, name)
    cursor = con.execute(
        "SELECT name, description, tags, last_version, created_ns, updated_ns, "
        "(SELECT count(*) FROM agent_versions v WHERE v.agent_name = a.name) AS version_count "
        "FROM agents a WHERE name = ?",
        [name],
    )
    entry = _version_row(cursor)
    assert entry is not None
    entry["aliases"] = dict(con.execute(
        "SELECT alias, version FROM agent_aliases WHERE agent_name = ? ORDER BY alias", [name]
    ).fetchall())  # fmt: skip
    return entry


class _RegistryFilter(_Parser):
    """The trace filter language over a registry listing: its own fields and `tags.<key>`."""

    FIELDS: dict[str, tuple[str, str]] = {}
    TAGS = ""

    def _field(self, tok: _Tok) -> tuple[str, str, bool]:
        if tok.text in self.FIELDS:
            sql, kind = self.FIELDS[tok.text]
            return sql, kind, False
        head, _, key = tok.text.partition(".")
        if head == "tags" and key:
            self.params.append('$."' + key.strip('`"').replace('"', '\\"') + '"')
            return f"json_extract_string({self.TAGS}, ?)", "text", False
        raise UnknownFieldError(
            f"unknown field {tok.text!r} at position {tok.pos}; "
            f"valid fields: {', '.join([*self.FIELDS, 'tags.<key>'])}",
            position=tok.pos,
        )

    @classmethod
    def compile(cls, text: str | None) -> tuple[str, list[Any]]:
        if text is None or not text.strip():
            return "TRUE", []
        parser = cls(text)
        return parser.parse(), parser.params


class _AgentFilter(_RegistryFilter):
    FIELDS = {
        "name": ("a.name", "text"),
        "description": ("a.description", "text"),
        "latest_version": ("a.last_version", "number"),
        "created": ("a.created_ns", "time"),
        "updated": ("a.updated_ns", "time"),
    }
    TAGS = "a.tags"


class _VersionFilter(_RegistryFilter):
    FIELDS = {
        "version": ("v.version", "number"),
        "description": ("v.description", "text"),
        "target": ("v.target", "text"),
        "git_commit": ("v.git_commit", "text"),
        "created_by": ("v.created_by", "text"),
        "run_id": ("v.run_id", "text"),
        "created": ("v.created_ns", "time"),
    }
    TAGS = "v.tags"


def list_agents(con: duckdb.DuckDBPyConnection, filter_string: str | None, limit: int, offset: int) -> pd.DataFrame:
    import pandas as pd

    where, params = _AgentFilter.compile(filter_string)
    frame = con.execute(
        "SELECT a.name, a.description, a.tags, a.last_version AS latest_version, "
        "(SELECT count(*) FROM agent_versions v WHERE v.agent_name = a.name) AS versions, "
        "(SELECT string_agg(alias || '=' || version, ', ' ORDER BY alias) FROM agent_aliases l "
        " WHERE l.agent_name = a.name) AS aliases, "
        "make_timestamp(a.created_ns // 1000) AS created, make_timestamp(a.updated_ns // 1000) AS updated "
        f"FROM agents a WHERE {where} ORDER BY a.name LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).df()
    frame["tags"] = pd.Series([_loads(v) or {} for v in frame["tags"]], index=frame.index, dtype=object)
    return frame


def list_versions(
    con: duckdb.DuckDBPyConnection, name: str, filter_string: str | None, limit: int, offset: int
) -> pd.DataFrame:
    import pandas as pd

    _require_agent(con, name)
    where, params = _VersionFilter.compile(filter_string)
    frame = con.execute(
        "SELECT v.version, v.version_id, v.target, v.code_digest, v.git_commit, v.git_dirty, v.description, v.tags, "
        "(SELECT string_agg(alias, ', ' ORDER BY alias) FROM agent_aliases l "
        " WHERE l.agent_name = v.agent_name AND l.version = v.version) AS aliases, "
        "v.created_by, make_timestamp(v.created_ns // 1000) AS created, v.run_id "
        f"FROM agent_versions v WHERE v.agent_name = ? AND {where} ORDER BY v.version DESC LIMIT ? OFFSET ?",
        [name, *params, limit, offset],
    ).df()
    frame["tags"] = pd.Series([_loads(v) or {} for v in frame["tags"]], index=frame.index, dtype=object)
    return frame


def set_alias(con: duckdb.DuckDBPyConnection, name: str, alias: str, ref: int | str, now_ns: int) -> int:
    number = resolve_number(con, name, ref)
    con.execute(
        "INSERT INTO agent_aliases VALUES (?, ?, ?, ?) "
        "ON CONFLICT (agent_name, alias) DO UPDATE SET version = excluded.version, updated_ns = excluded.updated_ns",
        [name, alias, number, now_ns],
    )
    return number


def delete_alias(con: duckdb.DuckDBPyConnection, name: str, alias: str) -> None:
    resolve_number(con, name, alias)  # raises, listing what exists, for an unknown alias
    con.execute("DELETE FROM agent_aliases WHERE agent_name = ? AND alias = ?", [name, alias])


def update_agent(
    con: duckdb.DuckDBPyConnection,
    name: str,
    version: int | str | None,
    description: str | None,
    tags: dict[str, str] | None,
    now_ns: int,
) -> None:
    """Set the description and merge tags (a None tag value removes it) of an agent or one version."""
    if version is None:
        current = get_agent(con, name)
    else:
        current = get_version(con, name, version)
    merged = {**(current.get("tags") or {}), **(tags or {})}
    merged = {k: v for k, v in merged.items() if v is not None}
    new_description = current.get("description") if description is None else description
    if version is None:
        con.execute(
            "UPDATE agents SET description = ?, tags = ?, updated_ns = ? WHERE name = ?",
            [new_description, _dumps(merged), now_ns, name],
        )
    else:
        con.execute(
            "UPDATE agent_versions SET description = ?, tags = ? WHERE version_id = ?",
            [new_description, _dumps(merged), current["version_id"]],
        )


def delete_version(con: duckdb.DuckDBPyConnection, name: str, ref: int | str) -> int:
    if not (isinstance(ref, int) or (str(ref).isascii() and str(ref).isdigit() and len(str(ref)) < 19)):
        raise RegistryError(f"delete a version by its number, not {ref!r} (an alias would be ambiguous)")
    number = resolve_number(con, name, ref)
    aliases = [r[0] for r in con.execute(
        "SELECT alias FROM agent_aliases WHERE agent_name = ? AND version = ? ORDER BY alias", [name, number]
    ).fetchall()]  # fmt: skip
    if aliases:
        raise VersionInUseError(
            f"version {number} of agent {name!r} is pointed at by alias {', '.join(aliases)}; "
            f"move or delete the alias first (agenttrace.delete_alias({name!r}, {aliases[0]!r}))"
        )
    con.execute("DELETE FROM agent_versions WHERE agent_name = ? AND version = ?", [name, number])
    return number


def delete_agent(con: duckdb.DuckDBPyConnection, name: str) -> int:
    """Delete an agent with all its versions; refused while it has aliases."""
    agent = get_agent(con, name)
    if agent["aliases"]:
        raise VersionInUseError(f"agent {name!r} still has aliases ({', '.join(agent['aliases'])}); delete them first")
    with transaction(con):
        con.execute("DELETE FROM agent_versions WHERE agent_name = ?", [name])
        con.execute("DELETE FROM agents WHERE name = ?", [name])
    return int(agent["version_count"])


def link_eval_run(con: duckdb.DuckDBPyConnection, eval_run_id: str, version_id: str) -> None:
    con.execute("UPDATE eval_runs SET agent_version_id = ? WHERE eval_run_id = ?", [version_id, eval_run_id])


def has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = ? AND column_name = ?", [table, column]
    ).fetchone()
    return bool(row and row[0])


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()
    return bool(row and row[0])


def versions_of(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> list[dict[str, Any]]:
    """Every version of the named agents, oldest first (for lineage frames)."""
    cursor = con.execute(
        f"SELECT {_VERSION_COLUMNS} FROM agent_versions WHERE list_contains(?, agent_name) "
        "ORDER BY agent_name, version",
        [list(names)],
    )
    names_ = [d[0] for d in cursor.description or ()]
    rows = []
    for row in cursor.fetchall():
        entry = dict(zip(names_, row, strict=True))
        for key in _JSON_COLUMNS:
            entry[key] = _loads(entry[key])
        rows.append(entry)
    return rows
