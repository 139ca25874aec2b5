"""One-file HTML reports: an eval run (and optionally its comparison with another) to attach to CI.

The file is self-contained: CSS inline, charts as inline SVG, no script and no external resource,
so it opens the same from a CI artifact, an e-mail or a pull request, offline. It reads the store
through the same calls as `agenttrace eval show/compare` (`load_eval_run`, `compare_runs`), so the
numbers are the ones the CLI prints.
"""

from __future__ import annotations

from agenttrace.reports._eval import eval_report_html, write_eval_report

__all__ = ["eval_report_html", "write_eval_report"]
