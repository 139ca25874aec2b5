"""Scorers for agenttrace evaluations: heuristic ones (`evaluators.heuristic`) and LLM judges
(`evaluators.judges`). They depend only on agenttrace's scorer contract and records, so they can
be used, and replaced, independently of the engine. Built-ins are registered by name through the
`agenttrace.scorers` entry-point group, the same way third-party scorers are.
"""
