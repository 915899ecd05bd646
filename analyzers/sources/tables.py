"""Training tables from files: CSV, Parquet, or JSONL (prediction records or plain objects)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from logging_adapter import contract as c

from .jsonl import read_jsonl


def load_table(path: str | Path) -> pd.DataFrame:
    """CSV, Parquet, or JSONL (prediction records or plain objects) as a table of columns."""
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    if suffix.endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz")):
        return _records_table(path)
    return pd.read_csv(path, low_memory=False)


MODELS = "predwatch_models"  # DataFrame.attrs key: records per model name, when the rows were prediction records
LEFT_OUT = "predwatch_left_out"  # DataFrame.attrs key: outcome and profile records left out, by kind


def _records_table(path: Path) -> pd.DataFrame:
    """Prediction records as their columns (plain objects as their flattened keys); ``attrs[MODELS]``
    counts the records per model, so a caller can tell records of another model from the one it means."""
    rows, models, left_out = [], Counter(), Counter()
    for _, _, item in read_jsonl([path]):
        if not isinstance(item, dict):
            continue
        try:
            record = c.read_record(item)
        except c.RecordError:
            rows.append(c.flatten(item))
            continue
        if not isinstance(record, c.Prediction):  # an outcome or profile record is no training row
            left_out["outcome" if isinstance(record, c.Outcome) else "profile"] += 1
            continue
        models[record.model] += 1
        rows.append(record.columns())
    if not rows:
        raise ValueError(f"{path}: no JSON object lines" + (f" besides {dict(left_out)} records" if left_out else ""))
    table = pd.DataFrame.from_records(rows)
    table.attrs[MODELS] = dict(models)
    table.attrs[LEFT_OUT] = dict(left_out)
    return table
