"""The agent registry: versions by fingerprint, aliases, tags, deletion, loading and trace stamps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import pytest

import agenttrace
from agenttrace.errors import (
    AgentImportError,
    AgentNotFoundError,
    FingerprintMismatchError,
    RegistryError,
    VersionInUseError,
)
from agenttrace.registry import (
    AgentCodeChangedWarning,
    delete_agent_version,
    diff_agent_versions,
    get_agent_version,
    list_agent_versions,
    list_agents,
    update_agent,
)

ROOT = Path(__file__).resolve().parent.parent

AGENT_SOURCE = """
from {pkg} import helpers


def answer(question, config=None, prompts=None):
    return helpers.render(prompts["system"], question, config["model"])


def plain(question):
    return "plain:" + question


async def answer_async(question, config=None):
    return config["model"] + ":" + question


def words(text, config=None):
    import agenttrace

    for word in text.split():
        with agenttrace.span("step"):
            pass
        yield config["model"] + ":" + word


async def words_async(text, config=None):
    for word in text.split():
        yield config["model"] + ":" + word


def listed(fn):
    import functools

    @functools.wraps(fn)  # a sync wrapper that looks like the generator it wraps
    def wrapper(*args, **kwargs):
        return list(fn(*args, **kwargs))

    return wrapper


@listed
def words_listed(text):
    yield from text.split()
"""
HELPERS_SOURCE = """
def render(system, question, model):
    return f"{system}|{question}|{model}"
"""


@pytest.fixture
def pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh importable package (unique name, so no module cache is shared between tests)."""
    name = f"agentpkg_{uuid.uuid4().hex[:10]}"
    folder = tmp_path / "src" / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "agent.py").write_text(AGENT_SOURCE.format(pkg=name))
    (folder / "helpers.py").write_text(HELPERS_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    return name


def _register(
    pkg: str, model: str = "m1", system: str = "be brief", **extra: object
) -> agenttrace.registry.AgentVersion:
    return agenttrace.register_agent(
        "bot", f"{pkg}.agent:answer", config={"model": model}, prompts={"system": system}, **extra
    )


def test_same_code_config_and_prompts_return_the_stored_version(pkg: str) -> None:
    first = _register(pkg)
    again = _register(pkg)
    assert (first.version, first.is_new) == (1, True)
    assert (again.version, again.is_new, again.version_id) == (1, False, first.version_id)
    assert first.config == {"model": "m1"} and first.prompts == {"system": "be brief"}
    assert set(first.code_files) == {f"{pkg}/__init__.py", f"{pkg}/agent.py", f"{pkg}/helpers.py"}
    assert first.environment["python"] == f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    assert "agenttrace" in first.environment["packages"]
    assert first.created_by and "@" in first.created_by


@pytest.mark.parametrize(
    "change",
    ["config", "prompt", "helper file", "new file in the package"],
)
def test_any_change_makes_the_next_version(pkg: str, change: str) -> None:
    first = _register(pkg)
    folder = Path(sys.modules[f"{pkg}.agent"].__file__).parent  # type: ignore[arg-type]
    if change == "config":
        second = _register(pkg, model="m2")
    elif change == "prompt":
        second = _register(pkg, system="be thorough")
    elif change == "helper file":
        (folder / "helpers.py").write_text(HELPERS_SOURCE + "\n# tuned\n")
        second = _register(pkg)
    else:
        (folder / "tools.py").write_text("TOOLS = []\n")
        second = _register(pkg)
    assert (second.version, second.is_new) == (2, True)
    assert second.version_id != first.version_id


def test_each_prompt_has_its_own_hash(pkg: str) -> None:
    version = agenttrace.register_agent(
        "bot", f"{pkg}.agent:answer", config={"model": "m"}, prompts={"system": "a", "user": "b"}
    )
    import hashlib

    assert version.prompt_hashes == {
        "system": hashlib.sha256(b"a").hexdigest(),
        "user": hashlib.sha256(b"b").hexdigest(),
    }


def test_a_function_object_registers_with_its_import_path(pkg: str) -> None:
    import importlib

    fn = importlib.import_module(f"{pkg}.agent").answer
    version = agenttrace.register_agent("bot", fn, config={"model": "m1"}, prompts={"system": "be brief"})
    assert version.target == f"{pkg}.agent:answer"
    assert _register(pkg).version_id == version.version_id  # the same thing given as a path


def test_an_import_path_that_does_not_import_registers_nothing(pkg: str) -> None:
    with pytest.raises(AgentImportError, match="No module named") as info:
        agenttrace.register_agent("bot", f"{pkg}.missing_module:answer")
    assert isinstance(info.value.__cause__, ImportError)
    with pytest.raises(AgentImportError, match="has no attribute 'nope'"):
        agenttrace.register_agent("bot", f"{pkg}.agent:nope")
    assert list_agents().empty


def test_a_module_that_raises_while_importing_is_reported(pkg: str, tmp_path: Path) -> None:
    (tmp_path / "src" / pkg / "broken.py").write_text("raise RuntimeError('no API key')\n")
    with pytest.raises(AgentImportError, match="RuntimeError: no API key"):
        agenttrace.register_agent("bot", f"{pkg}.broken:run")
    assert list_agents().empty


def test_config_must_be_json(pkg: str) -> None:
    with pytest.raises(RegistryError, match="config must be JSON"):
        agenttrace.register_agent("bot", f"{pkg}.agent:answer", config={"when": object()})
    with pytest.raises(RegistryError, match="agent name"):
        agenttrace.register_agent("bot@2", f"{pkg}.agent:answer")


def test_unknown_agent_version_and_alias_list_what_exists(pkg: str) -> None:
    _register(pkg)
    _register(pkg, model="m2")
    agenttrace.set_alias("bot", "champion", 1)
    with pytest.raises(AgentNotFoundError, match=r"no registered agent 'nobot'; registered: bot"):
        agenttrace.load_agent("nobot")
    with pytest.raises(AgentNotFoundError, match=r"no version 7; versions: 1, 2; aliases: champion->1"):
        agenttrace.load_agent("bot/7")
    with pytest.raises(AgentNotFoundError, match=r"no alias 'staging'; versions: 1, 2; aliases: champion->1"):
        agenttrace.load_agent("bot@staging")


def test_aliases_move_and_delete(pkg: str) -> None:
    _register(pkg)
    _register(pkg, model="m2")
    assert agenttrace.set_alias("bot", "champion", 1) == 1
    assert get_agent_version("bot@champion").version == 1
    assert agenttrace.set_alias("bot", "champion", 2) == 2
    assert get_agent_version("bot", "champion").version == 2
    assert get_agent_version("bot").aliases == ["champion"]
    agenttrace.delete_alias("bot", "champion")
    with pytest.raises(AgentNotFoundError, match="no alias 'champion'"):
        get_agent_version("bot@champion")
    with pytest.raises(RegistryError, match="would read as a version"):
        agenttrace.set_alias("bot", "3", 1)


def test_deleting_an_aliased_version_is_refused(pkg: str) -> None:
    _register(pkg)
    _register(pkg, model="m2")
    agenttrace.set_alias("bot", "champion", 2)
    with pytest.raises(VersionInUseError, match="alias champion"):
        delete_agent_version("bot", 2)
    assert list(list_agent_versions("bot").version) == [2, 1]
    agenttrace.delete_alias("bot", "champion")
    assert delete_agent_version("bot", 2) == 2
    assert list(list_agent_versions("bot").version) == [1]
    # a deleted number is never given again, even to the same content
    assert _register(pkg, model="m2").version == 3


def test_tags_and_descriptions_on_agents_and_versions(pkg: str) -> None:
    _register(pkg, description="first cut", tags={"team": "support"})
    update_agent("bot", description="answers support questions", tags={"owner": "ana"})
    update_agent("bot", version=1, tags={"reviewed": True, "team": None})
    agents = list_agents()
    assert agents.loc[0, "description"] == "answers support questions"
    assert agents.loc[0, "tags"] == {"team": "support", "owner": "ana"}
    version = get_agent_version("bot/1")
    assert version.description == "first cut" and version.tags == {"reviewed": "True"}


def test_list_agents_filters_and_pages(pkg: str) -> None:
    for index, name in enumerate(["alpha", "beta", "gamma"]):
        agenttrace.register_agent(name, f"{pkg}.agent:plain", tags={"team": "x" if index != 1 else "y"})
    assert list(list_agents("tags.team = 'x'").name) == ["alpha", "gamma"]
    assert list(list_agents("name LIKE 'b%' OR name = 'gamma'").name) == ["beta", "gamma"]
    assert list(list_agents(max_results=2).name) == ["alpha", "beta"]
    assert list(list_agents(max_results=2, offset=2).name) == ["gamma"]
    with pytest.raises(agenttrace.errors.UnknownFieldError, match="valid fields: name"):
        list_agents("color = 'red'")


def test_diff_names_code_files_config_keys_and_prompt_text(pkg: str) -> None:
    agenttrace.register_agent("bot", f"{pkg}.agent:answer", config={"model": "m1", "retries": 2, "llm": {"t": 0}},
                              prompts={"system": "be brief\nbe kind"})  # fmt: skip
    folder = Path(sys.modules[f"{pkg}.agent"].__file__).parent  # type: ignore[arg-type]
    (folder / "helpers.py").write_text(HELPERS_SOURCE + "\n# tuned\n")
    (folder / "tools.py").write_text("TOOLS = []\n")
    agenttrace.register_agent("bot", f"{pkg}.agent:answer", config={"model": "m2", "top_k": 5, "llm": {"t": 1}},
                              prompts={"system": "be brief\nbe thorough"})  # fmt: skip
    diff = diff_agent_versions("bot", 1, 2)
    assert diff.code == [(f"{pkg}/helpers.py", "changed"), (f"{pkg}/tools.py", "added")]
    assert diff.config == [
        ("llm.t", "changed", 0, 1),
        ("model", "changed", "m1", "m2"),
        ("retries", "removed", 2, None),
        ("top_k", "added", None, 5),
    ]
    assert "-be kind" in diff.prompts["system"] and "+be thorough" in diff.prompts["system"]
    assert diff_agent_versions("bot", 1, 1).empty


# ---- git ------------------------------------------------------------------------------------


def _git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=folder, check=True, capture_output=True, timeout=30,
    )  # fmt: skip


def test_git_commit_and_dirty_flag_are_recorded(pkg: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _git(src, "init", "-q")
    _git(src, "add", ".")
    _git(src, "commit", "-q", "-m", "agent")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True).stdout.strip()
    clean = _register(pkg)
    assert (clean.git_commit, clean.git_dirty) == (head, False)
    (src / pkg / "helpers.py").write_text(HELPERS_SOURCE + "\n# uncommitted\n")
    dirty = _register(pkg)
    assert (dirty.version, dirty.git_commit, dirty.git_dirty) == (2, head, True)


def test_registering_without_git_on_path_works(pkg: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _git(src, "init", "-q")
    _git(src, "add", ".")
    _git(src, "commit", "-q", "-m", "agent")
    empty_bin = tmp_path / "nobin"
    empty_bin.mkdir()
    script = (
        "import json, agenttrace\n"
        f"v = agenttrace.register_agent('bot', '{pkg}.agent:answer', config={{'model': 'm'}})\n"
        "print(json.dumps([v.version, v.git_commit, v.git_dirty]))\n"
    )
    env = {**os.environ, "PATH": str(empty_bin), "PYTHONPATH": str(src), "AGENTTRACE_STORE": str(tmp_path / "g.duckdb")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == [1, None, None]


# ---- two processes at once -------------------------------------------------------------------

RACER = """
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import agenttrace
go = sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.005)
v = agenttrace.register_agent("bot", sys.argv[3] + ".agent:answer", config={"model": "m1"}, prompts={"system": "s"})
print(json.dumps([v.version, v.version_id, v.is_new]))
"""


def test_two_processes_registering_the_same_agent_make_one_version(pkg: str, tmp_path: Path) -> None:
    store = tmp_path / "race.duckdb"
    go = tmp_path / "go"
    env = {**os.environ, "AGENTTRACE_STORE": str(store)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path / "src"), str(go), pkg],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for _ in range(2)
    ]
    go.write_text("go")
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        results.append(json.loads(out.splitlines()[-1]))
    assert results[0][:2] == results[1][:2] and results[0][0] == 1
    assert sorted(r[2] for r in results) == [False, True]  # one made it, the other found it
    agenttrace.configure(store=str(store))
    assert list(list_agent_versions("bot").version) == [1]


# ---- load_agent ------------------------------------------------------------------------------


def test_load_agent_binds_config_and_prompts_by_keyword(pkg: str) -> None:
    _register(pkg, model="m1", system="S1")
    _register(pkg, model="m2", system="S2")
    agenttrace.set_alias("bot", "champion", 1)
    assert agenttrace.load_agent("bot@champion")(question="q") == "S1|q|m1"
    assert agenttrace.load_agent("bot/2")("q") == "S2|q|m2"
    assert agenttrace.load_agent("bot")(question="q") == "S2|q|m2"  # the latest
    assert agenttrace.load_agent("bot/1")(question="q", config={"model": "mine"}) == "S1|q|mine"
    import inspect

    assert list(inspect.signature(agenttrace.load_agent("bot/1")).parameters) == ["question"]


def test_a_target_without_config_parameters_is_called_as_is(pkg: str) -> None:
    agenttrace.register_agent("plain", f"{pkg}.agent:plain", config={"model": "m"})
    assert agenttrace.load_agent("plain")(question="q") == "plain:q"


def test_an_async_target_loads_as_a_coroutine_function(pkg: str) -> None:
    import asyncio

    agenttrace.register_agent("abot", f"{pkg}.agent:answer_async", config={"model": "m9"})
    loaded = agenttrace.load_agent("abot")
    assert asyncio.run(loaded(question="q")) == "m9:q"


def test_changed_code_warns_and_strict_refuses(pkg: str) -> None:
    _register(pkg)
    folder = Path(sys.modules[f"{pkg}.agent"].__file__).parent  # type: ignore[arg-type]
    (folder / "helpers.py").write_text(HELPERS_SOURCE + "\n# edited after registering\n")
    with pytest.warns(AgentCodeChangedWarning, match=f"{pkg}/helpers.py \\(changed\\)"):
        loaded = agenttrace.load_agent("bot/1")
    assert loaded(question="q") == "be brief|q|m1"
    with pytest.raises(FingerprintMismatchError, match="helpers.py"):
        agenttrace.load_agent("bot/1", strict=True)


@pytest.mark.parametrize("target", ["words", "words_async"])
def test_a_generator_target_is_traced_over_its_whole_iteration(pkg: str, target: str) -> None:
    # The span covers the iteration (it ends after the last item, not when the generator object
    # is returned) and stores the items, as @trace does for a generator.
    import asyncio
    import time

    from tests.conftest import only_trace

    version = agenttrace.register_agent("gen", f"{pkg}.agent:{target}", config={"model": "m"})
    loaded = agenttrace.load_agent("gen")

    async def collect_async() -> list[str]:
        return [item async for item in loaded(text="a b")]

    started = time.time_ns()
    items = asyncio.run(collect_async()) if target == "words_async" else list(loaded(text="a b"))
    assert items == ["m:a", "m:b"]
    trace = only_trace()
    root = trace.root
    assert (root.name, root.span_type, root.inputs, root.outputs) == ("gen", "AGENT", {"text": "a b"}, items)
    assert (trace.info.agent_name, trace.info.agent_version_id) == ("gen", version.version_id)
    assert root.start_time_ns >= started
    if target == "words":  # the target's own spans nest under the version's span
        assert [(d, s.name) for d, s in trace.walk()] == [(0, "gen"), (1, "step"), (1, "step")]


def test_a_sync_wrapper_around_a_generator_is_loaded_as_what_it_returns(pkg: str) -> None:
    from tests.conftest import only_trace

    agenttrace.register_agent("listed", f"{pkg}.agent:words_listed")
    assert agenttrace.load_agent("listed")(text="a b") == ["a", "b"]
    assert only_trace().root.outputs == ["a", "b"]


def test_unchanged_code_loads_without_warning(pkg: str) -> None:
    _register(pkg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agenttrace.load_agent("bot/1", strict=True)


def test_load_agent_in_another_process(pkg: str, tmp_path: Path) -> None:
    _register(pkg, model="m7", system="S")
    agenttrace.flush()
    from agenttrace.store import _connection

    _connection.release()
    script = "import agenttrace\nprint(agenttrace.load_agent('bot/1', strict=True)(question='q'))\n"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src"), "AGENTTRACE_STORE": str(tmp_path / "traces.duckdb")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "S|q|m7"
