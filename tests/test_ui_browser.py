"""The UI as a person uses it, in a real headless Chromium (Debian's, driven by Playwright).

One browser and one server per module over a small store. Each test starts from its own page and
asserts what a user would see; screenshots of the main pages go to test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agenttrace.store import DuckDBStore
from tests.browser import HOSTILE, Built, copy_of_store, launch_browser, screenshot
from tests.server_harness import ServerThread

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Built]:
    return copy_of_store(tmp_path_factory, "ui-browser")


@pytest.fixture(scope="module")
def server(built: tuple[Path, Built]) -> Iterator[ServerThread]:
    with ServerThread(built[0]) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with launch_browser(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab that records any dialog (alert, confirm) a page script opens."""
    tab = browser.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.accept()))
    try:
        yield tab
    finally:
        tab.close()


def rows(page: Any, selector: str = "#traces tbody tr[data-trace-id]") -> int:
    return int(page.locator(selector).count())


def test_list_loads_and_a_filter_narrows_it(page: Any, server: ServerThread) -> None:
    page.goto(server.url + "/ui/traces")
    everything = rows(page)
    assert everything > 20
    screenshot(page, "traces")
    page.fill("input[name=q]", "tags.env = 'prod'")
    page.click("form.search button[type=submit]")
    page.wait_for_url("**q=tags.env*")
    assert 0 < rows(page) < everything
    assert all(t.startswith("plain-") for t in page.locator("td.name a").all_inner_texts())


def test_a_bad_filter_shows_its_error(page: Any, server: ServerThread) -> None:
    page.goto(server.url + "/ui/traces")
    page.fill("input[name=q]", "status = ")
    page.click("form.search button[type=submit]")
    error = page.locator("#filter-error")
    error.wait_for()
    assert "expected a quoted value" in error.inner_text()
    assert page.input_value("input[name=q]") == "status = "  # the text stays there to be fixed


def test_sorting_by_a_column_header(page: Any, server: ServerThread) -> None:
    page.goto(server.url + "/ui/traces?q=" + "name%20LIKE%20%27plain-%25%27")
    page.click("th a.sort:has-text('name')")
    page.wait_for_url("**order=name*")
    names = page.locator("td.name a").all_inner_texts()
    assert names == sorted(names, reverse=True)


def test_a_trace_opens_and_a_span_shows_its_inputs(page: Any, server: ServerThread, built: tuple[Path, Built]) -> None:
    page.goto(server.url + "/ui/traces?q=name%20%3D%20%27ask%27")
    page.click("td.name a")
    page.wait_for_url("**/ui/traces/*")
    page.click("tr.span-row >> text=llm-call")
    page.wait_for_url("**span=*")
    inputs = page.locator("#span-inputs")
    assert "You are terse." in inputs.inner_text() and "weather in Oslo?" in inputs.inner_text()
    assert "weather" in page.locator("#span-outputs").inner_text()  # the tool call, shown as a chat
    assert page.locator("tr.span-row.selected").inner_text().split("\t")[0] == "LLM llm-call"  # only that row
    screenshot(page, "trace")


def test_feedback_submitted_appears_after_reload(page: Any, server: ServerThread, built: tuple[Path, Built]) -> None:
    page.goto(f"{server.url}/ui/traces/{built[1].chat_trace}")
    page.fill("#feedback-form input[name=name]", "helpful-browser")
    page.fill("#feedback-form input[name=value]", "true")
    page.fill("#feedback-form input[name=rationale]", "answered with the tool")
    page.click("#feedback-form button[type=submit]")
    page.wait_for_url("**#assessments")
    page.reload()
    table = page.locator("#assessments table").inner_text()
    assert "helpful-browser" in table and "answered with the tool" in table and "pass" in table


def test_untrusted_content_renders_as_text_and_no_script_runs(
    page: Any, server: ServerThread, built: tuple[Path, Built]
) -> None:
    for path in (f"/ui/traces/{built[1].hostile_trace}", "/ui/traces"):
        page.goto(server.url + path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__pwned") is None
        assert page.dialogs == []
    body = page.locator("body").inner_text()
    assert HOSTILE["name"] in body  # the markup shows as the text it is
    page.goto(f"{server.url}/ui/traces/{built[1].hostile_trace}")
    text = page.locator("body").inner_text()
    assert HOSTILE["input"] in text and HOSTILE["link"] in text
    assert page.locator("a[href^='javascript:']").count() == 0
    assert page.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_an_eval_run_sorts_by_a_scorer(page: Any, server: ServerThread, built: tuple[Path, Built]) -> None:
    page.goto(f"{server.url}/ui/evals/{built[1].run_b}")
    assert page.locator("svg.chart").count() == 2
    page.click("#records th a.sort:has-text('exact_match')")
    page.wait_for_url("**sort=exact_match*")
    page.click("#records th a.sort:has-text('exact_match')")  # again: ascending, failures first
    page.wait_for_url("**desc=0*")
    ids = page.locator("#records tbody tr").evaluate_all("rows => rows.map(r => r.dataset.recordId)")
    assert ids[:2] == ["q2", "q5"]
    page.locator("#records tbody tr").first.locator("td.score details summary").first.click()
    assert "differs" in page.locator("#records tbody tr").first.locator("td.score .why").first.inner_text()
    screenshot(page, "eval-run")


def test_two_runs_compare_with_regressions_first(page: Any, server: ServerThread, built: tuple[Path, Built]) -> None:
    page.goto(server.url + "/ui/evals")
    page.select_option("select[name=a]", built[1].run_a)
    page.select_option("select[name=b]", built[1].run_b)
    page.click("#compare-form button[type=submit]")
    page.wait_for_url("**/ui/evals/compare*")
    regressed = page.locator("#regressed tbody").inner_text()
    assert "q2" in regressed and "q5" in regressed
    assert page.locator("svg.chart").count() == 1
    screenshot(page, "compare")


def test_a_report_file_opens_and_shows_its_charts(page: Any, built: tuple[Path, Built], tmp_path: Path) -> None:
    from agenttrace.reports import write_eval_report

    report = write_eval_report(DuckDBStore(built[0]), built[1].run_b, tmp_path / "report.html",
                               compare_to=built[1].run_a)  # fmt: skip
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri())
    assert page.locator("svg.chart").count() == 3  # two distributions and the comparison
    assert page.locator("svg.chart rect.bar").count() > 0
    assert "Worst records" in page.locator("body").inner_text()
    assert requests == [report.as_uri()]  # self-contained: nothing else was fetched
    screenshot(page, "report")
