"""Settings, read in one place with one precedence: argument > environment > file > default.

Each setting is declared once (name, environment variable, parser, default). Nothing is read at
import time: `resolve()` reads the environment and the optional TOML file when it is called.
The file is `agenttrace.toml` in the working folder, or the path in AGENTTRACE_CONFIG_FILE.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from agenttrace.errors import ConfigError

__all__ = ["CONFIG_FILE_ENV", "DEFAULT_STORE", "Settings", "resolve"]

DEFAULT_STORE = "agenttrace.duckdb"
CONFIG_FILE_ENV = "AGENTTRACE_CONFIG_FILE"
_UNSET: Any = object()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _parse_store(text: str) -> str | None:
    return None if text.strip().lower() in {"", "none", "off"} else text


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting with its default. Environment names are AGENTTRACE_<NAME upper-cased>."""

    store: str | None = DEFAULT_STORE  # path of the DuckDB file; None turns the store off
    experiment: str = "Default"
    enabled: bool = True
    sample_rate: float = 1.0
    max_payload_bytes: int = 64 * 1024
    redact: Any = None  # callable(value) -> value, or an iterable of key names to mask
    capture_global: bool = False
    # Bounds of the batch processor: large batches because each one opens and closes the file.
    max_queue_size: int = 200_000
    export_batch_size: int = 8192
    schedule_delay_ms: int = 1000
    lock_timeout_s: float = 10.0
    # Off in production (internal errors are logged and counted); the test suite turns it on.
    raise_internal_errors: bool = False


_PARSERS: dict[str, Callable[[str], Any]] = {
    "store": _parse_store,
    "experiment": str,
    "enabled": _parse_bool,
    "sample_rate": float,
    "max_payload_bytes": int,
    "capture_global": _parse_bool,
    "max_queue_size": int,
    "export_batch_size": int,
    "schedule_delay_ms": int,
    "lock_timeout_s": float,
    "raise_internal_errors": _parse_bool,
}


def env_name(setting: str) -> str:
    return f"AGENTTRACE_{setting.upper()}"


def _read_file(environ: Mapping[str, str]) -> dict[str, Any]:
    path = Path(environ.get(CONFIG_FILE_ENV, "agenttrace.toml"))
    if not path.is_file():
        if CONFIG_FILE_ENV in environ:
            raise ConfigError(f"{CONFIG_FILE_ENV} points at {path}, which is not a file; fix or unset it")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    return data.get("agenttrace", data)


def resolve(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from arguments, then environment, then the config file, then defaults."""
    environ = os.environ if environ is None else environ
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    for name, raw in _read_file(environ).items():
        if name not in known:
            raise ConfigError(f"unknown setting {name!r} in config file; valid: {', '.join(sorted(known))}")
        values[name] = raw
    for name, parse in _PARSERS.items():
        raw = environ.get(env_name(name))
        if raw is None:
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{env_name(name)}={raw!r} is invalid: {exc}") from exc
    for name, value in (overrides or {}).items():
        if name not in known:
            raise ConfigError(f"unknown setting {name!r}; valid: {', '.join(sorted(known))}")
        if value is not _UNSET:
            values[name] = value
    settings = replace(Settings(), **values)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if not 0.0 <= s.sample_rate <= 1.0:
        raise ConfigError(f"sample_rate must be between 0 and 1, got {s.sample_rate}")
    if s.max_payload_bytes < 64:
        raise ConfigError(f"max_payload_bytes must be at least 64, got {s.max_payload_bytes}")
    if s.redact is not None and not callable(s.redact) and isinstance(s.redact, str | bytes):
        raise ConfigError("redact must be a callable or a list of key names, not a single string")
    if s.max_queue_size < s.export_batch_size:
        raise ConfigError("max_queue_size must be at least export_batch_size")
