"""CI runs exactly the test command the README gives, and that command includes the static checks."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"\*\*Run the tests\*\*.*?```bash\n(.+?)\n```", readme, re.S)
    assert found, "the README has no 'Run the tests' command block"
    return found.group(1).strip()


def _ci_commands() -> list[str]:
    """The lines of .ci/run that do the work (not the shebang, comments or shell set-up)."""
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "set ", "cd "))]


def test_ci_runs_the_readme_test_command() -> None:
    assert _ci_commands() == [_readme_command()]


def test_the_command_installs_then_checks_then_tests() -> None:
    steps = [step.strip() for step in _readme_command().split("&&")]
    assert steps[0] == "bash .ci/browser"  # the browser the UI tests drive (Debian's chromium)
    assert steps[2] == '.venv/bin/pip install -q -e ".[dev]"'
    assert steps[3:] == [
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/mypy",  # packages and settings in pyproject's [tool.mypy]
        ".venv/bin/python -m pytest -n 2 --dist loadfile",  # two workers, one test file per worker at a time
    ]
