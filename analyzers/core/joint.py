"""Joint shifts and embeddings: what one feature at a time cannot see.

Pure statistics (numpy, pandas, scipy.special; no I/O). Three parts:

- :class:`RowSample`: a bounded, mergeable, deterministic sample of records (bottom-k by a 64-bit hash of a key),
  what a window, an in-process profile or a shard contributes to the joint checks;
- ``multivariate_shift``: have the inputs stopped moving together as they did in training? The pairwise
  association of every two inputs (Gaussian rank correlation of numerics, point-biserial / phi correlation of
  category and null indicators) in the window against training's, pair by pair, with known sampling variance;
- ``embedding_shift``: has the distribution of an embedding (an array of 8..1,024 numbers) moved? A kernel
  two-sample test (cross-fitted MMD witness) on a PCA projection of the vectors.

Both return a :class:`JointMeasurement`; the caller decides (effect against its levels, p-value in the window's
false-discovery control) like for every other check.
"""
from __future__ import annotations

import base64
import hashlib
import heapq
import json
import math
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special as _special

from .registry import Measured, Measurement, window_check
from .values import category_of, is_number, is_vector_of

# -- the measurement -----------------------------------------------------------------------------------------------

# Default (warning, critical) levels, in the units of each check's value.
# multivariate_shift: the largest change of a pairwise correlation between two inputs (correlation units: 0.2 is
# 0.8 -> 0.6, or a segment's mean moving a fifth of a standard deviation's worth of correlation; 0.4 is a
# relation halved or more). embedding_shift: the share of window vectors that lie where training's vectors rarely do
# (beyond what 5% of training's do, rescaled to 0..1): 0.05 is one vector in twenty from somewhere new (a new
# cluster of a tenth of the traffic scores about 0.1), 0.2 one in five.
DEFAULT_LEVELS: dict[str, tuple[float, float]] = {
    "multivariate_shift": (0.2, 0.4),
    "embedding_shift": (0.05, 0.2),
}
MIN_ROWS = 50  # window rows (vectors) below which a joint check does not judge


@dataclass(frozen=True)
class JointMeasurement:
    """What a joint check measured. ``value`` is the effect compared with the levels.

    ``contributions``: each input's (for embeddings: each principal direction's) share of the measured change,
    summing to 1 (empty when nothing changed beyond noise).
    """

    value: float
    p_value: float | None
    n_window: int
    n_reference: int
    observed: float | None
    expected: float | None
    detail: str
    contributions: dict[str, float] = field(default_factory=dict)


# -- a bounded, mergeable sample of records ---------------------------------------------------------------------------

DEFAULT_SAMPLE_SIZE = 2000


def key_hash(key: str) -> int:
    """A 64-bit hash of a record key, the same in every process and on every machine (BLAKE2b).

    >>> key_hash("p-1") == key_hash("p-1"), 0 <= key_hash("p-1") < 2 ** 64
    (True, True)
    """
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def _json_value(value: Any) -> Any:
    """A row value as plain JSON: numpy scalars and arrays unwrapped, NaN and infinities as None."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def _canonical(row: Mapping[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


class RowSample:
    """The ``k`` records with the smallest 64-bit hash of their key among all records offered (bottom-k sampling).

    Why bottom-k by hash: the sample is a uniform random sample of the distinct keys, yet deterministic (the same
    records give the same sample), and mergeable: the sample of two windows, processes or shards merged is exactly
    the sample of their union, in any order (Cohen & Kaplan, "Summarizing data using bottom-k sketches", PODC 2007).
    The same key offered twice (a record shipped twice) counts once; if its rows differ, the smaller canonical JSON
    is kept, so that the result does not depend on the order.

    >>> a, b, both = RowSample(k=3), RowSample(k=3), RowSample(k=3)
    >>> for i in range(10):
    ...     (a if i % 2 else b).add(f"p-{i}", {"x": i})
    ...     both.add(f"p-{i}", {"x": i})
    >>> a.merge(b).rows == b.merge(a).rows == both.rows, len(both.rows), both.seen
    (True, 3, 10)
    >>> RowSample.from_dict(both.to_dict()).rows == both.rows
    True
    """

    def __init__(self, k: int = DEFAULT_SAMPLE_SIZE) -> None:
        if k < 1:
            raise ValueError(f"a row sample keeps at least one row (k={k})")
        self.k = int(k)
        self.seen = 0  # records offered (a merge adds both sides' counts)
        self._items: dict[str, tuple[int, dict[str, Any]]] = {}
        self._bound: tuple[int, str] | None = None  # the k-th smallest (hash, key) at the last pruning

    def add(self, key: str, row: Mapping[str, Any]) -> None:
        """Offer one record (its key, e.g. the prediction id, and its model inputs)."""
        self.seen += 1
        self._offer(str(key), key_hash(str(key)), row, clean=True)

    def _offer(self, key: str, h: int, row: Mapping[str, Any], clean: bool) -> None:
        if self._bound is not None and (h, key) > self._bound:
            return
        if clean:
            row = {str(name): _json_value(value) for name, value in row.items()}
        held = self._items.get(key)
        if held is not None:
            if _canonical(row) < _canonical(held[1]):
                self._items[key] = (h, dict(row))
            return
        self._items[key] = (h, dict(row))
        if len(self._items) >= 2 * self.k:
            self._prune()

    def _prune(self) -> None:
        kept = sorted(self._items.items(), key=lambda kv: (kv[1][0], kv[0]))[: self.k]
        self._items = dict(kept)
        if len(kept) == self.k:
            key, (h, _) = kept[-1]
            self._bound = (h, key)

    def add_all(self, keys: Iterable[str], rows: Iterable[Mapping[str, Any]], names: list[str]) -> None:
        """Offer many parsed records at once (their ``names`` columns, plain JSON values already): only those
        whose hash can still enter the sample have their row copied, so a large window pays a hash and an integer
        comparison for most of its records."""
        items, k = self._items, self.k
        for key, row in zip(keys, rows):
            self.seen += 1
            h = key_hash(key)
            bound = self._bound
            if bound is not None and (h > bound[0] or (h == bound[0] and key > bound[1])):
                continue
            if key in items:
                self._offer(key, h, {n: row.get(n) for n in names}, clean=False)
                continue
            items[key] = (h, {n: row.get(n) for n in names})
            if len(items) >= 2 * k:
                self._prune()
                items = self._items

    def merge(self, other: "RowSample") -> "RowSample":
        """The sample of the union of both samples' records (size: the smaller ``k``)."""
        out = RowSample(min(self.k, other.k))
        out.seen = self.seen + other.seen
        items = dict(self._items)
        for key, held in other._items.items():  # one pass and one partial sort, not an offer per row
            mine = items.get(key)
            if mine is None or _canonical(held[1]) < _canonical(mine[1]):
                items[key] = held
        kept = heapq.nsmallest(out.k, items.items(), key=lambda kv: (kv[1][0], kv[0]))
        out._items = dict(kept)
        if len(kept) == out.k:
            key, (h, _) = kept[-1]
            out._bound = (h, key)
        return out

    def _ordered(self) -> list[tuple[str, dict[str, Any]]]:
        items = sorted(self._items.items(), key=lambda kv: (kv[1][0], kv[0]))[: self.k]
        return [(key, row) for key, (_, row) in items]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The sampled rows, in hash order."""
        return [row for _, row in self._ordered()]

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self._ordered()]

    def __len__(self) -> int:
        return min(len(self._items), self.k)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, RowSample) and (self.k, self.seen) == (other.k, other.seen)
                and self._ordered() == other._ordered())

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "seen": self.seen, "rows": [{"key": key, "row": row} for key, row in self._ordered()]}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "RowSample":
        out = cls(int(doc.get("k", DEFAULT_SAMPLE_SIZE)))
        for item in doc.get("rows", []):
            out._offer(str(item["key"]), key_hash(str(item["key"])), item["row"], clean=True)
        out.seen = int(doc.get("seen", len(out)))
        return out


# -- multivariate shift: the associations between inputs -------------------------------------------------------------

REFERENCE_ROWS = 10_000  # training rows the joint reference is measured on (a seeded sample)
MIN_SHARE = 0.05  # a category (or null) rarer than this in training gets no indicator of its own
MAX_LEVELS = 8  # indicators per categorical input at most (the most frequent categories)
MAX_COLUMNS = 160  # encoded columns at most (the reference keeps a matrix of this size squared)
MIN_STATE = 10  # an indicator takes part only when both its states occur this often in the sample
MIN_PAIR = 30  # rows a pair needs in a sample (both values present) to be compared
MIN_CELL = 25  # two indicators are compared only when both being "on" is expected this often in each sample
OTHER = "(other)"
JOINT_KINDS = ("numeric", "categorical", "boolean")


@dataclass(frozen=True)
class _Column:
    """One encoded column: a numeric's value, a category's (or null's) indicator."""

    input: str
    role: str  # "value", "null", "category", "other"
    category: str | None = None
    excluded: tuple[str, ...] = ()  # "other": the listed categories

    @property
    def label(self) -> str:
        if self.role == "value":
            return self.input
        if self.role == "null":
            return f"{self.input} is null"
        if self.role == "other":
            return f"{self.input}={OTHER}"
        return f"{self.input}={self.category}"

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"input": self.input, "role": self.role}
        if self.category is not None:
            doc["category"] = self.category
        if self.excluded:
            doc["excluded"] = list(self.excluded)
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "_Column":
        return cls(doc["input"], doc["role"], doc.get("category"), tuple(doc.get("excluded", ())))


@dataclass
class JointReference:
    """Training's pairwise associations between the encoded inputs, with their sampling variance.

    ``correlation[i][j]``: correlation of encoded columns i and j on ``rows`` training rows (None: not measured);
    ``variance[i][j]``: the per-row variance of its Fisher z (so the reference's own noise enters every test);
    ``counts[i][j]``: rows with both present; ``between[i][j]``: how much the Fisher z varies between stretches of
    training beyond sampling (the day-to-day variation of real traffic; see :func:`between_stretches`). Size:
    ``len(columns)`` squared, whatever the training size.
    """

    inputs: list[str]
    kinds: dict[str, str]
    columns: list[_Column]
    correlation: np.ndarray
    variance: np.ndarray
    counts: np.ndarray
    rows: int
    seed: int = 0
    between: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **({"between": _matrix_doc(self.between)} if self.between is not None else {}),
            "kind": "predwatch.joint_reference", "method": "pairwise_rank_correlation",
            "inputs": list(self.inputs), "kinds": dict(self.kinds), "rows": self.rows, "seed": self.seed,
            "columns": [col.to_dict() for col in self.columns],
            "correlation": _matrix_doc(self.correlation), "variance": _matrix_doc(self.variance),
            "counts": self.counts.astype(int).tolist(),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "JointReference":
        return cls(inputs=list(doc["inputs"]), kinds=dict(doc["kinds"]),
                   columns=[_Column.from_dict(col) for col in doc["columns"]],
                   correlation=_matrix_from(doc["correlation"]), variance=_matrix_from(doc["variance"]),
                   counts=np.asarray(doc["counts"], dtype=float), rows=int(doc["rows"]), seed=int(doc.get("seed", 0)),
                   between=_matrix_from(doc["between"]) if doc.get("between") is not None else None)


def _matrix_doc(matrix: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if math.isfinite(v) else None for v in row] for row in matrix.tolist()]


def _matrix_from(doc: list[list[float | None]]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in doc], dtype=float).reshape(len(doc), -1)


def fit_joint_reference(frame: pd.DataFrame, kinds: Mapping[str, str], seed: int = 0) -> JointReference | None:
    """Training's associations between every two inputs, for :func:`multivariate_shift`.

    Method, and why. Each input is encoded into columns that carry no marginal information: a numeric becomes its
    normal scores (the rank of each value among the sample's own values, through the normal quantile function, so
    a numeric whose distribution moves keeps the same scores), its nulls an indicator; a categorical or boolean
    becomes an indicator per frequent category (share >= 5%, at most 8) and one for the rest, plus a null
    indicator. The reference is the correlation of every two columns of different inputs: the Gaussian rank
    correlation of two numerics (van der Waerden; Boudt, Cornelissen & Croux 2012), the point-biserial correlation
    of a category with a numeric (a segment's mean), the phi coefficient of two categories; with the per-row
    variance of each one's Fisher z by the delta method (valid for any distribution, indicators included).

    NannyML's PCA data-reconstruction error tests the same thing, the second moments of the encoded inputs, but
    folds it into one number: it dilutes one broken relation among many inputs, cannot name the pair that moved,
    and also fires on marginal shifts that the per-feature checks already judge (the same incident counted twice
    in the false-discovery control). Pair by pair, the change is measured on a scale users read (a correlation
    of 0.8 became 0.0), its sampling variance is known, and the pair is named. What it misses (as PCA does):
    dependence beyond correlation, e.g. a relation turning from y = x^2 to y = -x^2.

    Bounded: a seeded sample of at most 10,000 training rows is measured; the reference keeps matrices of at most
    160 x 160 columns. Text and embedding columns (and kinds other than numeric, categorical, boolean) are left
    out. None when fewer than two inputs are usable.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=3000)
    >>> frame = pd.DataFrame({"x": x, "y": x + rng.normal(size=3000), "seg": np.where(x > 0, "A", "B")})
    >>> ref = fit_joint_reference(frame, {"x": "numeric", "y": "numeric", "seg": "categorical"})
    >>> ref.inputs, [col.label for col in ref.columns], ref.rows
    (['x', 'y', 'seg'], ['x', 'y', 'seg=B', 'seg=A'], 3000)
    >>> round(float(ref.correlation[0, 1]), 2)
    0.71
    """
    source = {str(col): col for col in frame.columns if kinds.get(str(col)) in JOINT_KINDS}
    if len(source) < 2 or len(frame) < MIN_ROWS:
        return None
    whole = frame
    if len(frame) > REFERENCE_ROWS:
        frame = frame.sample(n=REFERENCE_ROWS, random_state=seed)
    n = len(frame)
    columns: list[_Column] = []
    inputs: list[str] = []
    for name in source:
        values = frame[source[name]].tolist()
        new = _plan_columns(name, kinds[name], values)
        if not new or len(columns) + len(new) > MAX_COLUMNS:
            continue
        columns += new
        inputs.append(name)
    if len(inputs) < 2:
        return None
    corr, var, counts = _associations(*_encode(columns, lambda name: frame[source[name]].tolist(), kinds, n))
    return JointReference(inputs=inputs, kinds={name: kinds[name] for name in inputs}, columns=columns,
                          correlation=corr, variance=var, counts=counts, rows=n, seed=seed,
                          between=between_stretches(columns, whole, source, kinds))


STRETCH_ROWS = 1000  # training rows per stretch (about a window's worth), at most
MAX_STRETCHES = 50
MIN_STRETCHES = 5


def between_stretches(columns: list[_Column], frame: pd.DataFrame, source: Mapping[str, Any],
                      kinds: Mapping[str, str]) -> np.ndarray | None:
    """The variance of each pair's Fisher z between contiguous stretches of training, beyond their sampling noise.

    Why: real traffic is not drawn row by row; a stormy day ties delays to the hour of departure more than a calm
    one, so a day's correlations differ from the season's more than sampling explains. Training tables are
    usually in time order: contiguous stretches of about a window's rows (at most 50 of them) show that variation,
    which then widens every pair's standard error (as quality's between-window spread does; the overdispersion
    of the per-feature checks is the same idea). Shuffled training shows none, and nothing changes. None when
    training has fewer than five stretches' worth of rows.
    """
    stretches = min(MAX_STRETCHES, len(frame) // STRETCH_ROWS)
    if stretches < MIN_STRETCHES:
        return None
    zs, noise = [], []
    for rows in np.array_split(np.arange(len(frame)), stretches):
        part = frame.iloc[rows[:: max(1, len(rows) // STRETCH_ROWS)]]
        corr, var, counts = _associations(*_encode(columns, lambda name: part[source[name]].tolist(), kinds,
                                                   len(part)))
        zs.append(np.arctanh(np.clip(corr, -0.999, 0.999)))
        noise.append(np.where(counts >= MIN_PAIR, var / np.maximum(counts, 1), np.nan))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pairs no stretch measured: NaN, read as no spread
        z = np.array(zs, dtype=float)
        spread = np.nanvar(z, axis=0, ddof=1) - np.nanmean(np.array(noise, dtype=float), axis=0)
    return np.nan_to_num(np.maximum(spread, 0.0))


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA or value is pd.NaT


def _numbers(values: list[Any]) -> np.ndarray:
    """Numeric values as floats; nulls, non-numbers and non-finite values as NaN."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if isinstance(v, np.generic):
            v = v.item()
        if is_number(v) and math.isfinite(v):
            out[i] = v
    return out


def _categories(kind: str, values: list[Any]) -> list[str | None]:
    out: list[str | None] = []
    for v in values:
        if isinstance(v, np.generic):
            v = v.item()
        if _is_null(v) or (kind == "boolean" and not isinstance(v, bool)):
            out.append(None)
        else:
            out.append(category_of(v))
    return out


def _plan_columns(name: str, kind: str, values: list[Any]) -> list[_Column]:
    """The encoded columns of one input, from its training values."""
    n = len(values)
    cols: list[_Column] = []
    if kind == "numeric":
        numbers = _numbers(values)
        present = numbers[np.isfinite(numbers)]
        null_share = 1 - len(present) / n
        if len(present) >= MIN_PAIR and np.unique(present).size >= 2:
            cols.append(_Column(name, "value"))
    else:
        cats = _categories(kind, values)
        counts = Counter(cat for cat in cats if cat is not None)
        null_share = 1 - sum(counts.values()) / n
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_LEVELS]
        frequent = [cat for cat, k in ranked if k / n >= MIN_SHARE]
        if kind == "boolean":
            frequent = ["true"] if counts["true"] / n >= MIN_SHARE and counts["false"] / n >= MIN_SHARE else []
        cols += [_Column(name, "category", cat) for cat in frequent]
        rest = sum(k for cat, k in counts.items() if cat not in frequent)
        if kind != "boolean" and frequent and rest / n >= MIN_SHARE:
            cols.append(_Column(name, "other", excluded=tuple(frequent)))
    if MIN_SHARE <= null_share <= 1 - MIN_SHARE:
        cols.append(_Column(name, "null"))
    return cols


def _normal_scores(numbers: np.ndarray) -> np.ndarray:
    """Van der Waerden scores of the finite values (average ranks for ties), standardised; NaN elsewhere."""
    out = np.full(len(numbers), np.nan)
    present = np.isfinite(numbers)
    m = int(present.sum())
    if m < 2:
        return out
    ranks = pd.Series(numbers[present]).rank(method="average").to_numpy()
    scores = _special.ndtri(ranks / (m + 1))
    sd = scores.std()
    if sd <= 0:
        return out
    out[present] = (scores - scores.mean()) / sd
    return out


def _encode(columns: list[_Column], values_of, kinds: Mapping[str, str],
            n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The standardised encoded columns (0 where absent) and their presence mask, both n x d, and each column's
    rarer share (an indicator's; 1 for numeric values)."""
    u = np.zeros((n, len(columns)))
    mask = np.zeros((n, len(columns)))
    rare = np.ones(len(columns))
    cache: dict[str, Any] = {}
    for j, col in enumerate(columns):
        kind = kinds[col.input]
        if col.input not in cache:
            raw = values_of(col.input)
            cache[col.input] = _numbers(raw) if kind == "numeric" else _categories(kind, raw)
        data = cache[col.input]
        if col.role == "value":
            x = _normal_scores(data)
        else:
            if kind == "numeric":
                ind = ~np.isfinite(data)
            elif col.role == "null":
                ind = np.array([cat is None for cat in data])
            elif col.role == "other":
                listed = set(col.excluded)
                ind = np.array([cat is not None and cat not in listed for cat in data])
            else:
                ind = np.array([cat == col.category for cat in data])
            ones = int(ind.sum())
            if min(ones, n - ones) < MIN_STATE:
                continue
            p = ones / n
            x = (ind - p) / math.sqrt(p * (1 - p))
            rare[j] = min(p, 1 - p)
        present = np.isfinite(x)
        u[present, j] = x[present]
        mask[present, j] = 1.0
    return u, mask, rare


def _associations(u: np.ndarray, mask: np.ndarray, rare: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise correlations of the standardised columns over the rows where both are present, the per-row
    variance of their Fisher z (delta method: for standardised u, v with correlation r, n Var(r) ->
    m22 (1 + r^2/2) - r (m31 + m13) + r^2 (m40 + m04) / 4; Var(z) = Var(r) / (1 - r^2)^2), and the row counts.
    Two indicators whose joint "on" cell is expected fewer than 10 times are not measured: the phi coefficient of
    two rare events is far from normal there (a pair of 5% events in 500 rows gave p-values 5 times too small)."""
    counts = mask.T @ mask
    counts = np.where(counts * np.outer(rare, rare) >= MIN_CELL, counts, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(counts >= MIN_PAIR, counts, np.nan)
        r = np.clip((u.T @ u) / n, -0.999, 0.999)
        u2 = u * u
        m22 = (u2.T @ u2) / n
        m31 = ((u2 * u).T @ u) / n
        m40 = ((u2 * u2).T @ mask) / n
        var_r = m22 * (1 + r * r / 2) - r * (m31 + m31.T) + r * r * (m40 + m40.T) / 4
        var_z = np.maximum(var_r, 1e-6) / (1 - r * r) ** 2
    np.fill_diagonal(r, np.nan)
    return r, var_z, counts


def _window_matrix(ref: JointReference, rows: list[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _associations(*_encode(ref.columns, lambda name: [row.get(name) for row in rows], ref.kinds, len(rows)))


def multivariate_shift(ref: JointReference, rows: list[Mapping[str, Any]]) -> JointMeasurement | None:
    """Have the inputs stopped moving together as they did in training?

    Statistic: for every two encoded columns of different inputs (see :func:`fit_joint_reference`), the window's
    correlation against training's, as the difference of Fisher z's over its standard error
    ``sqrt(v (1/n_window + 1/n_reference))``, ``v`` the per-row variance measured on training (so the finite
    reference is accounted for, and a small window's noisy fourth moments are not). p-value: the smallest two-sided
    p-value of the pairs times their number (Bonferroni; the pairs overlap, so this is conservative). Effect
    (``value``): the absolute change in correlation of the pair with the strongest evidence; ``observed`` and
    ``expected`` are that pair's correlation in the window and in training. Marginal changes (a numeric's values
    moving, a null rate rising) barely touch it: numerics enter by their ranks within each sample, and pairs are
    measured on the rows where both are present; a category's share moving changes its correlations only through
    ``sqrt(p (1 - p))``. ``contributions``: each input's share of the summed squared changes of its pairs, noise
    subtracted. Default levels: 0.2 / 0.4 (``DEFAULT_LEVELS``). None when fewer than 50 rows, or no pair can be
    compared. References: Fisher (1921), Metron 1(4); the asymptotic variance of a correlation for any
    distribution: Steiger & Hakstian (1982), Br. J. Math. Stat. Psychol. 35.

    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=4000)
    >>> train = pd.DataFrame({"x": x, "y": 0.8 * x + 0.6 * rng.normal(size=4000)})
    >>> ref = fit_joint_reference(train, {"x": "numeric", "y": "numeric"})
    >>> same = [{"x": a, "y": 0.8 * a + 0.6 * b} for a, b in rng.normal(size=(1000, 2))]
    >>> apart = [{"x": a, "y": b} for a, b in rng.normal(size=(1000, 2))]
    >>> m = multivariate_shift(ref, same)
    >>> m.value < 0.05, m.p_value > 0.01
    (True, True)
    >>> m = multivariate_shift(ref, apart)
    >>> round(m.value, 1), m.p_value < 1e-12, round(m.expected, 1), round(abs(m.observed), 1)
    (0.8, True, 0.8, 0.0)
    """
    rows = [row for row in rows if isinstance(row, Mapping)]
    if len(rows) < MIN_ROWS:
        return None
    r_w, _, n_w = _window_matrix(ref, rows)
    r_ref, v_ref, n_ref = ref.correlation, ref.variance, ref.counts
    owner = np.array([col.input for col in ref.columns])
    cross = owner[:, None] != owner[None, :]
    upper = np.triu(np.ones_like(cross), 1).astype(bool)
    ok = cross & upper & np.isfinite(r_w) & np.isfinite(r_ref) & np.isfinite(v_ref) & (n_w >= MIN_PAIR)
    pairs = np.argwhere(ok)
    if len(pairs) == 0:
        return None
    i, j = pairs[:, 0], pairs[:, 1]
    between = ref.between[i, j] if ref.between is not None else 0.0
    se = np.sqrt(v_ref[i, j] * (1 / n_w[i, j] + 1 / n_ref[i, j]) + between)
    z = (np.arctanh(r_w[i, j]) - np.arctanh(r_ref[i, j])) / se
    p_pairs = 2 * _special.ndtr(-np.abs(z))
    p_value = float(min(1.0, p_pairs.min() * len(pairs)))
    change = np.abs(r_w[i, j] - r_ref[i, j])
    top = int(np.argmax(np.abs(z)))
    # noise of the change in correlation (delta method back from the z scale), subtracted from the squared change
    se_r = se * (1 - r_ref[i, j] ** 2)
    excess = np.maximum(change ** 2 - se_r ** 2, 0.0)
    shares: Counter[str] = Counter()
    for k in range(len(pairs)):
        shares[str(owner[i[k]])] += excess[k] / 2
        shares[str(owner[j[k]])] += excess[k] / 2
    total = sum(shares.values())
    contributions = {name: float(s / total) for name, s in shares.most_common() if s > 0} if total > 0 else {}
    order = [k for n, k in enumerate(np.argsort(-np.abs(z))[:3]) if n == 0 or p_pairs[k] * len(pairs) <= 0.05]
    labels = [col.label for col in ref.columns]
    moved = "; ".join(f"{labels[i[k]]} ~ {labels[j[k]]}: {r_ref[i[k], j[k]]:+.2f} in training, "
                      f"{r_w[i[k], j[k]]:+.2f} now" for k in order)
    named = ", ".join(f"{name} {share:.0%}" for name, share in list(contributions.items())[:3])
    detail = (f"correlations between inputs ({len(pairs)} pairs over {len(ref.inputs)} inputs, {len(rows):,} rows "
              f"against {ref.rows:,} training rows): {moved}" + (f"; inputs contributing most: {named}" if named else ""))
    return JointMeasurement(value=float(change[top]), p_value=p_value, n_window=len(rows), n_reference=ref.rows,
                            observed=float(r_w[i[top], j[top]]), expected=float(r_ref[i[top], j[top]]),
                            detail=detail, contributions=contributions)


# -- embeddings ------------------------------------------------------------------------------------------------------

EMBEDDING_MIN_DIM = 8
EMBEDDING_MAX_DIM = 1024
EMBEDDING_SHARE = 0.95  # share of a column's non-null training values that must be vectors of one length
EMBEDDING_REFERENCE = 2000  # reference vectors kept (projected)
EMBEDDING_PCA_ROWS = 1000  # further training vectors the projection is fitted on (not the reference ones)
EMBEDDING_COMPONENTS = 32  # principal directions kept; the distance from their span is one more coordinate
EMBEDDING_WINDOW = 2000  # window vectors judged at most (a seeded sample of larger windows)
TAIL = 0.05  # embedding_shift's effect counts window vectors in training's top 5% of the witness
_TYPE_CHECKED = 500  # vectors whose elements are all checked to be numbers


def _is_vector(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _numeric_vector(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.dtype.kind in "iuf" and bool(np.isfinite(value).all())
    return all(is_number(x) and math.isfinite(x) for x in value)


def embedding_length(values: Iterable[Any]) -> int | None:
    """The length of the embedding a column holds, or None when it does not hold one.

    An embedding: at least 95% of the non-null values are arrays (lists, tuples, numpy arrays) of numbers of one
    length between 8 and 1,024 (the numbers of the first 500 are checked one by one; booleans are not numbers).

    >>> embedding_length([[0.1] * 16, None, [0.5] * 16])
    16
    >>> embedding_length([[0.1] * 16, [0.5] * 12]), embedding_length([[1, 2, 3]]), embedding_length(["a", "b"])
    (None, None, None)
    """
    lengths: Counter[int] = Counter()
    total = 0
    checked: list[Any] = []
    for value in values:
        if _is_null(value):
            continue
        total += 1
        if _is_vector(value):
            lengths[len(value)] += 1
            if len(checked) < _TYPE_CHECKED:
                checked.append(value)
    if not lengths:
        return None
    length, count = lengths.most_common(1)[0]
    if not EMBEDDING_MIN_DIM <= length <= EMBEDDING_MAX_DIM or count < EMBEDDING_SHARE * total:
        return None
    if not all(_numeric_vector(v) for v in checked if len(v) == length):
        return None
    return length


@dataclass
class EmbeddingReference:
    """Training's embeddings, projected: the mean, the top principal directions, and a sample of reference vectors
    as their coordinates on those directions plus their distance from the directions' span, each coordinate in
    units of its training standard deviation (``center``, ``scale``)."""

    dim: int
    mean: np.ndarray  # (dim,)
    components: np.ndarray  # (k, dim), orthonormal rows
    center: np.ndarray  # (k + 1,): the coordinates' training means (the last: the distance from the span)
    scale: np.ndarray  # (k + 1,): their training standard deviations
    sample: np.ndarray  # (m, k + 1) float32: reference vectors, standardised coordinates
    bandwidth: float  # RBF kernel width: the median distance between reference vectors (standardised)
    rows: int  # training vectors seen
    seed: int = 0

    def coordinates(self, vectors: np.ndarray) -> np.ndarray:
        """Coordinates on the principal directions and distance from their span, not yet standardised."""
        centred = np.asarray(vectors, dtype=float) - self.mean
        coords = centred @ self.components.T
        residual = np.linalg.norm(centred - coords @ self.components, axis=1)
        return np.column_stack([coords, residual])

    def project(self, vectors: np.ndarray) -> np.ndarray:
        return ((self.coordinates(vectors) - self.center) / self.scale).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "predwatch.embedding_reference", "method": "cross_mmd_witness", "dim": self.dim,
                "rows": self.rows, "seed": self.seed, "bandwidth": self.bandwidth,
                "mean": _blob(self.mean), "components": _blob(self.components), "center": _blob(self.center),
                "scale": _blob(self.scale), "sample": _blob(self.sample)}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "EmbeddingReference":
        return cls(dim=int(doc["dim"]), mean=_unblob(doc["mean"]).astype(float),
                   components=_unblob(doc["components"]).astype(float), center=_unblob(doc["center"]).astype(float),
                   scale=_unblob(doc["scale"]).astype(float), sample=_unblob(doc["sample"]),
                   bandwidth=float(doc["bandwidth"]), rows=int(doc["rows"]), seed=int(doc.get("seed", 0)))


def _blob(array: np.ndarray) -> dict[str, Any]:
    """An array as JSON: its shape and its float32 bytes in base64 (a quarter of the size of decimal text)."""
    data = np.ascontiguousarray(array, dtype="<f4")
    return {"shape": list(data.shape), "float32": base64.b64encode(data.tobytes()).decode("ascii")}


def _unblob(doc: Mapping[str, Any]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(doc["float32"]), dtype="<f4").reshape(doc["shape"]).copy()


def _vectors(vectors: Any, dim: int | None = None) -> np.ndarray:
    x = np.asarray(vectors, dtype=float)
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        raise ValueError(f"expected an array of vectors of length {dim}, got shape {x.shape}")
    return x[np.isfinite(x).all(axis=1)]


def fit_embedding_reference(vectors: np.ndarray, seed: int = 0) -> EmbeddingReference | None:
    """What :func:`embedding_shift` judges windows against, bounded whatever the training size.

    A seeded sample of the training vectors: up to 1,000 fit the top 32 principal directions (PCA), and up to
    2,000 others are kept as the reference, each as its 32 coordinates plus its distance from the directions'
    span (so that a change orthogonal to everything training varied along, a new kind of input, still shows),
    each coordinate in units of its training standard deviation: a move along a direction training barely varied
    along (the distance from the span is one) weighs as much as one along the main directions; measured in raw
    units it would drown in the wide kernel the main directions set (at dim 384 a new cluster off the span was
    caught in 8 of 10 windows of 1,000 at p < 0.001 unstandardised, 10 of 10 at p < 1e-12 standardised).
    Fitting the directions on other vectors than the reference keeps the reference's distances as large as a
    window's. The kernel width is the median distance between reference vectors (the median heuristic,
    Gretton et al. 2012). Stored: about 2,000 x 33 float32 plus the directions, ~300 KB as base64 at dim 384.
    None when fewer than 50 vectors.

    >>> ref = fit_embedding_reference(np.random.default_rng(0).normal(size=(600, 16)))
    >>> ref.dim, ref.sample.shape, ref.components.shape
    (16, (400, 17), (16, 16))
    """
    x = _vectors(vectors)
    n = len(x)
    if n < MIN_ROWS:
        return None
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)[: EMBEDDING_PCA_ROWS + EMBEDDING_REFERENCE]
    if len(order) >= 3 * MIN_ROWS:
        fit_part = order[: min(EMBEDDING_PCA_ROWS, len(order) // 3)]
        ref_part = order[len(fit_part):]
    else:  # too few to set some aside: the same vectors (their distance from the span is then a little small)
        fit_part = ref_part = order
    mean = x[fit_part].mean(axis=0)
    _, _, vt = np.linalg.svd(x[fit_part] - mean, full_matrices=False)
    k = min(EMBEDDING_COMPONENTS, x.shape[1], len(fit_part) - 1)
    # float32 round trip now, so that a reference read back from JSON measures exactly what this one does
    mean, components = mean.astype(np.float32).astype(float), vt[:k].astype(np.float32).astype(float)
    ref = EmbeddingReference(dim=x.shape[1], mean=mean, components=components, center=np.zeros(k + 1),
                             scale=np.ones(k + 1), sample=np.zeros((0, k + 1), np.float32), bandwidth=1.0, rows=n,
                             seed=seed)
    coords = ref.coordinates(x[fit_part])
    spread = coords.std(axis=0)
    floor = 1e-3 * float(spread.max()) or 1.0  # a direction training did not vary along does not divide by ~0
    ref.center = coords.mean(axis=0).astype(np.float32).astype(float)
    ref.scale = np.maximum(spread, floor).astype(np.float32).astype(float)
    sample = ref.project(x[ref_part])
    probe = sample[:500].astype(float)
    dist = np.sqrt(np.maximum(_sq_dist(probe, probe), 0))
    bandwidth = float(np.median(dist[np.triu_indices(len(probe), 1)]))
    ref.sample, ref.bandwidth = sample, bandwidth if bandwidth > 0 else 1.0
    return ref


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney U / (n m))."""
    ranks = pd.Series(np.concatenate([pos, neg])).rank(method="average").to_numpy()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def embedding_shift(ref: EmbeddingReference, vectors: np.ndarray) -> JointMeasurement | None:
    """Has the distribution of an embedding moved away from training's?

    Method: a kernel two-sample test that needs no permutations, the cross-MMD of Shekhar, Kim & Ramdas ("A
    permutation-free kernel two-sample test", NeurIPS 2022). Window and reference vectors (projected, see
    :func:`fit_embedding_reference`; a seeded sample of at most 2,000 window vectors) are split in two halves
    each; on one half, the witness ``f(x) = mean k(x, window) - mean k(x, reference)`` (RBF kernel,
    median-heuristic width) is where the window is denser than training; on the other half, window vectors
    should then score higher than reference vectors. The statistic (the same both ways round) is studentised by
    the witness scores' spread: one-sided normal p-value, valid for any distribution since the witness never
    scores the vectors it was fitted on. A mean shift moves every vector, a new cluster makes a few score very high:
    the kernel sees both. Effect (``value``): the share of held-out window vectors whose witness score is above the
    95th percentile of the held-out reference vectors' scores, beyond the 5% expected, rescaled to 0..1:
    ``(share - 0.05) / 0.95``, about the share of the window that comes from where training rarely is (a new cluster
    taking 10% of the rows scores ~0.1, a window from training 0 +- 0.01); ``observed`` is that share, ``expected``
    0.05; the witness's AUC is in ``detail``. ``contributions``: the share of the squared centroid shift (in
    training standard deviations) along each principal direction ("pc1", ...) and off their span ("residual"), top 5.
    Default levels 0.05 / 0.2 (``DEFAULT_LEVELS``). None when fewer than 50 finite vectors.
    Raises ValueError when the vectors' length is not the reference's.

    >>> rng = np.random.default_rng(0)
    >>> ref = fit_embedding_reference(rng.normal(size=(3000, 16)))
    >>> m = embedding_shift(ref, rng.normal(size=(400, 16)))
    >>> m.p_value > 0.01
    True
    >>> m = embedding_shift(ref, rng.normal(size=(400, 16)) + 0.5)
    >>> m.value > 0.3, m.p_value < 1e-6
    (True, True)
    """
    x = _vectors(vectors, ref.dim)
    if len(x) < MIN_ROWS:
        return None
    rng = np.random.default_rng(ref.seed + 1)
    if len(x) > EMBEDDING_WINDOW:
        x = x[np.sort(rng.choice(len(x), EMBEDDING_WINDOW, replace=False))]
    w = ref.project(x).astype(float)
    r = ref.sample.astype(float)
    w_half = rng.permutation(len(w))
    r_half = rng.permutation(len(r))
    wa, wb = w[w_half[: len(w) // 2]], w[w_half[len(w) // 2:]]
    ra, rb = r[r_half[: len(r) // 2]], r[r_half[len(r) // 2:]]
    a, b = np.vstack([wa, ra]), np.vstack([wb, rb])
    kernel = np.exp(-np.maximum(_sq_dist(a, b), 0) / (2 * ref.bandwidth ** 2))  # a x b
    na, nb = len(wa), len(wb)
    f_a = kernel[:na].mean(0) - kernel[na:].mean(0)  # witness fitted on half a, scoring half b
    f_b = kernel[:, :nb].mean(1) - kernel[:, nb:].mean(1)  # fitted on half b, scoring half a
    statistic = float(f_a[:nb].mean() - f_a[nb:].mean())  # == f_b[:na].mean() - f_b[na:].mean()
    var_a = f_a[:nb].var(ddof=1) / nb + f_a[nb:].var(ddof=1) / len(rb)
    var_b = f_b[:na].var(ddof=1) / na + f_b[na:].var(ddof=1) / len(ra)
    se = math.sqrt(max((var_a + var_b) / 2, 1e-300))
    p_value = float(_special.ndtr(-statistic / se))
    auc = (_auc(f_a[:nb], f_a[nb:]) * nb + _auc(f_b[:na], f_b[na:]) * na) / (na + nb)
    # held-out window vectors above the 95th percentile of the held-out reference vectors' witness scores
    above = int((f_a[:nb] > np.quantile(f_a[nb:], 1 - TAIL)).sum() + (f_b[:na] > np.quantile(f_b[na:], 1 - TAIL)).sum())
    share = above / (na + nb)
    shift = w.mean(0) - r.mean(0)  # in training standard deviations, per direction
    names = [f"pc{i + 1}" for i in range(w.shape[1] - 1)] + ["residual"]
    sq = shift ** 2
    contributions = {}
    if sq.sum() > 0:
        for idx in np.argsort(-sq)[:5]:
            contributions[names[idx]] = float(sq[idx] / sq.sum())
    moved = ", ".join(f"{name} {share:.0%}" for name, share in contributions.items())
    detail = (f"{share:.1%} of {len(x):,} vectors lie where {TAIL:.0%} of {len(r):,} training vectors do (above "
              f"the 95th percentile of a kernel witness fitted on other vectors; AUC {auc:.2f}); the centroid moved {np.abs(shift).max():.2f} training standard "
              f"deviations along {names[int(np.argmax(np.abs(shift)))]}" + (f"; share of its move: {moved}" if moved else ""))
    return JointMeasurement(value=(share - TAIL) / (1 - TAIL), p_value=p_value, n_window=len(x), n_reference=len(r),
                            observed=share, expected=TAIL, detail=detail, contributions=contributions)


# -- the checks, registered beside their statistics -------------------------------------------------------------------

ALL_INPUTS = "*"  # the feature of a finding about the inputs together (``null`` in ``check``'s JSON)
# The one reference the joint checks judge against: all of training (``analyzers.core.reference.TRAINING``). A
# window judged against the same hours of day, or against the recent days, is not judged jointly: the inputs of
# one hour move together otherwise than all of training's, and neither the hours nor the recent days keep a sample.
ALL_OF_TRAINING = "training"
CONTRIBUTORS_SHOWN = 5


def _measurement(m: JointMeasurement) -> Measurement:
    top = sorted(m.contributions.items(), key=lambda kv: -kv[1])[:CONTRIBUTORS_SHOWN]
    return Measurement(m.value, m.p_value, m.n_window, m.n_reference, m.observed, m.expected, m.detail,
                       [{"value": name, "share": round(share, 3)} for name, share in top])


@window_check("multivariate_shift", DEFAULT_LEVELS["multivariate_shift"],
              "the largest change of a pairwise correlation between two inputs", against_recent=False)
def judge_multivariate_shift(profile: Any, baseline: Any, reference: str) -> list[Measured]:
    """``multivariate_shift`` of the window's record sample against training's associations (judged against
    training only: the recent days keep no sample)."""
    joint = baseline.joint_reference()
    if joint is None or profile.sample is None or reference != ALL_OF_TRAINING:
        return []
    m = multivariate_shift(joint, profile.sample.rows)
    return [] if m is None else [Measured(ALL_INPUTS, "input", _measurement(m))]


@window_check("embedding_shift", DEFAULT_LEVELS["embedding_shift"],
              "share of window vectors where training's vectors rarely are", against_recent=False)
def judge_embedding_shift(profile: Any, baseline: Any, reference: str) -> list[Measured]:
    """``embedding_shift`` of each embedding input, from the vectors of the window's record sample."""
    out: list[Measured] = []
    if reference != ALL_OF_TRAINING:
        return out
    for name, col in baseline.columns.items():
        ref = col.embedding_reference() if col.kind == "embedding" else None
        if ref is None or profile.sample is None:
            continue
        vectors = [row[name] for row in profile.sample.rows if is_vector_of(row.get(name), ref.dim)]
        if not vectors:
            continue
        m = embedding_shift(ref, np.asarray(vectors, dtype=float))
        if m is not None:
            out.append(Measured(name, col.role, _measurement(m)))
    return out
