"""The agent registry: versions of an agent (code fingerprint + config + prompts), aliases, lineage.

Engines layer: it reads and writes through the store facade and stamps traces through the capture
layer's active-agent context (agenttrace.tracing.agent_context), never the other way round.
"""

from agenttrace.registry._diff import VersionDiff, diff_agent_versions
from agenttrace.registry._lineage import agent_history, compare_versions, lineage
from agenttrace.registry._loading import (
    AgentCodeChangedWarning,
    AsyncGeneratorLoadedAgent,
    AsyncLoadedAgent,
    GeneratorLoadedAgent,
    LoadedAgent,
    call_kind,
    load_agent,
    set_active_agent,
)
from agenttrace.registry._versions import (
    AgentVersion,
    delete_agent_version,
    delete_alias,
    get_agent_version,
    list_agent_versions,
    list_agents,
    register_agent,
    set_alias,
    update_agent,
)

__all__ = [
    "AgentCodeChangedWarning",
    "AgentVersion",
    "AsyncGeneratorLoadedAgent",
    "AsyncLoadedAgent",
    "GeneratorLoadedAgent",
    "LoadedAgent",
    "VersionDiff",
    "agent_history",
    "call_kind",
    "compare_versions",
    "delete_agent_version",
    "delete_alias",
    "diff_agent_versions",
    "get_agent_version",
    "lineage",
    "list_agent_versions",
    "list_agents",
    "load_agent",
    "register_agent",
    "set_active_agent",
    "set_alias",
    "update_agent",
]
