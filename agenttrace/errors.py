"""The exception hierarchy: every error agenttrace raises derives from AgentTraceError.

    AgentTraceError
    ├── ConfigError                  a setting has a value we cannot use
    ├── InvalidArgumentError         a public function got an argument it cannot use (also a ValueError)
    ├── StoreError                   the DuckDB store cannot be used
    │   ├── NotAStoreError           the path exists but is not a DuckDB file
    │   ├── SchemaTooNewError        the store was written by a newer agenttrace
    │   ├── StoreLockedError         another process kept the file locked past the retry window
    │   └── BatchRejectedError       the store refused the values of a batch (a bad row in it)
    ├── FilterError                  a search filter cannot be parsed
    │   └── UnknownFieldError        the filter names a column that does not exist
    ├── TraceNotFoundError           no trace has the given id
    ├── IngestError                  an OTLP request body cannot be decoded
    ├── EvaluationError              an evaluation cannot start (bad data, scorer, predict_fn)
    │   ├── DatasetError             a dataset cannot be read or is malformed
    │   ├── EvalRunNotFoundError     no eval run has the given id, name or id prefix
    │   ├── InvalidScorerError       a scorer breaks the contract: its signature or result (also a TypeError)
    │   └── UnknownScorerError       no registered scorer has the given name
    ├── TrackingError                a run or experiment cannot do what was asked
    │   ├── RunNotFoundError         no run has the given id (the message lists recent ones)
    │   ├── ExperimentNotFoundError  no experiment has the given name or id (the message lists them)
    │   ├── RunStateError            no active run, the run ended already, or its experiment is deleted
    │   ├── ParamConflictError       a param was logged again with another value (params never change)
    │   ├── InvalidMetricError       a metric value is not a finite number (also an InvalidArgumentError)
    │   └── ArtifactPathError        an artifact path escapes its run's folder (../, absolute, symlink)
    └── RegistryError                the agent registry cannot do what was asked
        ├── AgentNotFoundError       no such agent, version or alias (the message lists what exists)
        ├── AgentImportError         a target's import path does not import; nothing was registered
        ├── VersionInUseError        a version (or agent) an alias points at cannot be deleted
        └── FingerprintMismatchError the code on disk differs from the version's (load_agent strict=True)

Errors from DuckDB, OpenTelemetry and openai are translated at the boundary with
``raise ... from exc`` so the original stays attached. Messages say what was wrong and what to do.
"""

from __future__ import annotations

__all__ = [
    "AgentImportError",
    "AgentNotFoundError",
    "AgentTraceError",
    "ArtifactPathError",
    "BatchRejectedError",
    "ConfigError",
    "DatasetError",
    "EvalRunNotFoundError",
    "EvaluationError",
    "ExperimentNotFoundError",
    "FilterError",
    "FingerprintMismatchError",
    "IngestError",
    "InvalidArgumentError",
    "InvalidScorerError",
    "InvalidMetricError",
    "NotAStoreError",
    "ParamConflictError",
    "RegistryError",
    "RunNotFoundError",
    "RunStateError",
    "SchemaTooNewError",
    "StoreError",
    "StoreLockedError",
    "TraceNotFoundError",
    "TrackingError",
    "UnknownFieldError",
    "UnknownScorerError",
    "VersionInUseError",
]


class AgentTraceError(Exception):
    """Base of every error raised by agenttrace."""


class ConfigError(AgentTraceError):
    """A configuration value is invalid."""


class InvalidArgumentError(AgentTraceError, ValueError):
    """A public function was given an argument it cannot use; the message names it and says why.

    Also a ValueError, so code written as ``except ValueError`` before this class existed still works.
    """


class StoreError(AgentTraceError):
    """The store cannot be opened, read or written."""


class NotAStoreError(StoreError):
    """The store path exists but is not a DuckDB database file."""


class SchemaTooNewError(StoreError):
    """The store's schema version is newer than this agenttrace understands."""


class StoreLockedError(StoreError):
    """Another process held the store's lock for longer than the retry window."""


class BatchRejectedError(StoreError):
    """A write failed on the values it carried (a type or constraint), not on the store itself."""


class FilterError(AgentTraceError):
    """A filter string is malformed; the message names the token and its position."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class UnknownFieldError(FilterError):
    """A filter names a field that does not exist; the message lists the valid ones."""


class IngestError(AgentTraceError):
    """An OTLP request body is not a decodable ExportTraceServiceRequest (HTTP 400)."""


class TraceNotFoundError(AgentTraceError):
    """No stored trace has the requested id."""


class EvaluationError(AgentTraceError):
    """An evaluation cannot start or its inputs are invalid."""


class DatasetError(EvaluationError):
    """A dataset cannot be read or a record is malformed."""


class EvalRunNotFoundError(EvaluationError):
    """No stored eval run has the given id, name or unique id prefix (HTTP 404 from the server)."""


class UnknownScorerError(EvaluationError):
    """No registered scorer carries the requested name."""


class InvalidScorerError(EvaluationError, TypeError):
    """Something given as a scorer is not one: it asks for unknown arguments or returned no score.

    Also a TypeError, which is what these mistakes raised before; a scorer that raises it while
    scoring a record fails that cell only, as any scorer error does.
    """


class RegistryError(AgentTraceError):
    """The agent registry cannot do what was asked (a bad name, reference, config or target)."""


class AgentNotFoundError(RegistryError):
    """No registered agent, version or alias has the given name; the message lists what exists."""


class AgentImportError(RegistryError):
    """A target given as an import path does not import; the import error is chained."""


class VersionInUseError(RegistryError):
    """A version (or an agent) cannot be deleted while an alias points at it."""


class FingerprintMismatchError(RegistryError):
    """The code on disk no longer matches a version's fingerprint and strict loading was asked for."""


class TrackingError(AgentTraceError):
    """A run or experiment operation cannot be done."""


class RunNotFoundError(TrackingError):
    """No run has the given id; the message lists the closest and most recent ones."""


class ExperimentNotFoundError(TrackingError):
    """No experiment has the given name or id; the message lists the ones that exist."""


class RunStateError(TrackingError):
    """The run is not in a state for this: no run is active, it has ended already, or its experiment is deleted."""


class ParamConflictError(TrackingError):
    """A param was logged again with a different value; params are immutable once logged."""


class InvalidMetricError(TrackingError, InvalidArgumentError):
    """A metric value is not a finite number (NaN, infinity, text, None); also a ValueError."""


class ArtifactPathError(TrackingError):
    """An artifact path leaves its run's folder: `..`, an absolute path, or a symlink out of it."""
