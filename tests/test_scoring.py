"""The scorer contract: what @scorer accepts and what a scorer may return."""

from __future__ import annotations

import numpy as np
import pytest

from agenttrace.records import Score
from agenttrace.scoring import normalize_result, scorer


def test_scorer_receives_only_what_it_names_or_everything_with_kwargs() -> None:
    @scorer
    def named(outputs, expectations):
        return outputs == expectations["answer"]

    @scorer
    def everything(outputs, **rest):
        return sorted(rest)

    args = {"inputs": {"q": 1}, "outputs": "a", "expectations": {"answer": "a"}, "trace": None}
    assert named(**args) is True
    assert everything(**args) == ["expectations", "inputs", "trace"]
    with pytest.raises(TypeError, match=r"asks for \['reference'\]; a scorer may only ask for inputs"):
        scorer(lambda outputs, reference: 1)


@pytest.mark.parametrize(
    ("result", "values"),
    [
        (True, [True]),
        (0.5, [0.5]),
        ("good", ["good"]),
        (np.bool_(True), [True]),
        (np.float64(0.25), [0.25]),
        (Score(1, rationale="r"), [1]),
        ([Score(True, name="a"), Score(2, name="b")], [True, 2]),
    ],
)
def test_results_normalise_to_scores(result, values) -> None:
    scores = normalize_result("s", result)
    assert [s.value for s in scores] == values
    assert all(type(s.value) in (bool, float, int, str) for s in scores)


@pytest.mark.parametrize(
    ("result", "message"), [(None, "returned None"), ([], "empty list"), ({"a": 1}, "returned dict")]
)
def test_unusable_results_are_errors(result, message) -> None:
    with pytest.raises(TypeError, match=message):
        normalize_result("s", result)
