"""predwatch logging adapter: one structured JSON record per prediction, shipped without blocking."""
from .configure import configure
from .formatter import PredictionFormatter
from .logger import PredictionLogger, TimedPrediction

__all__ = ["PredictionLogger", "PredictionFormatter", "TimedPrediction", "configure"]
