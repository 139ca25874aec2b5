"""Living beside other OpenTelemetry instrumentation: our own provider, shared context.

Each case runs in a fresh interpreter because OpenTelemetry lets a process set its global
TracerProvider only once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import agenttrace

    theirs = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(theirs))
    trace.set_tracer_provider(provider)
    other = trace.get_tracer("other-instrumentation")
    agenttrace.configure(store=sys.argv[1], capture_global=sys.argv[2] == "1", raise_internal_errors=True)

    @agenttrace.trace(span_type="TOOL")
    def tool():
        with other.start_as_current_span("http GET"):  # their span inside ours
            return 1

    @agenttrace.trace(span_type="AGENT")
    def agent():
        return tool()

    with other.start_as_current_span("web request"):  # ours inside theirs
        agent()
    agenttrace.flush()
    print(json.dumps({
        "global_is_theirs": trace.get_tracer_provider() is provider,
        "theirs": {s.name: [format(s.context.trace_id, "032x"), format(s.context.span_id, "016x"),
                            s.parent and format(s.parent.span_id, "016x")] for s in theirs.get_finished_spans()},
        "ours": [[d, s.name, s.span_id, s.parent_span_id, s.trace_id]
                 for trace_id in agenttrace.search_traces().trace_id
                 for d, s in agenttrace.get_trace(trace_id).walk()],
        "trace_names": list(agenttrace.search_traces().name),
    }))
    """
)


def _run(tmp_path: Path, capture_global: bool) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "t.duckdb"), "1" if capture_global else "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_our_spans_nest_with_theirs_without_replacing_the_global_provider(tmp_path: Path) -> None:
    result = _run(tmp_path, capture_global=False)
    assert result["global_is_theirs"]
    web_trace, web_span, _ = result["theirs"]["web request"]
    ours = {name: (span_id, parent, trace_id) for _, name, span_id, parent, trace_id in result["ours"]}
    assert set(ours) == {"agent", "tool"}  # their spans are not stored without capture_global
    assert ours["agent"][1] == web_span and ours["agent"][2] == web_trace  # ours under theirs
    assert result["theirs"]["http GET"][2] == ours["tool"][0]  # theirs under ours
    assert result["trace_names"] == ["agent"]  # our local root names the trace


def test_capture_global_stores_their_spans_too(tmp_path: Path) -> None:
    result = _run(tmp_path, capture_global=True)
    names = [(depth, name) for depth, name, *_ in result["ours"]]
    assert names == [(0, "web request"), (1, "agent"), (2, "tool"), (3, "http GET")]
    assert result["trace_names"] == ["web request"]


_RECONFIGURED = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace
    import agenttrace

    agenttrace.configure(store=sys.argv[1], capture_global=True, raise_internal_errors=True)
    agenttrace.configure(experiment="second")  # reconfigured: the global provider must follow
    with trace.get_tracer("other-instrumentation").start_as_current_span("foreign"):
        pass
    agenttrace.flush()
    frame = agenttrace.search_traces()
    print(json.dumps({"names": list(frame.name), "experiments": list(frame.experiment)}))
    """
)


def test_capture_global_follows_a_reconfigured_runtime(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _RECONFIGURED, str(tmp_path / "g.duckdb")], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"names": ["foreign"], "experiments": ["second"]}
    assert "reconfigured" not in out.stderr
