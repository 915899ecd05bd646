"""Training tables from files: CSV, Parquet, or JSONL (prediction records or plain objects)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from logging_adapter import contract as c
from logging_adapter.fieldmap import FieldMap, contract_records

from .jsonl import read_jsonl


def load_table(path: str | Path, fields: FieldMap | None = None) -> pd.DataFrame:
    """CSV, Parquet, or JSONL (prediction records or plain objects) as a table of columns; ``fields`` reads
    JSONL prediction records in a service's own layout (OpenTelemetry log records are recognised anyway)."""
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    if suffix.endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz")):
        return _records_table(path, fields)
    return pd.read_csv(path, low_memory=False)


MODELS = "predwatch_models"  # DataFrame.attrs key: records per model name, when the rows were prediction records
LEFT_OUT = "predwatch_left_out"  # DataFrame.attrs key: outcome and profile records left out, by kind


def _records_table(path: Path, fields: FieldMap | None = None) -> pd.DataFrame:
    """Prediction records as their columns (plain objects as their flattened keys); ``attrs[MODELS]``
    counts the records per model, so a caller can tell records of another model from the one it means."""
    rows, models, left_out = [], Counter(), Counter()
    for _, _, item in read_jsonl([path]):
        if not isinstance(item, dict):
            continue
        converted = contract_records(item, fields)
        if converted is not None:  # another layout: only what it reads as records is training data
            for record in converted:
                try:
                    if isinstance(record, c.RecordError):
                        raise record
                    read = c.read_record(record)
                except c.RecordError:
                    left_out["unreadable"] += 1
                    continue
                _add(read, rows, models, left_out)
            continue
        try:
            record = c.read_record(item)
        except c.RecordError:
            rows.append(c.flatten(item))
            continue
        _add(record, rows, models, left_out)
    if not rows:
        raise ValueError(f"{path}: no JSON object lines" + (f" besides {dict(left_out)} records" if left_out else ""))
    table = pd.DataFrame.from_records(rows)
    table.attrs[MODELS] = dict(models)
    table.attrs[LEFT_OUT] = dict(left_out)
    return table


def _add(record: c.Prediction | c.Outcome | c.ProfileRecord, rows: list, models: Counter, left_out: Counter) -> None:
    if not isinstance(record, c.Prediction):  # an outcome or profile record is no training row
        left_out["outcome" if isinstance(record, c.Outcome) else "profile"] += 1
        return
    models[record.model] += 1
    rows.append(record.columns())
