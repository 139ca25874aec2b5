"""OTLP export: our spans to any collector, speaking the conventions other tools read.

Our spans carry `agenttrace.*` attributes. At export, and only there, `with_conventions` adds the
OpenTelemetry GenAI names (`gen_ai.operation.name`, `gen_ai.request.model`, `gen_ai.usage.*`) and
the OpenInference ones (`openinference.span.kind`, `input.value`, `llm.token_count.*`, …) that
Phoenix, Langfuse, MLflow and Jaeger show; an attribute the span already has is never replaced, and
our own attributes travel too, so `agenttrace server` reads an exported span back losslessly.

`ConventionExporter` wraps OpenTelemetry's own OTLP exporter (which retries with backoff) and sits
behind the same counting batch processor as the store, so a collector that is down costs the agent
nothing but queue space, and every span it cannot take is counted.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agenttrace.jsontext import dumps
from agenttrace.otel import conventions as cv
from agenttrace.otel import messages
from agenttrace.otel.client_export import ServerSpanExporter

__all__ = [
    "ConventionExporter", "build_otlp_exporter", "remote_exporters", "traces_url", "with_conventions",
]  # fmt: skip

logger = logging.getLogger("agenttrace")

_OPENINFERENCE_KIND = {"PARSER": "CHAIN"}  # every other type of ours is an OpenInference kind too
_GENAI_OPERATION = {
    "LLM": "chat", "EMBEDDING": "embeddings", "TOOL": "execute_tool", "AGENT": "invoke_agent",
    "RETRIEVER": "retrieval",
}  # fmt: skip
# (source, target) pairs copied when the target is missing: GenAI <-> OpenInference.
_MIRRORED = (
    ("gen_ai.request.model", "llm.model_name"),
    ("gen_ai.response.model", "llm.model_name"),
    ("llm.model_name", "gen_ai.request.model"),
    ("gen_ai.usage.input_tokens", "llm.token_count.prompt"),
    ("gen_ai.usage.output_tokens", "llm.token_count.completion"),
    ("llm.token_count.prompt", "gen_ai.usage.input_tokens"),
    ("llm.token_count.completion", "gen_ai.usage.output_tokens"),
    ("gen_ai.provider.name", "llm.system"),
    ("llm.system", "gen_ai.provider.name"),
    (cv.SESSION_ID, "gen_ai.conversation.id"),
    (cv.AGENT_NAME, "gen_ai.agent.name"),
)


def traces_url(endpoint: str, protocol: str) -> str:
    """The URL to send to: an http endpoint given without a path gets the signal path /v1/traces."""
    if protocol == "grpc":
        return endpoint
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        from agenttrace.errors import ConfigError

        raise ConfigError(f"otlp_endpoint {endpoint!r} is not an http(s) URL, like http://127.0.0.1:4318/v1/traces")
    return endpoint.rstrip("/") + "/v1/traces" if parts.path in ("", "/") else endpoint


def with_conventions(attributes: Mapping[str, Any], payloads: bool = True) -> dict[str, Any]:
    """Our attributes plus the GenAI and OpenInference names for the same facts.

    `payloads=False` leaves out the message and document forms, which parse our JSON payloads.
    """
    out = dict(attributes)
    span_type = str(out.get(cv.SPAN_TYPE) or "")
    if span_type:
        out.setdefault(cv.OPENINFERENCE_KIND, _OPENINFERENCE_KIND.get(span_type, span_type))
        if span_type in _GENAI_OPERATION:
            out.setdefault(cv.GENAI_OPERATION, _GENAI_OPERATION[span_type])
    for ours, prefix in ((cv.INPUTS, "input"), (cv.OUTPUTS, "output")):
        if ours in out and f"{prefix}.value" not in out:
            out[f"{prefix}.value"] = out[ours]
            out[f"{prefix}.mime_type"] = "application/json"
    for source, target in _MIRRORED:
        if source in out and target not in out:
            out[target] = out[source]
    prompt, completion = out.get("llm.token_count.prompt"), out.get("llm.token_count.completion")
    if "llm.token_count.total" not in out and isinstance(prompt, int) and isinstance(completion, int):
        out["llm.token_count.total"] = prompt + completion
    if payloads:
        _payload_conventions(out, span_type)
    tags = _json_object(out.get(cv.TRACE_TAGS))
    if tags and "tag.tags" not in out:
        out["tag.tags"] = [f"{k}:{v}" for k, v in tags.items()]
    if cv.TRACE_METADATA in out and "metadata" not in out:
        out["metadata"] = out[cv.TRACE_METADATA]
    return out


def _payload_conventions(out: dict[str, Any], span_type: str) -> None:
    """The richer forms of our payloads that peers render: chat messages and retrieved documents.

    An LLM span's messages (stored in our one message shape) become `gen_ai.input.messages` /
    `gen_ai.output.messages` and OpenInference's `llm.input_messages.*` (Phoenix's chat view); a
    RETRIEVER span's documents become `retrieval.documents.*`. Parsed here, at export, only. Ingest
    recognises these forms as copies by the same list of types (`cv.PAYLOAD_FORM_TYPES`).
    """
    if span_type not in cv.PAYLOAD_FORM_TYPES:
        return
    if span_type == "LLM":
        for ours, side, genai in ((cv.INPUTS, "in", "gen_ai.input.messages"),
                                  (cv.OUTPUTS, "out", "gen_ai.output.messages")):  # fmt: skip
            found = messages.messages(out.get(ours))
            if found is None:
                continue
            out.setdefault(genai, out[ours])
            for key, value in messages.to_openinference(found, side).items():
                out.setdefault(key, value)
    elif span_type == "RETRIEVER":
        documents = messages.json_value(out.get(cv.OUTPUTS))
        if isinstance(documents, list):
            for i, doc in enumerate(documents):
                if not isinstance(doc, dict):
                    continue
                for field in ("id", "content", "score", "metadata"):
                    value = doc.get(field)
                    if value is not None:
                        plain = value if isinstance(value, str | int | float) else dumps(value)
                        out.setdefault(f"retrieval.documents.{i}.document.{field}", plain)


def _json_object(text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class ConventionExporter(SpanExporter):
    """Adds the standard conventions to each span, then hands the batch to an OTLP exporter.

    Called by BatchSpanProcessor on its worker thread. Never raises: a batch the inner exporter
    could not deliver (after its own retries) is counted in `failed` and logged once at WARNING.
    """

    def __init__(self, inner: SpanExporter, add_conventions: bool = True) -> None:
        self.inner = inner
        self.add_conventions = add_conventions
        self.exported = 0
        self.failed = 0
        self._warned = False
        self._lock = threading.Lock()
        self._resources: dict[int, tuple[Resource, Resource]] = {}

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export([self._convert(s) for s in spans] if self.add_conventions else spans)
        except Exception as exc:  # the inner exporter should not raise; if it does, count it
            logger.debug("OTLP export raised", exc_info=exc)
            result = SpanExportResult.FAILURE
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        if result is not SpanExportResult.SUCCESS and not self._warned:
            self._warned = True
            logger.warning("agenttrace could not export %d spans over OTLP; failures are counted", len(spans))
        return result

    @property
    def done(self) -> int:
        return self.exported + self.failed

    def _convert(self, span: ReadableSpan) -> ReadableSpan:
        return ReadableSpan(
            name=span.name, context=span.context, parent=span.parent, resource=self._resource(span.resource),
            attributes=with_conventions(span.attributes or {}), events=span.events, links=span.links,
            kind=span.kind, status=span.status, start_time=span.start_time, end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )  # fmt: skip

    def _resource(self, resource: Resource) -> Resource:
        """Phoenix picks the project from `openinference.project.name`: our experiment."""
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            experiment = resource.attributes.get(cv.EXPERIMENT)
            extra = {"openinference.project.name": experiment} if experiment else {}
            merged = resource.merge(Resource(extra)) if extra else resource
            cached = self._resources[id(resource)] = (resource, merged)
        return cached[1]

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def build_otlp_exporter(
    endpoint: str,
    protocol: str,
    headers: Mapping[str, str],
    timeout_s: float | None = None,
    add_conventions: bool = True,
) -> ConventionExporter:
    """OpenTelemetry's OTLP exporter for the protocol, wrapped to add conventions (unless told not to) and count."""
    inner: SpanExporter
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        secure = urlsplit(endpoint).scheme == "https"
        grpc_headers = {k.lower(): v for k, v in headers.items()} or None  # gRPC metadata keys are lower-case
        inner = GrpcExporter(endpoint=endpoint, insecure=not secure, headers=grpc_headers, timeout=timeout_s)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        url = traces_url(endpoint, protocol)
        inner = HttpExporter(endpoint=url, headers=dict(headers) or None, timeout=timeout_s)
    return ConventionExporter(inner, add_conventions)


def remote_exporters(settings: Any) -> list[tuple[ConventionExporter | ServerSpanExporter, int]]:
    """The OTLP exporters a configuration asks for, each with its batch size.

    Client mode (`uri`, an `agenttrace server`) takes our large store batches, cut into bodies
    under the server's limit by `ServerSpanExporter`; any other collector gets OpenTelemetry's
    default of 512 spans per request, which every receiver accepts.
    """
    from agenttrace.config import parse_headers

    found: list[tuple[ConventionExporter | ServerSpanExporter, int]] = []
    if settings.uri:
        headers = {"Authorization": f"Bearer {settings.auth_token}"} if settings.auth_token else {}
        # The server reads our own attributes; the copies other tools need would only be sent twice.
        found.append((ServerSpanExporter(settings.uri.rstrip("/") + "/v1/traces", headers), settings.export_batch_size))
    if settings.otlp_endpoint:
        exporter = build_otlp_exporter(
            settings.otlp_endpoint, settings.otlp_protocol, parse_headers(settings.otlp_headers)
        )
        found.append((exporter, min(512, settings.export_batch_size)))
    return found
