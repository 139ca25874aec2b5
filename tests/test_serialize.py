"""Any Python object becomes JSON without raising and without being mutated."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
import json
from decimal import Decimal

import numpy as np
import pandas as pd
import pydantic
import pytest

from agenttrace.tracing.serialize import REDACTED, TRUNCATED_KEY, Serializer


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Model(pydantic.BaseModel):
    name: str
    when: dt.date


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _gen():
    yield 1


cyclic: list = [1]
cyclic.append(cyclic)
self_dict: dict = {"a": 1}
self_dict["me"] = self_dict

CASES = [
    ("dataclass", Point(1, 2), {"x": 1, "y": 2}),
    ("pydantic", Model(name="n", when=dt.date(2026, 1, 2)), {"name": "n", "when": "2026-01-02"}),
    ("enum", Color.RED, "red"),
    ("datetime", dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC), "2026-11-01T12:00:00+00:00"),
    ("decimal", Decimal("1.10"), "1.10"),
    ("bytes utf8", b"hi", "hi"),
    ("bytes binary", b"\xff\x00", "base64:/wA="),
    ("set", {3, 1, 2}, [1, 2, 3]),
    ("tuple", (1, "a"), [1, "a"]),
    ("numpy array", np.arange(3), [0, 1, 2]),
    ("numpy scalar", np.float32(1.5), 1.5),
    ("numpy big", np.zeros(5000), {"__ndarray__": {"shape": [5000], "dtype": "float64", "size": 5000}}),
    ("generator", _gen(), "<generator not consumed>"),
    ("cycle list", cyclic, [1, "<cycle>"]),
    ("cycle dict", self_dict, {"a": 1, "me": "<cycle>"}),
    ("bad repr", BadRepr(), "<unrepresentable BadRepr>"),
    ("non-str keys", {(1, 2): "t", 3: "i"}, {"(1, 2)": "t", "3": "i"}),
    ("nan", float("nan"), "nan"),
    ("nested odd", {"p": [Point(0, 1)], "c": Color.RED}, {"p": [{"x": 0, "y": 1}], "c": "red"}),
]


@pytest.mark.parametrize(("label", "value", "expected"), CASES, ids=[c[0] for c in CASES])
def test_odd_objects_serialize(label: str, value: object, expected: object) -> None:
    assert json.loads(Serializer(65536).to_json(value)) == expected


def test_pandas_is_summarised_not_dumped() -> None:
    frame = pd.DataFrame({"a": range(100), "b": ["x"] * 100})
    out = json.loads(Serializer(65536).to_json(frame))
    assert out["type"] == "DataFrame" and out["shape"] == [100, 2] and out["columns"] == ["a", "b"]
    assert len(out["head"]) == 5
    series = json.loads(Serializer(65536).to_json(pd.Series([1, 2], name="s")))
    assert series["shape"] == [2] and series["name"] == "s"


def test_generator_is_not_consumed() -> None:
    gen = (i for i in range(3))
    Serializer(1024).to_json({"g": gen})
    assert list(gen) == [0, 1, 2]


def test_nothing_is_mutated() -> None:
    value = {"points": [Point(1, 2)], "s": {1, 2}, "nested": {"cycle": cyclic}}
    before = copy.deepcopy(value)
    Serializer(65536).to_json(value)
    assert value["points"] == before["points"] and value["s"] == before["s"]


def test_large_payload_is_truncated_with_marker_and_size() -> None:
    text = Serializer(1000).to_json({"blob": "x" * 5000})
    out = json.loads(text)
    assert out[TRUNCATED_KEY] is True and out["original_bytes"] == len('{"blob":""}') + 5000
    assert len(text.encode()) <= 1000 and out["preview"].startswith('{"blob":"xxx')


def test_redaction_by_key_and_by_callable() -> None:
    by_key = Serializer(65536, redact=["api_key", "Password"])
    out = json.loads(by_key.to_json({"api_key": "sk-1", "user": {"password": "p", "name": "n"}}))
    assert out == {"api_key": REDACTED, "user": {"password": REDACTED, "name": "n"}}
    by_fn = Serializer(65536, redact=lambda v: "hidden")
    assert json.loads(by_fn.to_json({"a": 1})) == "hidden"
    failing = Serializer(65536, redact=lambda v: 1 / 0)
    assert "redaction failed" in json.loads(failing.to_json({"secret": 1}))
