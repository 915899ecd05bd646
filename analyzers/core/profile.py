"""Window profiles: a mergeable summary of one window of prediction records.

Counts per baseline bin, per baseline category and unseen, nulls, absent keys,
type mismatches, tokens and out-of-vocabulary tokens, min and max. Every source
(local files, Elasticsearch aggregations) produces this same structure, and the
checks read nothing else. ``merge`` gives the profile of the union of two windows.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .groups import Groups, groups_from_dict, groups_to_dict, merge_groups
from .joint import RowSample
from .quality import QualityProfile

EXAMPLES = 5  # examples kept per kind of problem
UNSEEN_KEEP = 1000  # distinct unseen values tracked with counts (the total stays exact)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line a source could not use as a record, where it was, and why."""

    where: str
    reason: str


@dataclass
class ColumnProfile:
    """One column in one window. ``present`` counts records that have the key (even as null)."""

    kind: str
    present: int = 0
    nulls: int = 0
    mismatched: int = 0
    mismatch_examples: list[Any] = field(default_factory=list)
    # numeric
    bins: list[int] | None = None
    min: float | None = None
    max: float | None = None
    sum: float = 0.0
    sumsq: float = 0.0
    # categorical, boolean
    categories: dict[str, int] = field(default_factory=dict)
    unseen: int = 0
    unseen_values: dict[str, int] = field(default_factory=dict)
    # text (``texts`` values tokenised: all of them locally, a sample in Elasticsearch)
    texts: int = 0
    tokens: int = 0
    oov_tokens: int = 0
    oov_values: dict[str, int] = field(default_factory=dict)
    # problem ("missing", "mismatch", "unseen", "out_of_range") -> segment feature -> value -> offending
    # records: where the problem concentrates (see analyzers.core.segments)
    offending: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    @property
    def values(self) -> int:
        """Non-null values of the expected type."""
        return self.present - self.nulls - self.mismatched

    def mean_std(self) -> tuple[float, float] | None:
        """Mean and standard deviation of the numeric values, from the running sums."""
        n = sum(self.bins or ())
        if not n:
            return None
        mean = self.sum / n
        return mean, max(self.sumsq / n - mean * mean, 0.0) ** 0.5

    def merge(self, other: "ColumnProfile") -> "ColumnProfile":
        if self.kind != other.kind:
            raise ValueError(f"cannot merge a {self.kind} profile with a {other.kind} one")
        bins = None
        if self.bins is not None or other.bins is not None:
            a, b = self.bins or [0] * len(other.bins or []), other.bins or [0] * len(self.bins or [])
            if len(a) != len(b):
                raise ValueError("cannot merge numeric profiles built on different bin edges")
            bins = [x + y for x, y in zip(a, b)]
        return ColumnProfile(
            kind=self.kind,
            present=self.present + other.present,
            nulls=self.nulls + other.nulls,
            mismatched=self.mismatched + other.mismatched,
            mismatch_examples=add_examples(self.mismatch_examples, other.mismatch_examples),
            bins=bins,
            min=_pick(min, self.min, other.min),
            max=_pick(max, self.max, other.max),
            sum=self.sum + other.sum,
            sumsq=self.sumsq + other.sumsq,
            categories=_add(self.categories, other.categories),
            unseen=self.unseen + other.unseen,
            unseen_values=_top(_add(self.unseen_values, other.unseen_values), UNSEEN_KEEP),
            texts=self.texts + other.texts,
            tokens=self.tokens + other.tokens,
            oov_tokens=self.oov_tokens + other.oov_tokens,
            oov_values=_top(_add(self.oov_values, other.oov_values), UNSEEN_KEEP),
            offending=merge_offending(self.offending, other.offending),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "ColumnProfile":
        return cls(**doc)

    @classmethod
    def empty(cls, kind: str, edges: list[float] | None = None) -> "ColumnProfile":
        """A column no record of the window had: zero counts in every baseline bin."""
        return cls(kind=kind, bins=[0] * (len(edges) + 1) if kind == "numeric" and edges is not None else None)


@dataclass
class WindowProfile:
    """All columns of one window, plus what the window itself was."""

    model: str | None = None
    records: int = 0
    rejected: int = 0
    start: str | None = None
    end: str | None = None
    versions: dict[str, int] = field(default_factory=dict)
    columns: dict[str, ColumnProfile] = field(default_factory=dict)
    unknown_columns: dict[str, int] = field(default_factory=dict)  # in the logs, not in the baseline
    other_models: dict[str, int] = field(default_factory=dict)  # records of other models, left out
    hours: dict[str, int] = field(default_factory=dict)  # records per UTC hour of the week ("0" Monday 00h .. "167")
    latency: dict[str, int] = field(default_factory=dict)  # latency histogram (analyzers.core.quality.latency_bins)
    quality: QualityProfile | None = None  # outcomes joined to the window's predictions (baselines with quality)
    # per group field and value: predictions, positive ones, labelled quality (analyzers.core.groups)
    groups: Groups = field(default_factory=dict)
    # records per value of the fields around the predictions that differ between them (service.version,
    # host.name, labels.*): what a finding's segments on those fields are measured against
    context: dict[str, dict[str, int]] = field(default_factory=dict)
    # a bounded random sample of the window's records (their inputs), for the joint checks (baselines with a joint
    # reference or an embedding); mergeable, so a window's sample is the same however its records were split
    sample: RowSample | None = None
    # two versions of the model profiled apart, for comparing them (``--compare``): a VersionProfiles of
    # analyzers.core.versions (which builds on profiles, hence not named here); a window's own, never stored
    compared: Any = None

    def absent(self, name: str) -> int:
        """Records in which the column's key is missing altogether."""
        col = self.columns.get(name)
        return self.records - (col.present if col else 0)

    def merge(self, other: "WindowProfile") -> "WindowProfile":
        columns = dict(self.columns)
        for name, col in other.columns.items():
            columns[name] = columns[name].merge(col) if name in columns else col
        return WindowProfile(
            model=self.model or other.model,
            records=self.records + other.records,
            rejected=self.rejected + other.rejected,
            start=_pick(min, self.start, other.start),
            end=_pick(max, self.end, other.end),
            versions=_add(self.versions, other.versions),
            columns=columns,
            unknown_columns=_add(self.unknown_columns, other.unknown_columns),
            other_models=_add(self.other_models, other.other_models),
            hours=_add(self.hours, other.hours),
            latency=_add(self.latency, other.latency),
            quality=_pick(QualityProfile.merge, self.quality, other.quality),
            groups=merge_groups(self.groups, other.groups),
            context=merge_context(self.context, other.context),
            sample=_pick(RowSample.merge, self.sample, other.sample),
            compared=_pick(lambda a, b: a.merge(b), self.compared, other.compared),
        )

    def to_dict(self) -> dict[str, Any]:
        doc = {k: v for k, v in self.__dict__.items()
               if k not in ("columns", "quality", "groups", "context", "sample", "compared")}
        doc["columns"] = {name: col.to_dict() for name, col in self.columns.items()}
        if self.quality is not None:
            doc["quality"] = self.quality.to_dict()
        if self.groups:
            doc["groups"] = groups_to_dict(self.groups)
        if self.context:
            doc["context"] = self.context
        if self.sample is not None:
            doc["sample"] = self.sample.to_dict()
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "WindowProfile":
        doc = dict(doc)
        doc["columns"] = {n: ColumnProfile.from_dict(c) for n, c in doc.get("columns", {}).items()}
        if doc.get("quality") is not None:
            doc["quality"] = QualityProfile.from_dict(doc["quality"])
        if doc.get("groups"):
            doc["groups"] = groups_from_dict(doc["groups"])
        if doc.get("sample") is not None:
            doc["sample"] = RowSample.from_dict(doc["sample"])
        doc.pop("compared", None)
        return cls(**doc)


def add_examples(examples: list[Any], more: list[Any]) -> list[Any]:
    """The first EXAMPLES distinct examples of both lists, in order.

    Distinct by type too: ``0``, ``0.0`` and ``False`` are equal in Python but are
    different evidence of a type problem.
    """
    out = list(examples)
    for value in more:
        if len(out) >= EXAMPLES:
            break
        if not any(type(seen) is type(value) and seen == value for seen in out):
            out.append(value)
    return out


SEGMENT_VALUES_KEPT = 100  # values per segment feature kept in ``offending``


def merge_offending(a: dict[str, dict[str, dict[str, int]]], b: dict[str, dict[str, dict[str, int]]]
                    ) -> dict[str, dict[str, dict[str, int]]]:
    """Offending counts of two windows added, problem by problem and feature by feature."""
    if not b:
        return a
    if not a:
        return b
    out = {}
    for problem in a.keys() | b.keys():
        x, y = a.get(problem, {}), b.get(problem, {})
        out[problem] = {name: _top(_add(x.get(name, {}), y.get(name, {})), SEGMENT_VALUES_KEPT)
                        for name in x.keys() | y.keys()}
    return out


def merge_context(a: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Records per value of each field around the predictions, of two windows added (the most frequent
    ``SEGMENT_VALUES_KEPT`` values of each field kept)."""
    if not b:
        return a
    if not a:
        return b
    return {name: _top(_add(a.get(name, {}), b.get(name, {})), SEGMENT_VALUES_KEPT) for name in a.keys() | b.keys()}


def _pick(fn, a, b):
    if a is None:
        return b
    if b is None:
        return a
    return fn(a, b)


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    if not b:
        return dict(a)
    out = Counter(a)
    out.update(b)
    return dict(out)


def _top(counts: dict[str, int], keep: int) -> dict[str, int]:
    if len(counts) <= keep:
        return counts
    return dict(Counter(counts).most_common(keep))
