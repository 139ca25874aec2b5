"""Public home of versioned datasets: `agenttrace.datasets.create(name, source)` and `load_dataset`."""

from agenttrace.evaluation.datasets import Dataset, create, load_dataset

__all__ = ["Dataset", "create", "load_dataset"]
