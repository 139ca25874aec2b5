"""Public home of versioned datasets: `agenttrace.datasets.create(name, source)`, `load_dataset`, `list()`."""

from agenttrace.evaluation.datasets import Dataset, create, list_datasets, load_dataset

__all__ = ["Dataset", "create", "list", "list_datasets", "load_dataset"]

# `agenttrace.datasets.list()` reads as the CLI's `agenttrace datasets list`; the builtin is not
# needed in this module, and `list_datasets` is the same function under an unshadowed name.
list = list_datasets  # noqa: A001
