"""Online monitoring: scorers run on a sample of an agent's live traces, and quality over time.

Engines layer. Monitors and their claims live in the store (store/_monitors.py holds the SQL);
scorers and judges are built by the evaluation engine, so judges share its cache, limiter and
retries; results are assessments on the traces, so every view of scores shows them.
"""

from agenttrace.monitoring._alerts import Breach, check_alerts, post_webhook
from agenttrace.monitoring._monitors import Alert, add_monitor, in_sample, list_monitors, parse_alert, remove_monitor
from agenttrace.monitoring._quality import parse_window, quality_over_time
from agenttrace.monitoring._runner import MonitorRunReport, run_monitors

__all__ = [
    "Alert",
    "Breach",
    "MonitorRunReport",
    "add_monitor",
    "check_alerts",
    "in_sample",
    "list_monitors",
    "parse_alert",
    "parse_window",
    "post_webhook",
    "quality_over_time",
    "remove_monitor",
    "run_monitors",
]
