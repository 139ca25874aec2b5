"""The UI's pages over real HTTP from `agenttrace server` (and `agenttrace ui`'s app): what each page
shows, paging and sorting, filter errors, forms with CSRF, the auth-token sign-in, hostile content.

One server over one small store per module; each test reads or adds its own data, never relying
on another test's writes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from agenttrace.store import DuckDBStore
from agenttrace.ui import create_ui_app
from tests.browser import AppServer, Built, copy_of_store
from tests.server_harness import ServerThread, http


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Built]:
    return copy_of_store(tmp_path_factory, "ui-pages")


@pytest.fixture(scope="module")
def server(built: tuple[Path, Built]) -> Iterator[ServerThread]:
    with ServerThread(built[0]) as srv:
        yield srv


def get(server: ServerThread, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    status, response_headers, body = http(server.url + path, headers=headers)
    return status, response_headers, body.decode()


def csrf_of(server: ServerThread, path: str) -> tuple[str, str]:
    """(the form's CSRF token, the Cookie header carrying it) as a browser would have them."""
    _, headers, body = get(server, path)
    cookie = headers["set-cookie"].split(";")[0]
    match = re.search(r'name="csrf" value="([^"]+)"', body)
    assert match, "the page has no form with a CSRF token"
    return match.group(1), cookie


def post(server: ServerThread, path: str, form: dict[str, str], cookie: str) -> tuple[int, dict[str, str], str]:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    status, response_headers, body = http(server.url + path, urlencode(form).encode(), headers)
    return status, response_headers, body.decode()


def test_server_serves_the_trace_list_newest_first_with_columns(
    server: ServerThread, built: tuple[Path, Built]
) -> None:
    status, headers, body = get(server, "/ui/traces")
    assert status == 200
    assert "script-src 'self'" in headers["content-security-policy"]
    for column in ("time", "name", "status", "duration", "tokens", "tags", "session", "user", "agent"):
        assert f">{column}" in body
    names = re.findall(r'<td class="name"><a [^>]*>([^<]+)</a>', body)
    newest = DuckDBStore(built[0]).search_traces(order_by="start_time DESC", max_results=len(names))
    assert [html.unescape(n) for n in names] == list(newest["name"])
    assert "plain-11" in body and "env=prod" in body


def test_root_redirects_to_the_ui(server: ServerThread) -> None:
    status, headers, _ = get(server, "/")
    assert status == 307 and headers["location"] == "/ui/traces"


def test_filter_narrows_the_list_and_sort_orders_it(server: ServerThread) -> None:
    q = quote("name LIKE 'plain-%' AND tags.env = 'prod'")
    _, _, body = get(server, f"/ui/traces?q={q}&order=name&desc=0")
    names = re.findall(r'<td class="name"><a [^>]*>([^<]+)</a>', body)
    assert names == sorted(f"plain-{i}" for i in range(12) if i % 2)


def test_a_bad_filter_shows_its_error_inline_with_status_400(server: ServerThread) -> None:
    status, _, body = get(server, "/ui/traces?q=" + quote("duration_ms >"))
    assert status == 400
    assert 'id="filter-error"' in body and "position 13" in body
    status, _, body = get(server, "/ui/traces?q=" + quote("colour = 'red'"))
    assert status == 400 and "unknown field" in body


def test_pages_of_the_list_follow_each_other_without_overlap(server: ServerThread) -> None:
    q = quote("name LIKE 'plain-%'")
    seen: list[str] = []
    for page_no in (1, 2):
        _, _, body = get(server, f"/ui/traces?q={q}&order=name&desc=0&page={page_no}")
        seen += re.findall(r'data-trace-id="([0-9a-f]+)"', body)
    assert len(seen) == len(set(seen)) == 12  # both on page 1 (page size 50), none repeated on page 2
    _, _, body = get(server, f"/ui/traces?q={q}&page=2")
    assert "no traces match" in body


def test_latest_scores_of_assessments_are_columns(server: ServerThread, built: tuple[Path, Built]) -> None:
    _, _, body = get(server, "/ui/traces?q=" + quote("tags.eval_run_id = '" + built[1].run_b + "'"))
    assert '<th class="score">exact_match</th>' in body and '<th class="score">token_f1</th>' in body
    assert body.count(">fail</span>") == 2  # q2 and q5 in the candidate run


def test_time_range_and_experiment_pickers_filter(server: ServerThread) -> None:
    _, _, body = get(server, "/ui/traces?range=1h&experiment=Default")
    assert "plain-3" in body
    _, _, body = get(server, "/ui/traces?experiment=nope")
    assert "no traces match" in body
    _, _, body = get(server, "/ui/traces?until=2000-01-01T00:00")
    assert "no traces match" in body


def test_sessions_group_traces_and_show_a_conversation_in_order(server: ServerThread) -> None:
    _, _, body = get(server, "/ui/sessions")
    assert "session-7" in body and ">3</td>" in body
    status, _, body = get(server, "/ui/sessions/session-7")
    assert status == 200
    assert body.index("turn 0") < body.index("turn 1") < body.index("turn 2")


def test_trace_page_has_tree_waterfall_and_chat_view(server: ServerThread, built: tuple[Path, Built]) -> None:
    _, _, body = get(server, f"/ui/traces/{built[1].chat_trace}")
    assert body.count('class="span-row') == 2 and 'class="wf-bar' in body
    span_id = re.findall(r'data-span-id="([0-9a-f]+)"', body)[1]
    _, _, body = get(server, f"/ui/traces/{built[1].chat_trace}?span={span_id}")
    assert 'class="chat"' in body and "You are terse." in body
    assert "tool call <b>weather</b>" in body and "gpt-test" in body and "21 in / 5 out" in body


def test_error_span_shows_its_exception_and_stack(server: ServerThread, built: tuple[Path, Built]) -> None:
    _, _, body = get(server, f"/ui/traces/{built[1].error_trace}")
    assert "RuntimeError</b>: the tool broke" in body and "Traceback" in body


def test_unknown_trace_is_a_404_page(server: ServerThread) -> None:
    status, headers, body = get(server, "/ui/traces/ffff0000")
    assert status == 404 and headers["content-type"].startswith("text/html") and "no trace with id" in body


def test_hostile_content_is_escaped_everywhere(server: ServerThread, built: tuple[Path, Built]) -> None:
    for path in (f"/ui/traces/{built[1].hostile_trace}", "/ui/traces"):
        _, _, body = get(server, path)
        assert "<script>window.__pwned" not in body and "<img src=x" not in body and "<svg onload" not in body
        assert 'href="javascript:' not in body
    assert "&lt;script&gt;window.__pwned" in body


def test_feedback_needs_the_csrf_token_and_then_shows(server: ServerThread, built: tuple[Path, Built]) -> None:
    trace = built[1].error_trace
    token, cookie = csrf_of(server, f"/ui/traces/{trace}")
    form = {"kind": "feedback", "name": "helpful-csrf", "value": "false", "rationale": "broke", "source": "human:ana"}
    status, _, _ = post(server, f"/ui/traces/{trace}/assessments", form, cookie)
    assert status == 403  # no token in the form
    status, _, _ = post(server, f"/ui/traces/{trace}/assessments", {**form, "csrf": "forged"}, cookie)
    assert status == 403
    # Another app on localhost shares the cookie jar: its cookies, even ones a strict parser refuses,
    # must not hide ours.
    foreign = f'prefs={{"theme": "dark"}}; {cookie}; other=a b'
    status, headers, _ = post(server, f"/ui/traces/{trace}/assessments", {**form, "csrf": token}, foreign)
    assert status == 303 and headers["location"].startswith(f"/ui/traces/{trace}")
    feedback = [a for a in DuckDBStore(built[0]).get_trace(trace).assessments if a.name == "helpful-csrf"]
    assert [(a.value, a.rationale, a.source_type, a.source_id) for a in feedback] == [(False, "broke", "HUMAN", "ana")]


def test_delete_removes_the_trace_after_a_csrf_checked_post(server: ServerThread, built: tuple[Path, Built]) -> None:
    store = DuckDBStore(built[0])
    target = store.search_traces("name = 'delete-me'").trace_id.iloc[0]
    token, cookie = csrf_of(server, f"/ui/traces/{target}")
    assert post(server, f"/ui/traces/{target}/delete", {}, cookie)[0] == 403
    status, headers, _ = post(server, f"/ui/traces/{target}/delete", {"csrf": token}, cookie)
    assert status == 303 and headers["location"].startswith("/ui/traces")
    assert get(server, f"/ui/traces/{target}")[0] == 404


def test_eval_run_page_sorts_records_by_a_scorer(server: ServerThread, built: tuple[Path, Built]) -> None:
    _, _, body = get(server, f"/ui/evals/{built[1].run_b}?sort=exact_match&desc=0")
    order = re.findall(r'data-record-id="([^"]+)"', body)
    assert order[:2] == ["q2", "q5"] and sorted(order) == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert body.count('<svg class="chart"') == 2  # a histogram per scorer
    status, _, body = get(server, f"/ui/evals/{built[1].run_b}?sort=nonsense")
    assert status == 400 and "sort by one of" in body


def test_eval_list_and_compare_put_regressions_first(server: ServerThread, built: tuple[Path, Built]) -> None:
    _, _, body = get(server, "/ui/evals")
    assert "baseline" in body and "candidate" in body and "exact_match: pass rate" in body
    _, _, body = get(server, f"/ui/evals/compare?a={built[1].run_a}&b={built[1].run_b}")
    regressed = body[body.index('id="regressed"') : body.index('id="improved"')]
    assert set(re.findall(r"<code>(q\d)</code>", regressed)) == {"q2", "q5"}
    assert "-0.333" in body  # exact_match: 6/6 -> 4/6


def test_report_route_is_a_script_free_document(server: ServerThread, built: tuple[Path, Built]) -> None:
    status, headers, body = get(server, f"/ui/evals/{built[1].run_b}/report?compare={built[1].run_a}")
    assert status == 200 and "<script" not in body and "script-src" not in headers["content-security-policy"]
    assert "Compared with" in body and "/ui/traces/" in body


def test_runs_and_agents_pages_answer(server: ServerThread) -> None:
    for path in ("/ui/runs", "/ui/agents"):
        status, _, _ = get(server, path)
        assert status == 200, path


def test_static_files_only_our_own(server: ServerThread) -> None:
    assert get(server, "/ui/static/ui.js")[0] == 200
    for name in ("..%2F__init__.py", "missing.js", "app.py"):
        assert get(server, f"/ui/static/{name}")[0] == 404


def test_auth_token_sign_in_sets_a_cookie_for_the_ui_only(built: tuple[Path, Built]) -> None:
    app = create_ui_app(DuckDBStore(built[0]), auth_token="s3cret")
    with AppServer(app) as srv:
        status, headers, _ = http(srv.url + "/ui/traces?q=x")
        assert status == 303 and headers["location"] == "/ui/login?next=%2Fui%2Ftraces%3Fq%3Dx"
        form = {"token": "wrong", "next": "/ui/traces"}
        body = urlencode(form).encode()
        status, _, page = http(srv.url + "/ui/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 401 and b"not this server" in page
        body = urlencode({**form, "token": "s3cret", "next": "https://evil.example/"}).encode()
        status, headers, _ = http(srv.url + "/ui/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303 and headers["location"] == "/ui/"  # never off-site after signing in
        cookie = headers["set-cookie"].split(";")[0]
        assert "s3cret" not in cookie and "HttpOnly" in headers["set-cookie"]
        assert http(srv.url + "/ui/traces", headers={"Cookie": cookie})[0] == 200
        assert http(srv.url + "/ui/traces", headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert http(srv.url + "/ui/traces", headers={"Authorization": "Bearer nope"})[0] == 401
        assert http(srv.url + "/ui/static/ui.css")[0] == 200  # the sign-in page's stylesheet, before signing in
        assert http(srv.url + "/nothing-else", headers={"Cookie": cookie})[0] == 401  # the cookie is for /ui only


def test_ui_app_refuses_a_foreign_host_header(built: tuple[Path, Built]) -> None:
    with AppServer(create_ui_app(DuckDBStore(built[0]))) as srv:
        assert http(srv.url + "/ui/traces", headers={"Host": "evil.example"})[0] == 403
        assert http(srv.url + "/ui/traces", headers={"Host": "localhost"})[0] == 200


def test_trace_view_decodes_only_the_shown_span_and_caps_the_tree(built: tuple[Path, Built]) -> None:
    store = DuckDBStore(built[0])
    view = store.ui_trace_view(built[1].chat_trace)
    names = {s.name: s for s in view["trace"].spans}
    assert view["selected"].name == "ask" and view["selected"].inputs == {"question": "weather in Oslo?"}
    assert names["llm-call"].inputs is None and names["llm-call"].model == "gpt-test"  # tree rows carry no payload
    capped = store.ui_trace_view(built[1].chat_trace, max_spans=1)
    assert capped["truncated"] and [s.name for s in capped["trace"].spans] == ["ask"]


def test_a_run_shows_params_and_a_metric_chart_by_step(server: ServerThread, built: tuple[Path, Built]) -> None:
    _, _, body = get(server, "/ui/runs")
    assert "tuning" in body and "params.top_k" in body
    _, _, body = get(server, f"/ui/runs/{built[1].run_id}")
    assert "top_k" in body and body.count('<polyline class="series"') == 1 and "0.3000" in body


def test_an_agent_shows_versions_aliases_and_a_diff(server: ServerThread) -> None:
    _, _, body = get(server, "/ui/agents")
    assert "/ui/agents/ui-bot" in body
    _, _, body = get(server, "/ui/agents/ui-bot")
    assert "@champion" in body and body.count("<tr><td>") >= 2
    quality = body[body.index("Quality over time") : body.index("<h2>Versions")]
    assert quality.count('<polyline class="series"') == 1 and "exact_match" in quality  # version 2's one run
    _, _, body = get(server, "/ui/agents/ui-bot/diff?a=1&b=champion")
    assert "version 1 → 2" in body and "<code>model</code>" in body and "small" in body and "large" in body
    assert '<span class="add">+Be very brief.</span>' in body


def test_server_with_a_token_signs_browsers_in_to_the_ui_but_not_the_api(built: tuple[Path, Built]) -> None:
    with ServerThread(built[0], auth_token="t0ken") as srv:
        form = urlencode({"token": "t0ken", "next": "/ui/evals"}).encode()
        status, headers, _ = http(srv.url + "/ui/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303 and headers["location"] == "/ui/evals"
        cookie = headers["set-cookie"].split(";")[0]
        assert http(srv.url + "/ui/evals", headers={"Cookie": cookie})[0] == 200
        assert http(srv.url + "/api/traces", headers={"Cookie": cookie})[0] == 401  # a cookie never opens the API
        assert http(srv.url + "/api/traces", headers={"Authorization": "Bearer t0ken"})[0] == 200


def test_ui_refuses_a_store_path_that_does_not_exist(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from agenttrace.cli import cli

    missing = tmp_path / "typo.duckdb"
    result = CliRunner().invoke(cli, ["ui", "--store", str(missing), "--port", "0"])
    assert result.exit_code == 2 and f"no store at {missing}" in result.output
    assert not missing.exists()
