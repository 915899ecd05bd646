"""Training tables from files: CSV, Parquet, or JSONL (prediction records or plain objects)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from logging_adapter import contract as c

from .local import read_jsonl


def load_table(path: str | Path) -> pd.DataFrame:
    """CSV, Parquet, or JSONL (prediction records or plain objects) as a table of columns."""
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    if suffix.endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz")):
        return _records_table(path)
    return pd.read_csv(path, low_memory=False)


def _records_table(path: Path) -> pd.DataFrame:
    rows = []
    for _, item in read_jsonl([path]):
        if isinstance(item, dict):
            rows.append(_columns_of(item))
    if not rows:
        raise ValueError(f"{path}: no JSON object lines")
    return pd.DataFrame.from_records(rows)


def _columns_of(obj: dict[str, Any]) -> dict[str, Any]:
    """A prediction record's columns, or a plain object's flattened keys."""
    try:
        return c.read_prediction(obj).columns()
    except c.RecordError:
        return c.flatten(obj)
