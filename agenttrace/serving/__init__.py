"""`agenttrace serve`: a registered agent version as a REST endpoint where every request is a trace.

Surface layer: the registry resolves and loads the version, tracing records each request, and
this package turns requests into calls and results (or errors) into HTTP answers.
"""

from agenttrace.serving._agent import AgentHolder, BadRequest, ServedAgent
from agenttrace.serving.app import DEFAULT_TIMEOUT_S, create_serving_app
from agenttrace.serving.run import serve_agent

__all__ = ["DEFAULT_TIMEOUT_S", "AgentHolder", "BadRequest", "ServedAgent", "create_serving_app", "serve_agent"]
