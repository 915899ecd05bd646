"""Baselines: what each feature looked like in training, in the terms the checks need.

A baseline is a versioned JSON document. Per column (input feature or prediction
output) it keeps the kind, the null rate, and:

- numeric: decile bin edges with training counts (window profiles count into the
  same bins), min/max, mean/std and 101 quantiles;
- categorical and boolean: category counts and the expected share of unseen values
  (Good-Turing: singletons / rows, plus the mass of categories not stored);
- text: the model's own vocabulary and the expected out-of-vocabulary rate, measured
  on a held-out fifth of the training text (a vocabulary has no OOV on its own data);
- embedding (arrays of 8 to 1,024 numbers of one length): the length and a projected
  reference sample (:class:`analyzers.core.joint.EmbeddingReference`).

Across the inputs, ``joint`` keeps training's pairwise associations
(:class:`analyzers.core.joint.JointReference`), bounded whatever the training size.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from logging_adapter import contract as c

from .groups import GroupReference, build_group_reference, is_record_field
from .joint import EmbeddingReference, JointReference, embedding_length, fit_embedding_reference, fit_joint_reference
from .quality import QualityReference, build_quality, infer_task
from .values import category_of, is_vector_of, tokenize

SCHEMA_VERSION = 1
KINDS = ("numeric", "categorical", "boolean", "text", "embedding")
NUMERIC_BINS = 10
MAX_CATEGORIES = 10_000
MAX_VOCABULARY = 50_000
HOLDOUT_EVERY = 5


@dataclass
class ColumnBaseline:
    """One column of the training data, summarised for the checks."""

    name: str
    kind: str
    role: str = "input"  # "input" or "prediction"
    rows: int = 0
    nulls: int = 0
    mismatched: int = 0
    # numeric
    edges: list[float] | None = field(default=None, repr=False)
    bin_counts: list[int] | None = field(default=None, repr=False)
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: list[float] | None = field(default=None, repr=False)
    # categorical, boolean
    categories: dict[str, int] | None = field(default=None, repr=False)
    other_count: int = 0
    singletons: int = 0
    # a reference that mixes part of training (the same hours of day): all of training's counts, which say
    # which categories are too rare to judge on their own (``categories`` then holds the mixture's)
    training_categories: dict[str, int] | None = field(default=None, repr=False)
    # text
    vocabulary: list[str] | None = field(default=None, repr=False)
    expected_oov_rate: float | None = None
    tokens: int = 0
    # embedding: its length and the reference (``EmbeddingReference.to_dict()``, read once by ``embedding_reference``)
    dim: int | None = None
    embedding: dict[str, Any] | None = field(default=None, repr=False)

    def embedding_reference(self) -> EmbeddingReference | None:
        return _parsed_once(self, "_embedding", self.embedding, EmbeddingReference.from_dict)

    @property
    def field(self) -> str:
        """Full field path in the prediction records."""
        return c.column_field(self.name)

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def values(self) -> int:
        """Non-null values of the expected type."""
        return self.rows - self.nulls - self.mismatched

    @property
    def expected_unseen_rate(self) -> float:
        """Share of values a new sample is expected to show that the baseline does not list."""
        n = self.values
        return (self.singletons + self.other_count) / n if n else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Baseline:
    """The baseline of one model version."""

    model: str
    version: str | None
    rows: int
    columns: dict[str, ColumnBaseline]
    created: str = field(default_factory=lambda: c.utc_iso(datetime.now(timezone.utc)))
    source: str | None = None
    schema_version: int = SCHEMA_VERSION
    # The training traffic of each UTC hour of day (``--time-column``): {"hours": {"0": slice, ...},
    # "slices": [{"rows": n, "columns": {name: {"nulls": k, "bins" | "categories": ...}}}], "hourly": [each hour's
    # own slice]}; thin hours are merged with their neighbours in "slices". None: one reference for every hour.
    time_slices: dict[str, Any] | None = field(default=None, repr=False)
    # The model's quality on held-out data with actual outcomes (``--actual``), for quality_drop.
    quality: QualityReference | None = field(default=None, repr=False)
    # Latency histogram of the reference traffic (the recent past; training data has none), for latency_regression.
    latency: dict[str, int] | None = field(default=None, repr=False)
    # The groups quality and fairness are judged per (analyzers.core.groups): fields, and their reference.
    groups: GroupReference | None = field(default=None, repr=False)
    # Training's pairwise associations between the inputs (``JointReference.to_dict()``), for multivariate_shift.
    joint: dict[str, Any] | None = field(default=None, repr=False)

    def joint_reference(self) -> JointReference | None:
        return _parsed_once(self, "_joint", self.joint, JointReference.from_dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "predwatch.baseline",
            "schema_version": self.schema_version,
            "model": self.model,
            "version": self.version,
            "created": self.created,
            "source": self.source,
            "rows": self.rows,
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
            **({"time_slices": self.time_slices} if self.time_slices else {}),
            **({"quality": self.quality.to_dict()} if self.quality else {}),
            **({"groups": self.groups.to_dict()} if self.groups else {}),
            **({"joint": self.joint} if self.joint else {}),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Baseline":
        version = doc.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"baseline schema version {version!r} is not supported (expected {SCHEMA_VERSION})")
        columns = {name: ColumnBaseline(**col) for name, col in doc["columns"].items()}
        return cls(model=doc["model"], version=doc.get("version"), rows=doc["rows"], columns=columns,
                   created=doc.get("created", ""), source=doc.get("source"), schema_version=version,
                   time_slices=doc.get("time_slices"),
                   quality=QualityReference.from_dict(doc["quality"]) if doc.get("quality") else None,
                   groups=GroupReference.from_dict(doc["groups"]) if doc.get("groups") else None,
                   joint=doc.get("joint"))

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2))

    @classmethod
    def load(cls, path: str | Path) -> "Baseline":
        try:
            doc = orjson.loads(Path(path).read_bytes())
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}: not a JSON baseline ({exc})") from None
        if not isinstance(doc, dict) or doc.get("kind") != "predwatch.baseline":
            raise ValueError(f"{path}: not a predwatch baseline document")
        return cls.from_dict(doc)


def _parsed_once(owner: Any, name: str, doc: dict[str, Any] | None, parse: Callable[[dict[str, Any]], Any]) -> Any:
    """``doc`` (a reference as the baseline file keeps it) parsed the first time it is asked for, then kept on
    ``owner`` beside its fields (never saved; a copy made by ``dataclasses.replace`` parses again)."""
    if doc is None:
        return None
    if owner.__dict__.get(name) is None:
        owner.__dict__[name] = parse(doc)
    return owner.__dict__[name]


# -- building ----------------------------------------------------------------------------

def build_baseline(
    table: pd.DataFrame,
    *,
    model: str,
    version: str | None = None,
    kinds: dict[str, str] | None = None,
    predictions: Sequence[str] = (),
    source: str | None = None,
    time_column: str | None = None,
    actual: str | None = None,
    task: str | None = None,
    threshold: float | None = None,
    segments: Sequence[str] = (),
    sensitive: Sequence[str] = (),
) -> Baseline:
    """Summarise a training table, one column per feature.

    Parameters:
        table: one row per training example; each column a feature (dotted names for nesting).
        kinds: column -> kind overrides; others are inferred (:func:`infer_kind`).
        predictions: columns holding model outputs. One becomes ``prediction``,
            several become ``prediction.<column>``; columns already named
            ``prediction``/``prediction.*`` (from prediction records) are outputs too.
        time_column: each row's timestamp; the baseline then also keeps the traffic of each UTC hour
            of day (:func:`hour_slices`), so that a night window is compared with the night.
        actual: the actual outcome of each row (held-out data with the model's outputs): the baseline then
            keeps the model's reference quality (:func:`analyzers.core.quality.build_quality`) for ``task``
            (inferred when None) at ``threshold`` (binary scores; default 0.5).
        segments, sensitive: fields whose values group records (``--segment``, ``--sensitive``): quality is
            judged per group, and fairness between the values of each sensitive field
            (:mod:`analyzers.core.groups`). Fields named ``labels.*``, ``service.*`` or ``host.*`` are record
            fields, not model inputs: they are kept for grouping only.
    """
    kinds = dict(kinds or {})
    stamps = None
    if time_column is not None:
        if time_column not in table.columns:
            raise ValueError(f"time column {time_column!r} is not in the data")
        stamps = pd.to_datetime(table[time_column], utc=True, errors="coerce", format="mixed")
        if stamps.notna().sum() == 0:
            raise ValueError(f"time column {time_column!r} holds no readable timestamps")
        table = table.drop(columns=[time_column])
    quality = predicted = outcomes = None
    for name in (*segments, *sensitive):
        if name not in table.columns and not (is_record_field(name) and name in segments):
            raise ValueError(f"group field {name!r} is not in the data")  # a record field has no reference then
    grouping = table
    table = table.drop(columns=[n for n in dict.fromkeys((*segments, *sensitive))
                                if is_record_field(n) and n in table.columns])
    if actual is not None:
        if actual not in table.columns:
            raise ValueError(f"actual column {actual!r} is not in the data")
        days = None if stamps is None else stamps.dt.floor("D")  # the variation between days, too
        quality, predicted = _quality(table, list(predictions), actual, task, threshold, days)
        outcomes = table[actual]
        table = table.drop(columns=[actual])
    renamed: dict[str, str] = {}
    for col in predictions:
        if col not in table.columns:
            raise ValueError(f"prediction column {col!r} is not in the data (columns: {', '.join(map(str, table.columns))})")
        renamed[col] = c.PREDICTION_COLUMN if len(predictions) == 1 else f"{c.PREDICTION_COLUMN}.{col}"
    for col in kinds:
        if col not in table.columns:
            raise ValueError(f"column {col!r} given a kind but not in the data")
    columns: dict[str, ColumnBaseline] = {}
    for col in table.columns:
        name = renamed.get(col, str(col))
        if col not in renamed and (name == c.PREDICTION_COLUMN or name.startswith(c.PREDICTION_COLUMN + ".")):
            role = "prediction"
        else:
            role = "prediction" if col in renamed else "input"
        if role == "input" and (name == c.PREDICTION_COLUMN or name.startswith(c.PREDICTION_COLUMN + ".")):
            raise ValueError(f"feature {name!r} clashes with the prediction column name; rename it")
        series = table[col]
        kind = kinds.get(col) or infer_kind(series)
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r} for {col!r}; choose from {', '.join(KINDS)}")
        columns[name] = summarise_column(name, kind, role, series)
    by_name = {renamed.get(col, str(col)): col for col in table.columns}
    fields = [name for name, col in columns.items() if col.kind in ("categorical", "boolean") and col.role == "input"]
    fields = list(dict.fromkeys((*fields, *segments, *sensitive)))
    groups = None
    if sensitive or (quality is not None and fields):
        if quality is not None and quality.task == "binary":
            outputs = predicted  # the output a binary quality reads positives from
        else:
            outputs = grouping[predictions[0]] if len(predictions) == 1 else None
        groups = build_group_reference(grouping, fields, segments=segments, sensitive=sensitive,
                                       outputs=outputs, quality=quality,
                                       predicted=predicted, actual=outcomes, threshold=threshold)
    inputs = {name: col.kind for name, col in columns.items() if col.role == "input"}
    joint = fit_joint_reference(table.rename(columns={v: k for k, v in by_name.items()})[list(inputs)], inputs)
    return Baseline(model=model, version=None if version is None else str(version), rows=len(table),
                    columns=columns, source=source,
                    time_slices=None if stamps is None else hour_slices(table, by_name, columns, stamps),
                    quality=quality, joint=joint.to_dict() if joint is not None else None, groups=groups)


def _quality(table: pd.DataFrame, predictions: list[str], actual: str, task: str | None, threshold: float | None,
             days: pd.Series | None) -> tuple[QualityReference, pd.Series]:
    """The reference quality from the model's output columns: one (a score, a label or a number), or two (the
    predicted label and its probability: the probability is the score of a binary model, and the confidence
    CBPE calibrates for a multiclass one). With it, the output column the quality is judged on."""
    if len(predictions) not in (1, 2):
        raise ValueError("--actual needs the model output it judges: one --prediction column (a score, a label or "
                         "a number), or two (the predicted label and its probability)")
    for col in predictions:
        if col not in table.columns:
            raise ValueError(f"prediction column {col!r} is not in the data")
    name = {col: c.PREDICTION_COLUMN if len(predictions) == 1 else f"{c.PREDICTION_COLUMN}.{col}" for col in predictions}
    if len(predictions) == 1:
        (col,) = predictions
        return build_quality(table[col], table[actual], task=task, threshold=threshold, column=name[col],
                             groups=days), table[col]
    numeric = [col for col in predictions if pd.api.types.is_numeric_dtype(table[col])
               and not pd.api.types.is_bool_dtype(table[col])]
    if len(numeric) != 1:
        raise ValueError("with two --prediction columns and --actual, one must be the numeric score (or the "
                         "predicted class's probability) and the other the predicted label")
    score = numeric[0]
    label = next(col for col in predictions if col != score)
    task = task or infer_task(table[actual])
    if task == "multiclass":
        return build_quality(table[label], table[actual], task=task, column=name[label], groups=days,
                             confidence=table[score], confidence_column=name[score]), table[label]
    return build_quality(table[score], table[actual], task=task, threshold=threshold, column=name[score],
                         groups=days), table[score]


HOUR_SLICE_MIN_ROWS = 500  # a slice with fewer training rows is merged with its neighbours
WEEK_SPAN = pd.Timedelta(days=14)  # training data this long also tells the hours of the week apart


def hour_slices(table: pd.DataFrame, source_of: dict[str, Any], columns: dict[str, ColumnBaseline],
                stamps: pd.Series, min_rows: int = HOUR_SLICE_MIN_ROWS) -> dict[str, Any]:
    """The training counts of each UTC hour of day (of the week, when the data spans two weeks or more)
    on the global bins and categories; neighbouring hours (around the clock) merge while a slice has
    fewer than ``min_rows`` rows. ``period`` says which: "day" (24 hours) or "week" (168, Monday 00h = 0)."""
    known = stamps.dropna()
    week = len(known) > 0 and known.max() - known.min() >= WEEK_SPAN
    period, count = ("week", 168) if week else ("day", 24)
    hours = (stamps.dt.day_of_week * 24 + stamps.dt.hour) if week else stamps.dt.hour
    groups = [[h] for h in range(count)]
    size = lambda g: int(hours.isin(g).sum())  # noqa: E731
    while len(groups) > 1 and min(map(size, groups)) < min_rows:
        i = min(range(len(groups)), key=lambda k: size(groups[k]))
        j = min(((i - 1) % len(groups), (i + 1) % len(groups)), key=lambda k: size(groups[k]))
        merged = sorted(groups[i] + groups[j])
        groups = [g for k, g in enumerate(groups) if k not in (i, j)] + [merged]
        groups.sort(key=min)
    def counts(mask: np.ndarray) -> dict[str, Any]:
        part = table[mask]
        return {"rows": int(mask.sum()), "columns": {
            name: _slice_counts(col, part[source_of[name]]) for name, col in columns.items()}}

    slices = [counts(hours.isin(group).to_numpy()) for group in groups]
    # Each hour on its own as well: a thin hour is then judged against its own neighbourhood, centred on it
    # (analyzers.core.reference), not against a merged slice whose mix may be hours away from its own.
    by_hour = hours.to_numpy()
    hourly = [counts(by_hour == h) for h in range(count)]
    return {"period": period, "hours": {str(h): i for i, g in enumerate(groups) for h in g}, "slices": slices,
            "hourly": hourly}


def _slice_counts(col: ColumnBaseline, series: pd.Series) -> dict[str, Any]:
    """One column of one time slice, counted on the column's global bins or categories."""
    nulls = _null_mask(series)
    out: dict[str, Any] = {"nulls": int(nulls.sum())}
    present = series[~nulls]
    if col.kind == "numeric" and col.edges:
        values = pd.to_numeric(present, errors="coerce").to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        out["bins"] = np.bincount(bin_index(col.edges, values), minlength=len(col.edges) + 1).tolist()
        if len(values):  # the slice's own mean and spread, named in the messages of windows judged against it
            out["mean"], out["std"] = float(values.mean()), float(values.std())
    elif col.kind in ("categorical", "boolean") and col.categories:
        counts: Counter[str] = Counter()
        for value, n in present.value_counts(sort=False).items():
            cat = category_of(value)
            if cat in col.categories:
                counts[cat] += int(n)
        out["categories"] = dict(counts)
    return out


def infer_kind(series: pd.Series) -> str:
    """numeric, boolean, categorical, or text (strings of several words, mostly distinct)."""
    values = series.dropna()
    if values.dtype == object and len(values) and embedding_length(values) is not None:
        return "embedding"
    if pd.api.types.is_bool_dtype(series) or (len(values) and values.map(type).eq(bool).all()):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    numeric = pd.to_numeric(values, errors="coerce") if values.map(type).isin([int, float]).any() else None
    if numeric is not None and numeric.notna().mean() >= 0.95:
        return "numeric"
    strings = values[values.map(type).eq(str)]
    if len(strings) == 0:
        return "categorical"
    sample = strings.iloc[:: max(1, len(strings) // 5000)]
    words = sample.map(lambda s: len(s.split())).mean()
    distinct = sample.nunique() / len(sample)
    return "text" if words >= 3 and distinct > 0.5 else "categorical"


def summarise_column(name: str, kind: str, role: str, series: pd.Series) -> ColumnBaseline:
    col = ColumnBaseline(name=name, kind=kind, role=role, rows=len(series))
    if kind == "numeric":
        _numeric(col, series)
    elif kind == "text":
        _text(col, series)
    elif kind == "embedding":
        _embedding(col, series)
    else:
        _categorical(col, series)
    return col


def _null_mask(series: pd.Series) -> pd.Series:
    return series.isna()


def _numeric(col: ColumnBaseline, series: pd.Series) -> None:
    nulls = _null_mask(series)
    col.nulls = int(nulls.sum())
    present = series[~nulls]
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
        values = present.to_numpy(dtype=float)
    else:
        ok = present.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
        col.mismatched = int((~ok).sum())
        values = present[ok].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        col.edges, col.bin_counts = [], [0]  # never a value: no bins, nothing to compare
        return
    col.edges = numeric_edges(values)
    col.bin_counts = np.bincount(bin_index(col.edges, values), minlength=len(col.edges) + 1).tolist()
    col.min, col.max = float(values.min()), float(values.max())
    col.mean, col.std = float(values.mean()), float(values.std())
    col.quantiles = np.quantile(values, np.linspace(0, 1, 101)).tolist()


def numeric_edges(values: np.ndarray, bins: int = NUMERIC_BINS) -> list[float]:
    """Quantile bin edges ``e0 < ... < ek``, the last just above the maximum.

    Bins are ``[e_i, e_i+1)``, plus two tails: below ``e0`` (the training minimum)
    and at or above ``ek`` (above the training maximum), which is what
    Elasticsearch ``range`` aggregations count with ``from``/``to``.
    """
    edges = [float(e) for e in np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))]
    top = float(np.nextafter(edges[-1], math.inf))
    if len(edges) == 1:
        edges.append(top)  # a constant: one bin holding the value
    else:
        edges[-1] = top
    return edges


def bin_index(edges: Sequence[float], values: np.ndarray) -> np.ndarray:
    """Bin of each value: 0 below the edges, ``len(edges)`` at or above the last edge."""
    return np.searchsorted(np.asarray(edges), values, side="right")


def _categorical(col: ColumnBaseline, series: pd.Series) -> None:
    nulls = _null_mask(series)
    col.nulls = int(nulls.sum())
    counts: Counter[str] = Counter()
    for value, n in series[~nulls].value_counts(sort=False).items():
        cat = category_of(value)
        if cat is None or (col.kind == "boolean" and not isinstance(value, (bool, np.bool_))):
            col.mismatched += int(n)
        else:
            counts[cat] += int(n)
    kept = dict(counts.most_common(MAX_CATEGORIES))
    col.categories = kept
    col.other_count = sum(counts.values()) - sum(kept.values())
    col.singletons = sum(1 for n in counts.values() if n == 1)


def _text(col: ColumnBaseline, series: pd.Series) -> None:
    nulls = _null_mask(series)
    col.nulls = int(nulls.sum())
    present = series[~nulls]
    is_str = present.map(type).eq(str)
    col.mismatched = int((~is_str).sum())
    texts = present[is_str].tolist()
    tokenized = [tokenize(t) for t in texts]
    col.tokens = sum(map(len, tokenized))
    held_out = tokenized[::HOLDOUT_EVERY]
    train = [toks for i, toks in enumerate(tokenized) if i % HOLDOUT_EVERY]
    train_vocab = vocabulary(train)
    held_tokens = sum(map(len, held_out))
    oov = sum(1 for tok in chain.from_iterable(held_out) if tok not in train_vocab)
    col.expected_oov_rate = oov / held_tokens if held_tokens else 0.0
    col.vocabulary = sorted(vocabulary(tokenized))


def _embedding(col: ColumnBaseline, series: pd.Series) -> None:
    present = series[series.map(lambda v: v is not None and not (isinstance(v, float) and math.isnan(v)))]
    col.nulls = len(series) - len(present)
    col.dim = embedding_length(present)
    if col.dim is None:
        raise ValueError(f"{col.name!r} was given the kind embedding but holds no arrays of 8 to 1,024 numbers "
                         "of one length")
    fits = present.map(lambda v: is_vector_of(v, col.dim))
    col.mismatched = int((~fits).sum())
    reference = fit_embedding_reference(np.asarray(present[fits].tolist(), dtype=float))
    col.embedding = reference.to_dict() if reference is not None else None


def vocabulary(tokenized: Iterable[list[str]], limit: int = MAX_VOCABULARY) -> set[str]:
    counts = Counter(chain.from_iterable(tokenized))
    return {tok for tok, _ in counts.most_common(limit)}
