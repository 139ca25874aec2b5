"""The evaluation engine: datasets, evaluate(), scorer resolution, summaries and comparisons."""
