"""Settings: one precedence (argument > environment > file > default) for every setting, judges included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agenttrace import config
from agenttrace.errors import ConfigError
from evaluators.judges import SafetyJudge
from evaluators.judges.errors import JudgeConfigError
from evaluators.judges.settings import resolve_settings
from tests.judge_stub import StubJudgeServer

# Each layer sets all three judge settings and service_name to a value naming the layer, so the
# winner of every setting is visible in one resolve.
FILE = """[agenttrace]
judge_model = "file"
judge_base_url = "http://file"
judge_api_key = "file"
service_name = "file"
"""
OURS = {
    "AGENTTRACE_JUDGE_MODEL": "ours",
    "AGENTTRACE_JUDGE_BASE_URL": "http://ours",
    "AGENTTRACE_JUDGE_API_KEY": "ours",
    "AGENTTRACE_SERVICE_NAME": "ours",
}
STANDARD = {
    "OPENAI_MODEL": "standard",
    "OPENAI_BASE_URL": "http://standard",
    "OPENAI_API_KEY": "standard",
    "OTEL_SERVICE_NAME": "standard",
}
ARGUMENTS = {"judge_model": "arg", "judge_base_url": "http://arg", "judge_api_key": "arg", "service_name": "arg"}


def _file(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return {config.CONFIG_FILE_ENV: str(path)}


def _winners(settings: config.Settings) -> tuple[str | None, ...]:
    values = (settings.judge_model, settings.judge_base_url, settings.judge_api_key, settings.service_name)
    return tuple(v.removeprefix("http://") if v else v for v in values)


@pytest.mark.parametrize(
    ("with_file", "environ", "arguments", "winner"),
    [
        (False, {}, {}, None),
        (True, {}, {}, "file"),
        (True, STANDARD, {}, "standard"),
        (True, {**STANDARD, **OURS}, {}, "ours"),
        (False, OURS, {}, "ours"),
        (True, {**STANDARD, **OURS}, ARGUMENTS, "arg"),
    ],
    ids=["default", "file", "standard-env-over-file", "agenttrace-env-over-standard", "env-alone", "argument-wins"],
)
def test_judge_and_service_settings_follow_the_one_precedence(
    tmp_path: Path, with_file: bool, environ: dict[str, str], arguments: dict[str, str], winner: str | None
) -> None:
    env = {**environ, **(_file(tmp_path, FILE) if with_file else {})}
    assert _winners(config.resolve(arguments, env)) == (winner,) * 4


def test_blank_variables_count_as_unset(tmp_path: Path) -> None:
    env = {**_file(tmp_path, FILE), "AGENTTRACE_JUDGE_MODEL": " ", "OPENAI_MODEL": "", "OTEL_SERVICE_NAME": ""}
    settings = config.resolve(environ=env)
    assert settings.judge_model == "file" and settings.service_name == "file"


def test_judge_reads_its_endpoint_from_the_config_file(tmp_path: Path) -> None:
    with StubJudgeServer() as stub:
        (tmp_path / "agenttrace.toml").write_text(
            f'[agenttrace]\njudge_model = "m-file"\njudge_base_url = "{stub.base_url}"\n'
        )
        judge = SafetyJudge()  # the conftest fixture made tmp_path the working folder
        assert judge.client.model == "m-file" and judge.client.base_url == stub.base_url
        assert judge(outputs="hello").value is True
        assert stub.requests[0]["model"] == "m-file"


def test_judge_settings_keep_their_rules(tmp_path: Path) -> None:
    local = resolve_settings(environ={"AGENTTRACE_JUDGE_MODEL": "m", "OPENAI_BASE_URL": "http://localhost:1/v1"})
    assert local.api_key == "not-needed"  # a local server gets a placeholder key
    with pytest.raises(JudgeConfigError, match="AGENTTRACE_JUDGE_MODEL"):
        resolve_settings(environ={})
    with pytest.raises(JudgeConfigError, match="API key"):
        resolve_settings(environ={"OPENAI_MODEL": "m"})
    assert resolve_settings("arg", environ={"OPENAI_MODEL": "env", "OPENAI_API_KEY": "k"}).model == "arg"


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("judge_model = 5", "judge_model"),
        ("judge_api_key = true", "judge_api_key"),
        ("service_name = 3", "service_name"),
        ('judge_modle = "m"', "judge_modle"),
    ],
)
def test_bad_values_in_the_file_are_config_errors_naming_the_setting(tmp_path: Path, toml: str, named: str) -> None:
    env = _file(tmp_path, f"[agenttrace]\n{toml}\n")
    with pytest.raises(ConfigError, match=named):
        config.resolve(environ=env)
    # a judge built on the same file says the same, as a JudgeConfigError (also a ConfigError)
    with pytest.raises(JudgeConfigError, match=named):
        resolve_settings(environ=env)


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="service_name must be non-empty text"):
        config.resolve({"service_name": "  "}, environ={})


def test_a_judge_base_url_without_a_scheme_fails_the_judge_not_tracing() -> None:
    env = {"OPENAI_BASE_URL": "localhost:8000/v1", "OPENAI_MODEL": "m"}
    assert config.resolve(environ=env).judge_base_url == "localhost:8000/v1"  # tracing still configures
    with pytest.raises(JudgeConfigError, match="'localhost:8000/v1'"):
        resolve_settings(environ=env)


def test_the_api_key_stays_out_of_the_settings_repr() -> None:
    assert "s3cret" not in repr(config.resolve({"judge_api_key": "s3cret"}, environ={}))


# Imports config and the judges with os.environ replaced by a mapping that records every read made
# from our own packages; third-party libraries imported on the way may read what they like.
_IMPORT_PROBE = """
import os, sys
ROOTS = tuple(os.path.join(sys.argv[1], p) for p in ("agenttrace", "evaluators"))
reads = []
class Probe(dict):
    def _note(self, key):
        frame = sys._getframe(2)
        while frame.f_code.co_filename == os.__file__:  # os.getenv reads through os.environ
            frame = frame.f_back
        if frame.f_code.co_filename.startswith(ROOTS):
            reads.append((frame.f_code.co_filename, key))
    def __getitem__(self, key):
        self._note(key); return super().__getitem__(key)
    def get(self, key, default=None):
        self._note(key); return super().get(key, default)
    def __contains__(self, key):
        self._note(key); return super().__contains__(key)
os.environ = Probe(os.environ)
import agenttrace.config, evaluators.judges.settings, evaluators.judges
print(reads)
"""


def test_nothing_reads_the_environment_at_import() -> None:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, str(root)], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("text", ["-5d", "nan", "inf", "3x", ""])
def test_a_duration_that_is_not_an_age_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        config.parse_duration(text)
    assert config.parse_duration("1.5h") == 5400 and config.parse_duration("90") == 90
