"""Attribute names: ours, and the OpenTelemetry GenAI and OpenInference ones we read.

Reading order matters: our own attribute wins, then OpenInference, then GenAI, then older names.
"""

from __future__ import annotations

# Our own span attributes.
SPAN_TYPE = "agenttrace.span_type"
INPUTS = "agenttrace.inputs"
OUTPUTS = "agenttrace.outputs"
LOCAL_ROOT = "agenttrace.local_root"
EXPERIMENT = "agenttrace.experiment"
RUN_ID = "agenttrace.run_id"
TRACE_TAGS = "agenttrace.trace.tags"
TRACE_METADATA = "agenttrace.trace.metadata"
AGENT_NAME = "agenttrace.agent.name"
AGENT_VERSION = "agenttrace.agent.version"
ALWAYS_SAMPLE = "agenttrace.always_sample"  # on a root: keep this trace whatever the sample rate

# Shared with OpenInference, so exported spans carry the names other tools know.
SESSION_ID = "session.id"
USER_ID = "user.id"

OPENINFERENCE_KIND = "openinference.span.kind"
GENAI_OPERATION = "gen_ai.operation.name"

MODEL_KEYS = ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name")
INPUT_TOKEN_KEYS = ("gen_ai.usage.input_tokens", "llm.token_count.prompt", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKEN_KEYS = ("gen_ai.usage.output_tokens", "llm.token_count.completion", "gen_ai.usage.completion_tokens")

# Attributes lifted into their own columns and not repeated in the `attributes` JSON.
LIFTED = frozenset(
    {ALWAYS_SAMPLE, SPAN_TYPE, INPUTS, OUTPUTS, LOCAL_ROOT, EXPERIMENT, RUN_ID, TRACE_TAGS, TRACE_METADATA, AGENT_NAME,
     AGENT_VERSION}
)  # fmt: skip

_GENAI_OPERATION_TYPES = {
    "chat": "LLM",
    "text_completion": "LLM",
    "generate_content": "LLM",
    "embeddings": "EMBEDDING",
    "execute_tool": "TOOL",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "retrieval": "RETRIEVER",
}
_OPENINFERENCE_TYPES = {
    "LLM": "LLM", "CHAIN": "CHAIN", "TOOL": "TOOL", "RETRIEVER": "RETRIEVER", "EMBEDDING": "EMBEDDING",
    "AGENT": "AGENT", "RERANKER": "RERANKER", "GUARDRAIL": "GUARDRAIL", "EVALUATOR": "EVALUATOR",
}  # fmt: skip


def span_type_of(attributes: dict) -> str:
    """Our span type from our attribute, else OpenInference's kind, else the GenAI operation."""
    value = attributes.get(SPAN_TYPE)
    if value:
        return str(value)
    kind = attributes.get(OPENINFERENCE_KIND)
    if kind:
        return _OPENINFERENCE_TYPES.get(str(kind).upper(), "UNKNOWN")
    operation = attributes.get(GENAI_OPERATION)
    if operation:
        return _GENAI_OPERATION_TYPES.get(str(operation), "UNKNOWN")
    return "UNKNOWN"


def first_of(attributes: dict, keys: tuple[str, ...]) -> object | None:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None
