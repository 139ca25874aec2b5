"""The web UI: server-rendered pages over one store, served by `agenttrace ui` and `agenttrace server`.

Pages are jinja2 templates with autoescaping on, plus a small script and stylesheet of our own
shipped as package data: no CDN, no build step, it works offline. Charts are SVG drawn on the
server (`agenttrace.reports.charts`). Every list is paged, sorted and filtered in DuckDB
(`agenttrace/store/_ui_queries.py`), so pages stay fast on a large store. See `_security` for how
untrusted trace content, forms and the auth token are handled.
"""

from __future__ import annotations

from agenttrace.ui.app import create_ui_app, include_ui, protect

__all__ = ["create_ui_app", "include_ui", "protect"]
