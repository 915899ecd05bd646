"""predwatch logging adapter: one structured JSON record per prediction, shipped without blocking."""
from typing import Any

from .configure import configure
from .formatter import PredictionFormatter
from .logger import PredictionLogger, TimedPrediction

__all__ = ["PredictionLogger", "PredictionFormatter", "TimedPrediction", "ElasticsearchHandler", "configure"]


def __getattr__(name: str) -> Any:
    # Lazy: services that only log to files never import the Elasticsearch client.
    if name == "ElasticsearchHandler":
        from .handler import ElasticsearchHandler

        return ElasticsearchHandler
    raise AttributeError(f"module 'logging_adapter' has no attribute {name!r}")
