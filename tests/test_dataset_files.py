"""Dataset files as users write them: CSV values kept as written, BOMs, and errors naming file and line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import agenttrace
from agenttrace.errors import DatasetError


def echo(code: str) -> str:
    return code


def test_csv_values_stay_as_the_file_writes_them(tmp_path: Path) -> None:
    data = tmp_path / "codes.csv"
    data.write_text("id,inputs.code,expectations.expected_answer\nzip,02134,02134\nver,3.10,3.10\nbond,007,007\n")
    result = agenttrace.evaluate(data, echo, scorers=["exact_match"])
    table = result.tables["eval_results"]
    assert [r["code"] for r in table.inputs] == ["02134", "3.10", "007"]
    assert [e["expected_answer"] for e in table.expectations] == ["02134", "3.10", "007"]
    assert result.scorer_value("exact_match") == 1.0


def test_csv_columns_can_be_typed(tmp_path: Path) -> None:
    data = tmp_path / "typed.csv"
    data.write_text(
        'inputs.k:int,inputs.x:float,inputs.on:bool,inputs.opts:json,inputs.s\n3,0.5,yes,"{""a"": [1]}",007\n'
    )
    seen = []

    def fn(k, x, on, opts, s):  # noqa: ANN001, ANN202
        seen.append((k, x, on, opts, s))
        return "ok"

    agenttrace.evaluate(data, fn, scorers=["json_valid"])
    assert seen == [(3, 0.5, True, {"a": [1]}, "007")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"empty.csv: the CSV file is empty"),
        ("inputs.q,expectations.expected_answer\na,b\nc,d,e\n", r"empty.csv:3: 3 fields, the header has 2"),
        ('inputs.q\n"unclosed\n', r"empty.csv:\d+: not valid CSV"),
        ("inputs\n{not json\n", r"empty.csv:2: column 'inputs' holds text that is not JSON"),
        ("inputs.k:int\nseven\n", r"empty.csv:2: column 'inputs.k' is typed int but holds 'seven'"),
        ("inputs.k:date\n1\n", r"empty.csv:1: column 'inputs.k:date' asks for type 'date'"),
        ("expectations.expected_answer\nParis\n", r"empty.csv:2: record has no 'inputs'"),
    ],
)
def test_a_malformed_csv_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    data = tmp_path / "empty.csv"
    data.write_text(text)
    with pytest.raises(DatasetError, match=message):
        agenttrace.evaluate(data, echo, scorers=["exact_match"])


def test_a_malformed_csv_is_one_line_in_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("inputs.code,expectations.expected_answer\n1,2\n3,4,5\n")
    agent = tmp_path / "agent.py"
    agent.write_text("def echo(code):\n    return code\n")
    out = subprocess.run(
        [sys.executable, "-m", "agenttrace", "eval", "run", "--data", str(data), "--agent", f"{agent}:echo",
         "--scorer", "exact_match", "--store", str(tmp_path / "s.duckdb")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (
        out.returncode == 1
        and out.stderr.strip() == f"error: {data}:3: 3 fields, the header has 2; quote cells that contain commas"
    )


def test_jsonl_and_csv_with_a_utf8_bom_are_read(tmp_path: Path) -> None:
    jsonl = tmp_path / "bom.jsonl"
    record = {"id": "a", "inputs": {"code": "x"}, "expectations": {"expected_answer": "x"}}
    jsonl.write_bytes(b"\xef\xbb\xbf" + json.dumps(record).encode() + b"\n")
    assert agenttrace.evaluate(jsonl, echo, scorers=["exact_match"]).scorer_value("exact_match") == 1.0
    csv = tmp_path / "bom.csv"
    csv.write_bytes(b"\xef\xbb\xbfinputs.code,expectations.expected_answer\nx,x\n")
    assert agenttrace.evaluate(csv, echo, scorers=["exact_match"]).scorer_value("exact_match") == 1.0


def test_a_file_that_is_not_utf8_is_a_dataset_error(tmp_path: Path) -> None:
    data = tmp_path / "latin.jsonl"
    data.write_bytes(b'{"inputs": {"code": "caf\xe9"}}\n')
    with pytest.raises(DatasetError, match="latin.jsonl: not UTF-8 text"):
        agenttrace.evaluate(data, echo, scorers=["exact_match"])
