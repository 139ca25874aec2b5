"""Helpers for the UI tests: a small store with every kind of page content, and a real headless browser.

The browser is Debian's chromium (`/usr/bin/chromium`, installed by `.ci/browser`) driven by
Playwright through `executable_path`: no browser is ever downloaded. When none can be had the
browser tests skip with a reason that says what to install.

    store = build_store(tmp_path / "ui.duckdb")      # traces, a session, an LLM chat, an error, two eval runs
    with launch_browser() as browser: ...             # pytest.skip(...) when no browser can be had
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import agenttrace
from agenttrace.tracing import runtime

__all__ = [
    "ARTIFACTS",
    "HOSTILE",
    "AppServer",
    "Built",
    "build_store",
    "copy_of_store",
    "chromium_path",
    "launch_browser",
    "screenshot",
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

# Markup an attacker may put in a span: if any of it ran, it would set window.__pwned.
HOSTILE = {
    "name": "<script>window.__pwned = 'name'</script>",
    "input": '"><img src=x onerror="window.__pwned = \'input\'">',
    "link": "javascript:window.__pwned='link'",
    "tag": "<svg onload=\"window.__pwned='tag'\">",
}

LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


class Built:
    """What `build_store` made: ids the tests open pages by."""

    def __init__(self) -> None:
        self.chat_trace = ""
        self.error_trace = ""
        self.hostile_trace = ""
        self.run_a = ""
        self.run_b = ""
        self.regressed: list[str] = []
        self.run_id = ""


_QUESTIONS = [
    ("q1", "capital of France", "Paris"),
    ("q2", "two plus two", "4"),
    ("q3", "color of sky", "blue"),
    ("q4", "largest planet", "Jupiter"),
    ("q5", "water formula", "H2O"),
    ("q6", "author of Hamlet", "Shakespeare"),
]


_TEMPLATE: tuple[Path, Built] | None = None


def copy_of_store(factory: pytest.TempPathFactory, name: str) -> tuple[Path, Built]:
    """A private copy of the UI test store for one module; the store is built once per test process."""
    global _TEMPLATE
    if _TEMPLATE is None:
        source = factory.mktemp("ui-template") / "ui.duckdb"
        _TEMPLATE = source, build_store(source)
    source, built = _TEMPLATE
    target = factory.mktemp(name) / "ui.duckdb"
    for suffix in ("", ".wal"):
        if source.with_name(source.name + suffix).exists():
            shutil.copyfile(source.with_name(source.name + suffix), target.with_name(target.name + suffix))
    return target, built


def build_store(path: Path) -> Built:
    """Trace into `path`: plain traces, a session, an LLM chat with a tool call, an error, hostile
    content, and two eval runs of the same dataset where B answers q2 and q5 wrong."""
    built = Built()
    runtime.reset()
    agenttrace.configure(store=str(path), raise_internal_errors=True, schedule_delay_ms=50)
    try:
        for i in range(12):
            with agenttrace.span(f"plain-{i}", span_type="CHAIN", inputs={"i": i}) as s:
                agenttrace.update_current_trace(tags={"env": "prod" if i % 2 else "dev"}, user_id=f"u{i % 3}")
                s.set_outputs(i * 2)
        with agenttrace.span("delete-me", span_type="CHAIN"):
            pass  # only the delete test touches it
        for turn in range(3):
            with agenttrace.span("chat-turn", span_type="AGENT", inputs={"message": f"turn {turn}"}) as s:
                agenttrace.update_current_trace(session_id="session-7", user_id="ana")
                s.set_outputs(f"reply {turn}")
        with agenttrace.span("ask", span_type="AGENT", inputs={"question": "weather in Oslo?"}) as root:
            with agenttrace.span(
                "llm-call",
                span_type="LLM",
                inputs={
                    "messages": [
                        {"role": "system", "content": "You are terse."},
                        {"role": "user", "content": "weather in Oslo?"},
                    ]
                },
            ) as llm:
                llm.set_attributes({"gen_ai.request.model": "gpt-test", "gen_ai.usage.input_tokens": 21,
                                    "gen_ai.usage.output_tokens": 5})  # fmt: skip
                llm.set_outputs({"choices": [{"finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                        "name": "weather", "arguments": '{"city": "Oslo"}'}}]}}]})  # fmt: skip
            root.set_outputs("-3 and snowing")
        built.chat_trace = agenttrace.search_traces("name = 'ask'").trace_id.iloc[0]
        try:
            with agenttrace.span("fails", span_type="TOOL", inputs={"x": 1}):
                raise RuntimeError("the tool broke")
        except RuntimeError:
            pass
        built.error_trace = agenttrace.search_traces("name = 'fails'").trace_id.iloc[0]
        with agenttrace.span(HOSTILE["name"], span_type="CHAIN", inputs={"q": HOSTILE["input"]}) as s:
            s.set_attributes({"homepage": HOSTILE["link"], "note": HOSTILE["input"]})
            agenttrace.update_current_trace(tags={"evil": HOSTILE["tag"]})
            s.set_outputs({"html": HOSTILE["tag"]})
        built.hostile_trace = agenttrace.search_traces("status = 'OK' AND name LIKE '<script>%'").trace_id.iloc[0]
        built.run_a, built.run_b = _eval_runs(built)
        _run_and_agent(built)
    finally:
        agenttrace.flush()
        runtime.reset()
    return built


def _eval_runs(built: Built) -> tuple[str, str]:
    data = [
        {"id": rid, "inputs": {"question": q}, "expectations": {"expected_response": a}} for rid, q, a in _QUESTIONS
    ]
    answers = {q: a for _, q, a in _QUESTIONS}
    wrong = {"two plus two": "5", "water formula": "H2O2"}
    built.regressed = ["q2", "q5"]

    def good(question: str) -> str:
        return answers[question]

    def worse(question: str) -> str:
        return wrong.get(question, answers[question])

    a = agenttrace.evaluate(data, good, scorers=["exact_match", "token_f1"], run_name="baseline")
    b = agenttrace.evaluate(data, worse, scorers=["exact_match", "token_f1"], run_name="candidate")
    return a.eval_run_id, b.eval_run_id


def support_bot(question: str, config: dict[str, Any] | None = None) -> str:
    """The registered agent of the UI test store."""
    return f"{(config or {}).get('model')}: {question}"


def _run_and_agent(built: Built) -> None:
    with agenttrace.start_run(name="tuning", experiment="Default") as run:
        agenttrace.log_params({"top_k": 5})
        for step, loss in enumerate([0.9, 0.5, 0.3]):
            agenttrace.log_metric("loss", loss, step=step)
    built.run_id = run.run_id
    agenttrace.register_agent("ui-bot", support_bot, config={"model": "small"}, prompts={"system": "Be brief."})
    second = agenttrace.register_agent(
        "ui-bot", support_bot, config={"model": "large"}, prompts={"system": "Be very brief."}
    )
    agenttrace.set_alias("ui-bot", "champion", second.version)
    records = [{"id": "a1", "inputs": {"question": "hi"}, "expectations": {"expected_response": "large: hi"}}]
    agenttrace.evaluate(records, agenttrace.load_agent("ui-bot@champion"), scorers=["exact_match"], run_name="bot-eval")


def chromium_path() -> str | None:
    """Debian's chromium, or another system chromium on PATH; None when there is none."""
    for candidate in (os.environ.get("AGENTTRACE_TEST_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@contextmanager
def launch_browser(profile_dir: Path) -> Iterator[Any]:
    """A headless chromium driven by Playwright; skips (loudly) when no browser can be had."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("NO BROWSER: UI browser tests need Debian's chromium at /usr/bin/chromium; run .ci/browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("NO BROWSER DRIVER: the playwright package is missing; pip install -e '.[dev]'")
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(profile_dir), executable_path=executable, headless=True, args=LAUNCH_ARGS,
            viewport={"width": 1400, "height": 900},
        )  # fmt: skip
        try:
            yield browser
        finally:
            browser.close()


class AppServer:
    """Any ASGI app under uvicorn on an ephemeral 127.0.0.1 port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __enter__(self) -> AppServer:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("UI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def screenshot(page: Any, name: str) -> Path:
    """Save a screenshot of the page under test-artifacts/ (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=False)
    return target
