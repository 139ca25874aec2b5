"""Opening a store file encrypted with the user's key, so that every query stays unchanged.

A plain store is opened as before, `duckdb.connect(path)`. An encrypted one is opened as an
in-memory database that ATTACHes the file with `ENCRYPTION_KEY` and USEs it: unqualified names
resolve to the attached file, so no SQL in the store knows the difference, and the file lock is
the same one a direct connect takes (another process meets "Could not set lock" either way).

Writing an encrypted file needs OpenSSL's cipher from the httpfs extension; DuckDB's built-in
crypto only reads. The extension comes from the `duckdb-extension-httpfs` wheel, whose version
equals duckdb's, and is LOADed from that package's folder; extension autoloading and autoinstalling
are switched off, so nothing is ever downloaded at run time. Loading costs about 0.1-0.2 s per
connection, so read-only opens skip it.

Keys are registered per file (`set_key`), because the connection layer opens by path only.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import duckdb

from agenttrace.errors import StoreError

__all__ = ["attach", "connect", "httpfs_extension", "key_for", "set_key"]

ALIAS = "store"
_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
_keys: dict[str, str | None] = {}
_explicit: dict[str, bool] = {}
_keys_lock = threading.Lock()


def set_key(path: Path, key: str | None, *, explicit: bool = True) -> None:
    """Open `path` with `key` from now on in this process (None: a plain file).

    A key given explicitly (a DuckDBStore built with `encryption_key=`, a re-key) is never replaced
    by one merely resolved from the settings (`explicit=False`), whichever store object is built later.
    """
    if key is not None and not key:
        raise StoreError("the encryption key is empty; give a non-empty key or none at all")
    name = str(Path(path).resolve())
    with _keys_lock:
        if not explicit and key is None and _keys.get(name) is not None:
            return  # settings without a key say nothing about the key this process was given
        if explicit or not _explicit.get(name, False):
            _keys[name] = key
            _explicit[name] = explicit


def key_for(path: Path) -> str | None:
    with _keys_lock:
        return _keys.get(str(Path(path).resolve()))


def httpfs_extension() -> Path:
    """The httpfs extension file shipped by the wheel matched to the installed duckdb."""
    wanted = f"duckdb-extension-httpfs=={duckdb.__version__}"
    spec = importlib.util.find_spec("duckdb_extension_httpfs")  # located, never imported: it is only a folder
    if spec is None or not spec.submodule_search_locations:
        raise StoreError(
            f"writing an encrypted store needs DuckDB's httpfs extension: pip install 'agenttrace[encryption]' "
            f"(or {wanted})"
        )
    found = Path(list(spec.submodule_search_locations)[0]) / "extensions" / f"v{duckdb.__version__}"
    found = found / "httpfs.duckdb_extension"
    if not found.is_file():
        raise StoreError(f"no httpfs extension for duckdb {duckdb.__version__}: pip install {wanted}")
    return found


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _explain(exc: duckdb.Error, path: Path, key: str | None) -> StoreError | None:
    """A clear error for a key that does not fit the file; None for any other error."""
    text = str(exc)
    left = "; the file was left untouched"
    if "without a key" in text:
        return StoreError(
            f"store {path} is encrypted and no key was given: set AGENTTRACE_ENCRYPTION_KEY, or encryption_key "
            f"or encryption_key_file in agenttrace.toml{left}"
        )
    if "Wrong encryption key" in text:
        return StoreError(f"the encryption key given does not open store {path}; give the key it was made with{left}")
    if key is not None and "is not encrypted" in text:
        return StoreError(
            f"store {path} is not encrypted, but an encryption key is set: encrypt it with "
            f"`agenttrace store encrypt`, or unset the key to use it as it is{left}"
        )
    return None


def attach(con: duckdb.DuckDBPyConnection, path: Path, alias: str, key: str | None, read_only: bool) -> None:
    """ATTACH `path` as `alias` on `con`, encrypted when `key` is given; clear errors for a wrong key."""
    options = [f"ENCRYPTION_KEY {_quoted(key)}"] if key is not None else []
    if read_only:
        options.append("READ_ONLY")
    suffix = f" ({', '.join(options)})" if options else ""
    try:
        con.execute(f"ATTACH {_quoted(str(path))} AS {alias}{suffix}")
    except duckdb.Error as exc:
        clear = _explain(exc, path, key)
        if clear is not None:
            raise clear from None  # from None: DuckDB's text may quote the statement, key included
        raise


def memory_connection(load_httpfs: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that never downloads an extension; with httpfs loaded from its wheel."""
    con = duckdb.connect(":memory:", config=dict(_CONFIG))
    if load_httpfs:
        try:
            con.execute(f"LOAD {_quoted(str(httpfs_extension()))}")
        except BaseException:
            con.close()
            raise
    return con


def connect(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the store file; DuckDB's own errors (a lock above all) pass through for the caller to retry."""
    key = key_for(path)
    if key is None:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            clear = _explain(exc, path, key)
            if clear is not None:
                raise clear from exc
            raise
    con = memory_connection(load_httpfs=not read_only)
    try:
        attach(con, path, ALIAS, key, read_only)
        con.execute(f"USE {ALIAS}")
    except BaseException:
        con.close()
        raise
    return con
