"""PairwiseJudge: which of two outputs serves the request better — "A", "B" or "tie".

Judges favour the first answer they read. With ``both_orders=True`` each comparison is asked twice,
the second time with the outputs swapped; a verdict that flips with the order is reported as
"tie" and flagged in the metadata (``position_consistent``). Off by default: it doubles the calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agenttrace.records import Score
from evaluators.judges.context import as_text, request_text, require
from evaluators.judges.judge import Judge, Usage

__all__ = ["PairwiseJudge"]

_SWAP = {"A": "B", "B": "A", "tie": "tie"}


class PairwiseJudge(Judge):
    """Compare two outputs for one request.

    As a scorer (``pairwise``) it compares the record's ``outputs`` (A) with
    ``expectations["baseline_output"]`` (B).
    """

    name = "pairwise"
    template = "pairwise.jinja"
    output = ["A", "B", "tie"]

    def __init__(self, *, both_orders: bool = False, **kwargs: Any) -> None:
        self.both_orders = both_orders
        super().__init__(**kwargs)

    def compare(self, inputs: Any, output_a: Any, output_b: Any) -> Score:
        """Score(value="A" | "B" | "tie") for which output serves ``inputs`` better."""
        request = require(self.name, "the inputs", request_text(inputs, None), "pass the request as inputs")
        a = as_text(require(self.name, "output_a", output_a, "pass both outputs"))
        b = as_text(require(self.name, "output_b", output_b, "pass both outputs"))
        usage = Usage()
        first = self.ask(self.render(request=request, output_a=a, output_b=b), usage)
        value, rationale = first.value, first.rationale
        if self.both_orders:
            second = self.ask(self.render(request=request, output_a=b, output_b=a), usage)
            swapped_back = _SWAP[second.value]
            consistent = swapped_back == first.value
            usage.extra["position_consistent"] = consistent
            if not consistent:
                value = "tie"
                rationale = (
                    f"The verdict changed with the order (A first: {first.value}; B first: {swapped_back}), "
                    f"so it counts as a tie. A first: {first.rationale} B first: {second.rationale}"
                )
        return Score(value, rationale, value, usage.metadata())

    def score(self, *, inputs: Any = None, outputs: Any = None, expectations: Any = None) -> Score:
        exp = expectations if isinstance(expectations, Mapping) else {}
        baseline = require(
            self.name,
            "a baseline output",
            exp.get("baseline_output"),
            'give expectations={"baseline_output": ...} to compare the outputs with',
        )
        return self.compare(inputs, outputs, baseline)
