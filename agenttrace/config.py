"""Settings, read in one place with one precedence: argument > environment > file > default.

Each setting is declared once (name, environment variable, parser, default). Nothing is read at
import time: `resolve()` reads the environment and the optional TOML file when it is called.
The file is `agenttrace.toml` in the working folder, or the path in AGENTTRACE_CONFIG_FILE.

Some settings also answer to a standard variable another tool defines (OTEL_EXPORTER_OTLP_*,
OTEL_SERVICE_NAME, OPENAI_*). Those are environment too, so they beat the file, but they sit below
our own AGENTTRACE_* variable: a user who names the agenttrace setting explicitly wins over a
variable set for every OpenTelemetry or OpenAI program on the machine.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from agenttrace.errors import ConfigError

__all__ = [
    "CONFIG_FILE_ENV",
    "DEFAULT_STORE",
    "FALLBACK_ENV",
    "Settings",
    "encryption_key",
    "env_name",
    "parse_duration",
    "parse_headers",
    "resolve",
]

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


def _parse_text(text: str) -> Any:
    """Stripped text; blank text counts as not set, so the next layer down still applies."""
    return text.strip() or _UNSET


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
    # The longest a finished span waits before its write starts: about what kill -9 can lose.
    flush_interval_s: float = 1.0
    # The longest the program's exit (or a SIGTERM) waits for spans still being written or sent;
    # what is left after it is counted and reported.
    exit_timeout_s: float = 5.0
    # Off in production (internal errors are logged and counted); the test suite turns it on.
    raise_internal_errors: bool = False
    # OTLP export (also read from the standard OTEL_EXPORTER_OTLP_* variables, below AGENTTRACE_*).
    otlp_endpoint: str | None = None  # http(s) URL; one without a path gets /v1/traces
    otlp_protocol: str = "http/protobuf"  # or "grpc"
    otlp_headers: Any = None  # dict, or "key=value,key2=value2" as in OTEL_EXPORTER_OTLP_HEADERS
    # Client mode: send spans to `agenttrace server` at this http URL instead of opening a file.
    uri: str | None = None
    auth_token: str | None = None  # sent as "Authorization: Bearer ..." to the server in client mode
    autolog: Any = ()  # integrations to instrument at configure time, e.g. ["openai"]
    # The OpenTelemetry resource's service.name; None leaves the choice to the tracer provider set-up.
    service_name: str | None = None
    # The OpenAI-compatible endpoint LLM judges call (evaluators.judges); also read from OPENAI_*.
    judge_model: str | None = None
    judge_base_url: str | None = None  # None means OpenAI itself
    judge_api_key: str | None = field(default=None, repr=False)  # kept out of logged reprs
    # Where runs copy their artifacts: a folder or file:// URI; None means <store name>-artifacts beside the store.
    artifact_root: str | None = None
    # Encryption at rest: the store's key itself, or a file holding it (one of the two; see encryption_key()).
    encryption_key: str | None = field(default=None, repr=False)  # kept out of logged reprs
    encryption_key_file: str | None = None
    # `agenttrace server` deletes traces that started longer ago than this many seconds ("30d" in text).
    retention: float | None = None


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
    "flush_interval_s": float,
    "exit_timeout_s": float,
    "raise_internal_errors": _parse_bool,
    "otlp_endpoint": _parse_store,
    "otlp_protocol": str,
    "otlp_headers": str,
    "uri": _parse_store,
    "auth_token": str,
    "autolog": lambda text: tuple(p.strip() for p in text.split(",") if p.strip()),
    "service_name": _parse_text,
    "judge_model": _parse_text,
    "judge_base_url": _parse_text,
    "judge_api_key": _parse_text,
    "artifact_root": _parse_store,
    "encryption_key": _parse_text,
    "encryption_key_file": _parse_store,
    "retention": lambda text: None if text.strip().lower() in {"", "none", "off"} else parse_duration(text),
}

# Settings that fall back to one standard variable, read after the file and before AGENTTRACE_*.
FALLBACK_ENV: dict[str, str] = {
    "service_name": "OTEL_SERVICE_NAME",
    "judge_model": "OPENAI_MODEL",
    "judge_base_url": "OPENAI_BASE_URL",
    "judge_api_key": "OPENAI_API_KEY",
}

# The standard OpenTelemetry variables, read after the file and before AGENTTRACE_* ones.
OTEL_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTEL_HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
OTEL_TRACES_HEADERS = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
OTEL_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
OTEL_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
OTLP_PROTOCOLS = ("http/protobuf", "grpc")


def _standard_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from other tools' variables: FALLBACK_ENV, then otlp_* from OTEL_EXPORTER_OTLP_*."""
    values: dict[str, Any] = {}
    for name, variable in FALLBACK_ENV.items():
        raw = environ.get(variable)
        if raw is None:
            continue
        value = _parse(name, raw, f"{variable}={raw!r} is invalid")
        if value is not _UNSET:
            values[name] = value
    return values | _otel_environment(environ)


def _otel_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """otlp_* settings from OTEL_EXPORTER_OTLP_*; the traces-specific variable wins."""
    values: dict[str, Any] = {}
    protocol = environ.get(OTEL_TRACES_PROTOCOL) or environ.get(OTEL_PROTOCOL)
    if protocol:
        values["otlp_protocol"] = protocol.strip()
    headers = environ.get(OTEL_TRACES_HEADERS) or environ.get(OTEL_HEADERS)
    if headers:
        values["otlp_headers"] = headers
    if environ.get(OTEL_TRACES_ENDPOINT):
        values["otlp_endpoint"] = environ[OTEL_TRACES_ENDPOINT].strip()
    elif environ.get(OTEL_ENDPOINT):
        base = environ[OTEL_ENDPOINT].strip()
        # The spec: the generic variable is a base URL and the signal path is appended (HTTP only).
        grpc = values.get("otlp_protocol") == "grpc"
        values["otlp_endpoint"] = base if grpc else base.rstrip("/") + "/v1/traces"
    return values


def parse_headers(value: Any) -> dict[str, str]:
    """Headers from a mapping or the "k=v,k2=v2" form (values URL-decoded, as the OTLP spec says)."""
    from urllib.parse import unquote

    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if not isinstance(value, str):
        raise ConfigError(f"otlp_headers must be a dict or 'key=value,...' text, got {type(value).__name__}")
    headers = {}
    for part in value.split(","):
        if not part.strip():
            continue
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"otlp_headers: {part.strip()!r} is not key=value; write 'k=v,k2=v2'")
        headers[unquote(key.strip())] = unquote(val.strip())
    return headers


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds from '30d', '12h', '90m', '2w', '45s' or a bare number of seconds."""
    raw = text.strip().lower()
    number, unit = (raw[:-1], raw[-1]) if raw[-1:] in _DURATION_UNITS else (raw, "s")
    try:
        seconds = float(number) * _DURATION_UNITS[unit]
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:  # refuses nan, inf and negative ages; 0s is "everything until now"
        raise ValueError(f"{text!r} is not a duration; use a number of 0 or more and a unit s, m, h, d or w, like 30d")
    return seconds


def encryption_key(settings: Settings) -> str | None:
    """The store's encryption key: `encryption_key`, or the text of `encryption_key_file` (trailing newline dropped)."""
    if settings.encryption_key_file is None:
        return settings.encryption_key
    path = Path(settings.encryption_key_file).expanduser()
    try:
        key = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read encryption_key_file {path}: {exc}; fix the path or its permissions") from exc
    if not key:
        raise ConfigError(f"encryption_key_file {path} is empty; write the store's key into it")
    return key


def env_name(setting: str) -> str:
    """The AGENTTRACE_* environment variable of a setting."""
    return f"AGENTTRACE_{setting.upper()}"


def _parse(name: str, raw: str, problem: str) -> Any:
    """Text through the setting's parser (_UNSET means "not set here"); a ValueError names its source."""
    try:
        return _PARSERS[name](raw)
    except ValueError as exc:
        raise ConfigError(f"{problem}: {exc}") from exc


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
        # TOML gives typed values; text in the file ("0.5", "false") reads as the environment does
        value = raw
        if name in _PARSERS and isinstance(raw, str):
            value = _parse(name, raw, f"{name} = {raw!r} in the config file is invalid")
        if value is not _UNSET:
            values[name] = value
    values.update(_standard_environment(environ))
    for name in _PARSERS:
        raw = environ.get(env_name(name))
        if raw is None:
            continue
        value = _parse(name, raw, f"{env_name(name)}={raw!r} is invalid")
        if value is not _UNSET:
            values[name] = value
    for name, value in (overrides or {}).items():
        if name not in known:
            raise ConfigError(f"unknown setting {name!r}; valid: {', '.join(sorted(known))}")
        if value is not _UNSET:
            values[name] = value
    if isinstance(values.get("retention"), str):  # configure(retention="30d") reads as the environment does
        values["retention"] = _parse("retention", values["retention"], "retention is invalid")
    settings = replace(Settings(), **values)
    _validate(settings)
    return settings


_TYPES: dict[str, type | tuple[type, ...]] = {
    "experiment": str,
    "enabled": bool,
    "sample_rate": (int, float),
    "max_payload_bytes": int,
    "capture_global": bool,
    "max_queue_size": int,
    "export_batch_size": int,
    "schedule_delay_ms": int,
    "lock_timeout_s": (int, float),
    "flush_interval_s": (int, float),
    "exit_timeout_s": (int, float),
    "raise_internal_errors": bool,
}
# Text settings that may be left unset (None) but, when set, must be non-blank text. Nothing more is
# checked here: OPENAI_* is set for other programs too, and a value only a judge cares about (say a
# base URL without a scheme) must not switch tracing off; the judge checks it when it is built.
_OPTIONAL_TEXT = ("service_name", "judge_model", "judge_base_url", "judge_api_key", "encryption_key")


def _validate(s: Settings) -> None:
    for name, expected in _TYPES.items():
        value = getattr(s, name)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{name} must be {getattr(expected, '__name__', 'a number')}, got {value!r}")
    if s.store is not None and not isinstance(s.store, str | os.PathLike):
        raise ConfigError(f"store must be a path or None, got {s.store!r}")
    for name in ("max_queue_size", "export_batch_size", "schedule_delay_ms"):
        if getattr(s, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(s, name)}")
    for name in ("flush_interval_s", "exit_timeout_s"):
        if not getattr(s, name) > 0:
            raise ConfigError(f"{name} must be a number of seconds above 0, got {getattr(s, name)}")
    if not 0.0 <= s.sample_rate <= 1.0:
        raise ConfigError(f"sample_rate must be between 0 and 1, got {s.sample_rate}")
    if s.max_payload_bytes < 64:
        raise ConfigError(f"max_payload_bytes must be at least 64, got {s.max_payload_bytes}")
    if s.redact is not None and not callable(s.redact) and isinstance(s.redact, str | bytes):
        raise ConfigError("redact must be a callable or a list of key names, not a single string")
    if s.max_queue_size < s.export_batch_size:
        raise ConfigError("max_queue_size must be at least export_batch_size")
    if s.otlp_protocol not in OTLP_PROTOCOLS:
        raise ConfigError(f"otlp_protocol must be {' or '.join(OTLP_PROTOCOLS)}, not {s.otlp_protocol!r}")
    parse_headers(s.otlp_headers)
    unknown = set(s.autolog or ()) - {"openai"}
    if isinstance(s.autolog, str) or unknown:
        raise ConfigError(f"autolog takes a list of integrations from: openai; got {s.autolog!r}")
    if s.uri is not None and not s.uri.startswith(("http://", "https://")):
        raise ConfigError(f"uri must be the http(s) URL of `agenttrace server`, not {s.uri!r}")
    if s.encryption_key is not None and s.encryption_key_file is not None:
        raise ConfigError("set encryption_key or encryption_key_file, not both: they could name different keys")
    if s.retention is not None and (isinstance(s.retention, bool) or not isinstance(s.retention, int | float)):
        raise ConfigError(f"retention must be a number of seconds or text like '30d', got {s.retention!r}")
    if s.retention is not None and not s.retention > 0:
        raise ConfigError(f"retention must be a positive age, got {s.retention!r}")
    for name in _OPTIONAL_TEXT:
        value = getattr(s, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{name} must be non-empty text, got {value!r}")
