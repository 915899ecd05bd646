"""Window profiles computed inside Elasticsearch, with aggregations: never pulling every document.

For one model (and version) and time window, a bounded number of ``size: 0``
searches return, per column: ``range`` counts on the baseline's bin edges plus
``extended_stats`` (numeric), ``terms`` restricted to the baseline categories and
``terms`` excluding them for the unseen ones (exact totals via
``sum_other_doc_count``, a few examples), ``exists`` counts, and values the
mapping refused (``_ignored``: strings in numeric fields). Free text cannot be
tokenised server-side: a seeded random sample of at most ``text_sample``
documents is read instead, and its size is what the OOV test counts. Response
size therefore depends on the baseline, not on how many documents the window has.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from elasticsearch import Elasticsearch

from logging_adapter import contract as c
from logging_adapter.refit import REFUSED_FIELDS
from logging_adapter.templates import intervals_pattern, predictions_pattern

from ..core.baseline import Baseline, ColumnBaseline
from ..core.profile import SEGMENT_VALUES_KEPT, UNSEEN_KEEP, ColumnProfile, WindowProfile
from ..core.groups import GROUP_VALUES_KEPT, GroupProfile, GroupReference, Groups, is_record_field
from ..core.quality import DELAY_EDGES, QualityProfile, QualityReference, latency_edges
from ..core.segments import CONTEXT_FIELDS, MISSING, segment_features
from ..core.counting import Columns, ProfileCounter
from ..core.joint import RowSample
from ..core.versions import (OTHER, UNSEEN, PairCounts, VersionCounter, VersionProfiles, adjusted_feature,
                             major_categories, output_bin_keys)
from .layout import OWN, Layout, Note
from .mapped_outcomes import joinable, labelled_pattern
from .search import of_model, search

BUCKET_BUDGET = 20_000  # buckets we allow ourselves per request, well inside it
UNSEEN_EXAMPLES = 10
TEXT_SAMPLE = 1000
PAIR_SAMPLE = 5000  # candidate records whose shadow pair is looked for per window (a seeded random sample)


@dataclass
class EsWindowProfiler:
    """Builds :class:`WindowProfile` objects for one baseline from an Elasticsearch cluster.

    ``requests`` counts the searches made (for the benchmark and the tests). ``layout``: where the records are
    and how their fields are named (:mod:`analyzers.sources.layout`; default predwatch's own indices); a layout
    of the user's own indices is inspected each window (its mapping), unless given inspected.
    """

    client: Elasticsearch
    baseline: Baseline
    prefix: str = "predwatch"
    text_sample: int = TEXT_SAMPLE
    pair_sample: int = PAIR_SAMPLE
    requests: int = 0
    conflicts: dict[str, dict[str, str]] = field(default_factory=dict)  # feature -> index -> type, of the last window
    layout: Layout = OWN
    notes: list[Note] = field(default_factory=list)  # what the user's mapping made us say, of the last window
    context_seen: set[str] = field(default_factory=set)  # the fields around the predictions the last window had
    _counter: ProfileCounter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._counter = ProfileCounter(self.baseline)

    def window_query(self, start: str, end: str, version: str | None) -> dict[str, Any]:
        return self.layout.query(self.baseline.model, version, start=start, end=end)

    @property
    def index(self) -> str:
        """The model's prediction indices: predwatch's own, or the user's (only ever searched)."""
        return self.layout.predictions(self.prefix, self.baseline.model)

    def field(self, col: ColumnBaseline) -> str:
        """The field a column's aggregations use: the contract's name, or the layout's aggregatable path."""
        return col.field if self.layout.own else self.layout.column(col.name)

    def edges(self, col: ColumnBaseline) -> list[float] | None:
        """A numeric column's bin edges as the field's mapped type holds them (the baseline's on predwatch's own
        indices, typed ``double`` by the baseline's template)."""
        return col.edges if self.layout.own else self.layout.edges(col.name, col.edges)

    def edges_of(self, name: str, edges: list[float] | None) -> list[float] | None:
        """Bin edges of a column by name, as the mapped type of its field holds them (see :meth:`edges`)."""
        return edges if self.layout.own else self.layout.edges(name, edges)

    def _search(self, index: str | None = None, **body: Any) -> dict[str, Any]:
        """One search of the model's prediction indices (or of ``index``), counted, answered whole."""
        self.requests += 1
        return search(self.client, index=index or self.index, ignore_unavailable=True, allow_no_indices=True, **body)

    def inspect(self, start: str, end: str) -> None:
        """Read the mapping of the user's indices holding ``[start, end)`` (one request; nothing for predwatch's
        own): the layout knows each path's aggregatable field, ``conflicts`` and ``notes`` are the window's."""
        if self.layout.own:
            return
        if self.layout.caps is None:  # not given inspected for this window
            self.requests += 1
            self.layout, self.notes = self.layout.inspect(self.client, start, end)
        self.conflicts, notes = self.layout.column_report((col.name, col.kind) for col in self.baseline.columns.values())
        self.notes += notes

    def profile(self, start: str, end: str, version: str | None = None) -> WindowProfile:
        """The profile of ``[start, end)`` (ISO timestamps) for the baseline's model."""
        self.inspect(start, end)
        query = self.window_query(start, end, version)
        stamp, versions, latency = self.layout.timestamp, self.layout.version_field, self.layout.latency_field
        aggs: dict[str, Any] = {
            "first": {"min": {"field": stamp}},
            "last": {"max": {"field": stamp}},
            "hours": {"date_histogram": {"field": stamp, "fixed_interval": "1h", "min_doc_count": 1}},
        }
        if versions is not None:
            aggs["versions"] = {"terms": {"field": versions, "size": 50}}
        if latency is not None:
            aggs["latency"] = _range(latency, _ranges(latency_edges(), first=None), shield=not self.layout.own)
        if self.layout.own:  # the fields around the predictions a finding may be explained by (service.version ...)
            aggs.update({f"around{i}": {"terms": {"field": name, "size": SEGMENT_VALUES_KEPT}}
                         for i, name in enumerate(self.context_fields())})
        head = self._search(size=0, track_total_hits=True, query=query, aggs=aggs)
        aggs = head.get("aggregations", {})
        records = head["hits"]["total"]["value"]
        window = WindowProfile(
            model=self.baseline.model,
            records=records,
            start=aggs.get("first", {}).get("value_as_string"),
            end=aggs.get("last", {}).get("value_as_string"),
            versions={str(b.get("key_as_string", b["key"])): b["doc_count"]
                      for b in aggs.get("versions", {}).get("buckets", [])},
            hours=_hours_of_week(aggs.get("hours", {}).get("buckets", [])),
            latency={str(i): b["doc_count"] for i, b in enumerate(_range_buckets(aggs.get("latency", {})))
                     if b["doc_count"]},
        )
        for i, name in enumerate(self.context_fields()):
            counts = {str(b.get("key_as_string", b["key"])): b["doc_count"]
                      for b in aggs.get(f"around{i}", {}).get("buckets", [])}
            if counts:
                window.context[name] = counts
        self.context_seen = set(window.context)  # the fields :meth:`offending` looks at for this window
        if records == 0:
            window.columns = {n: ColumnProfile.empty(col.kind, col.edges) for n, col in self.baseline.columns.items()}
            return window
        if self.layout.own:
            self.conflicts = self.mapping_conflicts(start, end)
        columns = list(self.baseline.columns.values())
        for group in _groups([col for col in columns if col.name not in self.conflicts]):
            self._profile_columns(window, group, query)
        for col in columns:  # each feature typed otherwise in some index: judged from the indices typed right
            if col.name in self.conflicts:
                self._profile_columns(window, [col], query, excluded=sorted(self.conflicts[col.name]))
        texts = [col for col in self.baseline.columns.values() if col.kind == "text"]
        if texts:
            self._add_text_sample(window, query, texts, seed=f"{start}/{end}")
        if self._counter.sampled:
            self._add_record_sample(window, query, seed=f"{start}/{end}")
        if self.baseline.quality is not None and self.layout.own:
            window.quality = self.quality(query, records)
        elif self.baseline.quality is not None and joinable(self.layout):  # labels joined into predwatch's own
            window.quality = self.quality(query, records, labelled=of_model(  # index (analyzers.sources.mapped_outcomes)
                self.baseline.model, version, field=c.TIMESTAMP, start=start, end=end))
        if self.baseline.groups is not None and self.layout.own:  # groups: predwatch's own indices
            window.groups = self.groups(query)
        return window

    def context_fields(self) -> list[str]:
        """The record fields around the predictions that findings may be explained by: ``service.version``,
        ``host.name`` and the record fields the baseline groups by (``--segment labels.region``)."""
        groups = self.baseline.groups
        named = [f for f in (groups.fields if groups else ()) if is_record_field(f)]
        return list(dict.fromkeys((*CONTEXT_FIELDS, *named)))

    def _add_record_sample(self, window: WindowProfile, query: dict, seed: str) -> None:
        """The record sample the joint checks read: a seeded random sample of the window's documents (at most the
        sample's size, the same on a re-run), fetched with only the inputs those checks need. An embedding's
        wrong-length vectors, which no aggregation sees, are counted in it and scaled to the window."""
        sample = RowSample()
        size = min(sample.k, window.records)
        names = self._counter.sampled
        resp = self._search(
            size=size, _source=[p for p in (self.layout.prediction_id_field, *map(self.layout.column_path, names)) if p],
            query={"function_score": {"query": query, "boost_mode": "replace",
                                      "random_score": {"seed": _seed(seed), "field": "_seq_no"}}},
        )
        rows, keys = [], []
        for hit in resp["hits"]["hits"]:
            try:
                record = self._record(hit.get("_source", {}))
            except c.RecordError:
                rows.append({})
                keys.append(hit["_id"])
                continue
            rows.append(record.columns())
            keys.append(record.prediction_id or hit["_id"])
        sample.add_all(keys, rows, names)
        window.sample = sample
        for col in (self.baseline.columns[n] for n in names if self.baseline.columns[n].kind == "embedding"):
            exact = window.columns[col.name]
            values = [row[col.name] for row in rows if row.get(col.name) is not None]
            counted = self._counter.count_column(col.name, col, values)
            if counted.mismatched and values:
                exact.mismatched += round(counted.mismatched * (exact.present - exact.nulls) / len(values))
                exact.mismatch_examples = counted.mismatch_examples

    def _record(self, source: dict[str, Any]) -> c.Prediction:
        """A document's (partial) source as a prediction record: read through the layout's field map, if any."""
        if self.layout.fields is not None:
            source = self.layout.fields.to_contract(source)
        return c.read_prediction(source)

    def _profile_columns(self, window: WindowProfile, cols: list[ColumnBaseline], query: dict[str, Any],
                         excluded: list[str] = ()) -> None:
        """The aggregations of ``cols`` in one search. ``excluded``: indices where they are mapped with another type
        than the baseline's; their values there are counted as present, and judged by nothing else."""
        body: dict[str, Any] = {}
        for i, col in enumerate(cols):
            body.update(_column_aggs(f"c{i}", col, self.field(col), self.edges(col), shield=not self.layout.own))
        if self.layout.own:
            index = self.index + "".join(f",-{name}" for name in excluded)
        else:  # the user's pattern may name an index itself, which no "-name" takes away: the others named
            index = ",".join(name for name in self.layout.indices if name not in excluded)
        resp = self._search(index=index, size=0, query=query, aggs=body) if index else {}
        for i, col in enumerate(cols):
            # every index excluded: no index left to answer, no aggregations (an empty column, judged by presence)
            window.columns[col.name] = (_read_column(f"c{i}", col, resp["aggregations"]) if "aggregations" in resp
                                        else ColumnProfile.empty(col.kind, col.edges))
        if excluded:
            elsewhere = self._search(index=",".join(excluded), size=0, query=query,
                                     aggs={f"c{i}": {"filter": _any({"exists": {"field": self.field(col)}},
                                                                    {"term": {"_ignored": self.field(col)}})}
                                           for i, col in enumerate(cols)})
            for i, col in enumerate(cols):
                window.columns[col.name].present += elsewhere["aggregations"][f"c{i}"]["doc_count"]

    def mapping_conflicts(self, start: str, end: str) -> dict[str, dict[str, str]]:
        """Features mapped, in some of the window's daily indices, with a type the baseline's kind cannot be
        aggregated as (a numeric feature typed ``keyword`` by the day's first value, shipped before
        ``predwatch baseline --es`` typed the model's indices): feature -> index -> its type there."""
        fields = {col.field: col for col in self.baseline.columns.values()}
        self.requests += 1
        found = self.client.indices.get_field_mapping(
            index=predictions_pattern(self.prefix, self.baseline.model), fields=list(fields),
            ignore_unavailable=True, allow_no_indices=True).body
        days = _days(start, end)
        out: dict[str, dict[str, str]] = {}
        unmapped: list[tuple[str, str]] = []  # (index, field) of the window's indices that do not map a feature
        for index, mapped in found.items():
            if index[-10:] not in days:
                continue
            mappings = mapped.get("mappings") or {}
            for path, spec in mappings.items():
                col = fields.get(path)
                leaf = (spec.get("mapping") or {}).get(path.rsplit(".", 1)[-1], {})
                kind = leaf.get("type")
                if col is not None and kind and kind not in AGGREGATABLE[col.kind]:
                    out.setdefault(col.name, {})[index] = f"mapped as {kind}"
            unmapped += [(index, path) for path in fields if path not in mappings]
        for index, path in self._past_the_field_limit(unmapped, start, end):
            out.setdefault(fields[path].name, {})[index] = PAST_THE_LIMIT
        return out

    def _past_the_field_limit(self, unmapped: list[tuple[str, str]], start: str, end: str) -> list[tuple[str, str]]:
        """Of features an index does not map, those it left unmapped because they came past
        ``index.mapping.total_fields.limit`` (``ignore_dynamic_beyond_limit`` lists them in ``_ignored``): present,
        never of the wrong type. A feature absent from every record of an index is not among them."""
        if not unmapped:
            return []
        query = self.window_query(start, end, None)
        aggs = {f"u{i}": {"filter": {"bool": {"filter": [{"term": {"_index": index}}, {"term": {"_ignored": path}}]}}}
                for i, (index, path) in enumerate(unmapped)}
        found = self._search(index=",".join(sorted({index for index, _ in unmapped})), size=0, query=query,
                             aggs=aggs)["aggregations"]
        return [pair for i, pair in enumerate(unmapped) if found[f"u{i}"]["doc_count"]]

    def quality(self, query: dict[str, Any], records: int, labelled: dict[str, Any] | None = None) -> QualityProfile:
        """The window's quality counts from one search: over the predictions whose outcome was joined
        (:mod:`analyzers.sources.outcomes`), labelled positives per score bin and the Brier sums (binary
        scores), a confusion matrix (labels), error sums (regression), label delays; over every
        prediction, the score bins the estimate needs.

        ``labelled``: for the user's own indices, the window's query of predwatch's labelled-prediction index
        (:mod:`analyzers.sources.mapped_outcomes`), where the labelled counts come from (one search), the
        score bins over every prediction from the user's index (one more)."""
        ref = self.baseline.quality
        aggs = self._quality_aggs()
        if labelled is None:
            found = self._search(size=0, query=query, aggs=aggs)["aggregations"]
        else:  # the labelled index holds the contract's names; the user's index its own, typed by dynamic mapping
            found = self._search(index=labelled_pattern(self.prefix, self.baseline.model), size=0,
                                 query=labelled, aggs={"labelled": aggs["labelled"]}).get("aggregations") \
                or {"labelled": _nothing_labelled(ref)}  # no label joined yet: no labelled index to answer
            if "scored" in aggs:
                name = ref.column if ref.scored else ref.binned
                f = self.layout.column(name)
                scored = _range(f, _ranges(self.edges_of(name, ref.edges), first=None), shield=True)
                found["scored"] = self._search(size=0, query=query, aggs={"scored": scored})["aggregations"]["scored"]
        return self._read_quality(found, records)

    def _quality_aggs(self) -> dict[str, Any]:
        """The aggregations of :meth:`quality` (also nested under a segment's buckets)."""
        ref = self.baseline.quality
        score = c.column_field(ref.column)
        labelled = _labelled_aggs(ref)
        aggs: dict[str, Any] = {}
        if ref.scored:
            aggs["scored"] = {"range": {"field": score, "ranges": _ranges(ref.edges, first=None)}}
        elif ref.task != "regression" and ref.binned is not None:
            # multiclass: the predicted class's probability, for the estimate
            aggs["scored"] = {"range": {"field": c.column_field(ref.binned), "ranges": _ranges(ref.edges, None)}}
        aggs["labelled"] = {"filter": {"exists": {"field": c.OUTCOME_ACTUAL}}, "aggs": labelled}
        return aggs

    def _read_quality(self, found: dict[str, Any], records: int) -> QualityProfile:
        prof = _read_labelled(QualityProfile(predictions=records), found["labelled"], self.baseline.quality)
        if "scored" in found:
            prof.scored = [b["doc_count"] for b in _range_buckets(found["scored"])]
        return prof

    # -- two versions side by side ------------------------------------------------------------------
    def compared(self, start: str, end: str, champion: str, candidate: str,
                 champion_profile: WindowProfile | None = None) -> VersionProfiles:
        """The comparison of two versions on ``[start, end)`` (:mod:`analyzers.core.versions`), from aggregations:
        each version's profile (as :meth:`profile`; the champion's given when already counted), its output bins
        per segment feature value (one search per version: the segment buckets as the local kernel forms them,
        the output's baseline bins nested), the labelled counts per value of the segment feature the comparison
        adjusts for (one search per version, only when the traffic differs), and the shadow pairs
        (:meth:`shadow_pairs`)."""
        cmp = VersionProfiles(champion, candidate)
        for version in (champion, candidate):
            prof = champion_profile if version == champion and champion_profile is not None else \
                self.profile(start, end, version)
            prof.compared = None
            if prof.records:
                cmp.profiles[version] = prof
                cmp.outputs[version] = self._outputs_by_segment(self.window_query(start, end, version))
        if self.baseline.quality is not None and all(v in cmp.profiles for v in (champion, candidate)):
            adjust = adjusted_feature(cmp, self.baseline)
            if adjust is not None:
                seg = self.baseline.columns[adjust]
                for version in (champion, candidate):
                    found = self._search(size=0, query=self.window_query(start, end, version),
                                         aggs=_segment_aggs("s", seg, self._quality_aggs()))["aggregations"]
                    by_value: dict[str, QualityProfile] = {}
                    for value, bucket in _segment_buckets("s", seg, found):
                        q = self._read_quality(bucket, 0)
                        by_value[value] = by_value[value].merge(q) if value in by_value else q
                    cmp.quality.setdefault(version, {})[adjust] = by_value
        if all(v in cmp.profiles for v in (champion, candidate)):
            cmp.pairs = self.shadow_pairs(start, end, champion, candidate, cmp.side(candidate).records)
        return cmp

    def _outputs_by_segment(self, query: dict[str, Any]) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
        outputs = [col for col in self.baseline.columns.values()
                   if col.role == "prediction" and col.kind in ("numeric", "categorical", "boolean")]
        segments = segment_features(self.baseline)
        if not outputs or not segments:
            return {}
        sub = {f"o{j}": ({"range": {"field": col.field, "ranges": _ranges(col.edges, first=None)}}
                         if col.kind == "numeric" else {"terms": {"field": col.field, "size": 200}})
               for j, col in enumerate(outputs)}
        aggs: dict[str, Any] = {}
        for i, seg in enumerate(segments):
            aggs.update(_segment_aggs(f"s{i}", seg, sub))
        found = self._search(size=0, query=query, aggs=aggs)["aggregations"]
        out: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
        for j, col in enumerate(outputs):
            per_feature = out.setdefault(col.name, {})
            for i, seg in enumerate(segments):
                values = per_feature.setdefault(seg.name, {})
                for value, bucket in _segment_buckets(f"s{i}", seg, found):
                    if col.kind == "numeric":
                        bins = {str(k): b["doc_count"] for k, b in enumerate(bucket[f"o{j}"]["buckets"]) if b["doc_count"]}
                    else:
                        bins = {}
                        for b in bucket[f"o{j}"]["buckets"]:
                            key = output_bin_keys(col, [b.get("key_as_string", b["key"])])[0]
                            if key is not None:
                                bins[key] = bins.get(key, 0) + b["doc_count"]
                    into = values.setdefault(value, {})
                    for key, n in bins.items():
                        into[key] = into.get(key, 0) + n
                    if not into:
                        values.pop(value)
        return out

    def shadow_pairs(self, start: str, end: str, champion: str, candidate: str, records: int) -> PairCounts:
        """The shadow pairs of the window, joined by ``prediction_id`` without pulling the window: a seeded random
        sample of at most ``pair_sample`` of the candidate's records (the same sample on a re-run), then the
        champion's records of those ids (one ``terms`` query), paired as the local kernel pairs them. A sample of
        ids, both records of each: the share sampled is ``PairCounts.sampled``; a canary's ids find no partner."""
        seg_fields = [s.field for s in segment_features(self.baseline)]
        fields = [c.PREDICTION_ID, c.PREDICTION, c.MODEL_NAME, c.MODEL_VERSION, c.TIMESTAMP, *seg_fields]
        size = min(self.pair_sample, records)
        if size <= 0:
            return PairCounts()
        query = {"function_score": {"query": self.window_query(start, end, candidate), "boost_mode": "replace",
                                    "random_score": {"seed": _seed(f"pairs/{start}/{end}"), "field": "_seq_no"}}}
        theirs = self._search(size=size, _source=fields, query=query)["hits"]["hits"]
        ids = sorted({h["_source"].get("predwatch", {}).get("prediction_id") for h in theirs} - {None})
        mine = []
        if ids:
            where = {"bool": {"filter": [self.window_query(start, end, champion),
                                         {"terms": {c.PREDICTION_ID: ids}}]}}
            mine = self._search(size=len(ids), _source=fields, query=where)["hits"]["hits"]
        predictions = []
        for hit in [*mine, *theirs]:
            try:
                predictions.append(c.read_prediction(hit.get("_source", {})))
            except c.RecordError:
                continue
        counter = VersionCounter(self.baseline, self._counter, champion, candidate)
        pairs = PairCounts()
        counter._pair(Columns.of(predictions), pairs, None)
        pairs.unpaired = len(counter.waiting)
        pairs.sampled = len(theirs) / records if records else 1.0
        return pairs

    def groups(self, query: dict[str, Any]) -> Groups:
        """The window's counts per group (:mod:`analyzers.core.groups`) from one search: per group field a
        ``terms`` aggregation (and a ``missing`` one), each bucket with its positive predictions and, over the
        predictions whose outcome was joined, the quality sub-aggregations :meth:`quality` uses."""
        groups, ref = self.baseline.groups, self.baseline.quality
        inner: dict[str, Any] = {"positive": {"filter": _positive_query(groups)}}
        if ref is not None:
            inner["labelled"] = {"filter": {"exists": {"field": c.OUTCOME_ACTUAL}}, "aggs": _labelled_aggs(ref)}
        aggs: dict[str, Any] = {}
        for i, name in enumerate(groups.fields):
            path = name if is_record_field(name) else c.column_field(name)
            aggs[f"g{i}"] = {"terms": {"field": path, "size": GROUP_VALUES_KEPT}, "aggs": inner}
            aggs[f"g{i}_missing"] = {"missing": {"field": path}, "aggs": inner}
        found = self._search(size=0, query=query, aggs=aggs).get("aggregations", {})
        out: Groups = {}
        for i, name in enumerate(groups.fields):
            buckets = [(str(b.get("key_as_string", b["key"])), b) for b in found.get(f"g{i}", {}).get("buckets", [])]
            missing = found.get(f"g{i}_missing", {})
            if missing.get("doc_count"):
                buckets.append((MISSING, missing))
            values: dict[str, GroupProfile] = {}
            for value, b in buckets:
                g = GroupProfile(b["doc_count"], b["positive"]["doc_count"])
                if ref is not None and b["labelled"]["doc_count"]:
                    g.quality = _read_labelled(QualityProfile(), b["labelled"], ref)
                values[value] = g
            if values:
                out[name] = values
        return out

    def interval_profile(self, start: str, end: str, version: str | None) -> WindowProfile | None:
        """The sum of the profile records (``PredictionLogger(profile=...)``) of every process for the
        intervals starting in ``[start, end)``, or None when no process sent any: then the window is counted
        from its records. A few hundred small documents per window, fetched in pages."""
        if not self.layout.own:  # serving processes' profile records are in predwatch's own indices only
            return None
        query = of_model(self.baseline.model, version, field=c.INTERVAL_START, start=start, end=end)
        total: WindowProfile | None = None
        after = None
        while True:
            body: dict[str, Any] = {"size": 1000, "query": query,
                                    "sort": [{c.INTERVAL_START: "asc"}, {c.SOURCE_PROCESS: "asc"}, {c.SOURCE_PART: "asc"}]}
            if after is not None:
                body["search_after"] = after
            self.requests += 1
            hits = search(self.client, index=intervals_pattern(self.prefix, self.baseline.model),
                          ignore_unavailable=True, allow_no_indices=True, **body)["hits"]["hits"]
            for hit in hits:
                counted = WindowProfile.from_dict(hit["_source"]["predwatch"]["profile"])
                total = counted if total is None else total.merge(counted)
            if len(hits) < 1000:
                break
            after = hits[-1]["sort"]
        if total is not None:
            total.model = self.baseline.model
            if self._counter.sampled:  # the full records the processes still log are the joint checks' sample
                self._add_record_sample(total, self.window_query(start, end, version), seed=f"{start}/{end}")
            if self.baseline.quality is not None:  # outcomes join the sampled full records
                joined = self.quality(self.window_query(start, end, version), 0)
                total.quality = (total.quality or QualityProfile(predictions=total.records)).with_labels(joined)
            if self.baseline.groups is not None:  # and into their groups (counted by the processes)
                for name, values in self.groups(self.window_query(start, end, version)).items():
                    into = total.groups.setdefault(name, {})
                    for value, g in values.items():
                        if g.quality is not None:
                            mine = into.setdefault(value, GroupProfile())
                            mine.quality = g.quality if mine.quality is None else mine.quality.merge(g.quality)
        return total

    def offending(self, start: str, end: str, version: str | None, feature: str, problem: str
                  ) -> dict[str, dict[str, int]]:
        """How the window's records with ``problem`` in ``feature`` spread over the segment features' values:
        one filtered search with a ``terms`` (and ``missing``) aggregation per segment feature
        (:func:`analyzers.core.segments.explain` calls it for each finding that has offending records)."""
        col = self.baseline.columns[feature]
        # the segment features, then the fields around the predictions (in the same search)
        segments = [(s.name, self.field(s)) for s in segment_features(self.baseline) if s.name != feature]
        segments += [(name, name) for name in self.context_fields() if name in self.context_seen]
        if not segments:
            return {}
        aggs: dict[str, Any] = {}
        for i, (_, path) in enumerate(segments):
            aggs[f"s{i}"] = {"terms": {"field": path, "size": SEGMENT_VALUES_KEPT}}
            aggs[f"s{i}_missing"] = {"missing": {"field": path}}
        window = self.window_query(start, end, version)
        query = {"bool": {"filter": [window, _problem_query(col, problem, self.field(col), self.edges(col))]}}
        found = self._search(size=0, query=query, aggs=aggs).get("aggregations", {})
        out: dict[str, dict[str, int]] = {}
        for i, (name, _) in enumerate(segments):
            counts = {str(b.get("key_as_string", b["key"])): b["doc_count"] for b in found[f"s{i}"]["buckets"]}
            if found[f"s{i}_missing"]["doc_count"]:
                counts[MISSING] = found[f"s{i}_missing"]["doc_count"]
            out[name] = counts
        return out

    def _add_text_sample(self, window: WindowProfile, query: dict, cols: list[ColumnBaseline], seed: str) -> None:
        """Tokens, OOV and type problems of text columns, from a seeded random sample of the window
        (the same sample on a re-run). Presence counts stay the exact ones from the aggregations."""
        size = min(self.text_sample, window.records)
        resp = self._search(
            size=size, _source=[self.layout.column_path(col.name) for col in cols],
            query={"function_score": {"query": query, "boost_mode": "replace",
                                      "random_score": {"seed": _seed(seed), "field": "_seq_no"}}},
        )
        rows = []
        for hit in resp["hits"]["hits"]:
            try:
                rows.append(self._record(hit.get("_source", {})).columns())
            except c.RecordError:
                rows.append({})
        for col in cols:
            exact = window.columns[col.name]
            values = [row[col.name] for row in rows if col.name in row and row[col.name] is not None]
            sample = self._counter.count_column(col.name, col, values)
            exact.texts, exact.tokens, exact.oov_tokens = sample.texts, sample.tokens, sample.oov_tokens
            exact.oov_values = sample.oov_values
            if sample.mismatched and values:  # scaled from the sample to the window's values
                exact.mismatched = round(sample.mismatched * (exact.present - exact.nulls) / len(values))
                exact.mismatch_examples = sample.mismatch_examples


def _nothing_labelled(ref: Any) -> dict[str, Any]:
    """The ``labelled`` aggregation of :meth:`EsWindowProfiler.quality` as it reads when no prediction is labelled
    (what an index that exists would answer), for the user's indices before any label was joined."""
    none = {"doc_count": 0}
    got: dict[str, Any] = {**none, "delays": {"buckets": [dict(none) for _ in range(len(DELAY_EDGES) + 1)]}}
    if ref.task == "regression":
        got.update(error={"count": 0}, abs_error={"value": None})
    elif ref.scored:
        got.update(bins={"buckets": [{**none, "positive": dict(none)} for _ in range(len(ref.edges) + 1)]},
                   squares={"count": 0}, positive={**none, "score": {"value": None}})
    else:
        got["predicted"] = {"buckets": []}
    return got


PAST_THE_LIMIT = "unmapped (past the field limit)"  # a feature an index left unmapped, in _ignored
NUMERIC_TYPES = frozenset({"double", "float", "half_float", "scaled_float", "long", "integer", "short", "byte",
                           "unsigned_long"})
AGGREGATABLE = {  # the mapped types whose aggregations read a feature of each baseline kind as the baseline means it
    "numeric": NUMERIC_TYPES,
    "boolean": frozenset({"boolean"}),
    "categorical": frozenset({"keyword", "constant_keyword", "wildcard"}),
    "text": frozenset({"keyword", "constant_keyword", "wildcard", "text", "match_only_text"}),
    "embedding": NUMERIC_TYPES,
}


def _segment_aggs(key: str, seg: ColumnBaseline, sub: dict[str, Any]) -> dict[str, Any]:
    """A segment feature's buckets as the local kernel forms them (:func:`analyzers.core.versions.segment_value_keys`):
    its major categories, the other known ones, the unseen ones, the missing; ``sub`` nested in each."""
    f, major = seg.field, major_categories(seg)
    known = list(seg.categories or {})
    rest = [k for k in known if k not in set(major)]
    aggs: dict[str, Any] = {f"{key}_missing": {"missing": {"field": f}, "aggs": sub},
                            f"{key}_unseen": {"filter": {"bool": {"filter": [{"exists": {"field": f}}],
                                                                  "must_not": [{"terms": {f: known}}] if known else []}},
                                              "aggs": sub}}
    if major:
        aggs[f"{key}_major"] = {"terms": {"field": f, "include": major, "size": len(major)}, "aggs": sub}
    if rest:
        aggs[f"{key}_other"] = {"filter": {"terms": {f: rest}}, "aggs": sub}
    return aggs


def _segment_buckets(key: str, seg: ColumnBaseline, found: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(segment value, its bucket) of :func:`_segment_aggs`' answer, empty buckets left out."""
    out = [(str(b.get("key_as_string", b["key"])).lower() if seg.kind == "boolean" else str(b["key"]), b)
           for b in found.get(f"{key}_major", {}).get("buckets", [])]
    for name, value in (("other", OTHER), ("unseen", UNSEEN), ("missing", MISSING)):
        if f"{key}_{name}" in found:
            out.append((value, found[f"{key}_{name}"]))
    return [(value, b) for value, b in out if b["doc_count"]]


def _days(start: str, end: str) -> set[str]:
    """The ``YYYY.MM.DD`` suffixes of the daily indices that can hold records of ``[start, end)``."""
    first, last = c.parse_time(start).date(), (c.parse_time(end) - timedelta(microseconds=1)).date()
    return {(first + timedelta(days=d)).strftime("%Y.%m.%d") for d in range((last - first).days + 1)}


def _ranges(edges: list[float], first: float | None) -> list[dict[str, float]]:
    """``range`` aggregation ranges for the bins of ``bin_index``: below the first edge (from ``first``), between
    each pair, and from the last edge up."""
    ranges: list[dict[str, float]] = [{"to": edges[0]} if first is None else {"from": first, "to": edges[0]}]
    ranges += [{"from": lo, "to": hi} for lo, hi in zip(edges, edges[1:])]
    ranges.append({"from": edges[-1]})
    return ranges


def _problem_query(col: ColumnBaseline, problem: str, f: str, edges: list[float] | None) -> dict[str, Any]:
    """The records with ``problem`` in ``col`` (at field ``f``, with bin ``edges``), as the profile's aggregations
    count them."""
    flagged, refused = {"term": {"_ignored": f}}, {"term": {REFUSED_FIELDS: f}}
    if problem == "missing":
        return {"bool": {"must_not": [{"exists": {"field": f}}, flagged, refused]}}
    if problem == "mismatch":
        return _any(flagged, refused) if col.kind == "numeric" else refused
    if problem == "unseen":
        known = list(col.categories or {})
        new = {"bool": {"filter": [{"exists": {"field": f}}],
                        "must_not": [{"terms": {f: known}}] if known else []}}
        return _any(new, flagged)
    if problem == "out_of_range":
        edges = edges or []
        return _any({"range": {f: {"lt": edges[0]}}}, {"range": {f: {"gte": edges[-1]}}})
    raise ValueError(f"no query for problem {problem!r}")


def _any(*queries: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"should": list(queries), "minimum_should_match": 1}}


def _hours_of_week(buckets: list[dict[str, Any]]) -> dict[str, int]:
    """Records per UTC hour of the week (Monday 00h is 0), from an hourly date histogram (epoch ms keys;
    1970-01-01 was a Thursday, hour 72 of its week)."""
    out: dict[str, int] = {}
    for b in buckets:
        hour = str((int(b["key"]) // 3_600_000 + 72) % 168)
        out[hour] = out.get(hour, 0) + b["doc_count"]
    return out


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "big")


def _buckets(col: ColumnBaseline) -> int:
    if col.kind == "numeric":
        return len(col.edges or []) + 3
    if col.kind in ("boolean", "text"):
        return 4
    return len(col.categories or {}) + UNSEEN_EXAMPLES + 2


def _groups(cols: list[ColumnBaseline]) -> list[list[ColumnBaseline]]:
    """Columns packed into requests so that no response exceeds the bucket budget."""
    groups: list[list[ColumnBaseline]] = []
    used = BUCKET_BUDGET
    for col in cols:
        need = _buckets(col)
        if used + need > BUCKET_BUDGET:
            groups.append([])
            used = 0
        groups[-1].append(col)
        used += need
    return groups


def _range(f: str, ranges: list[dict[str, float]], shield: bool) -> dict[str, Any]:
    """A ``range`` aggregation; ``shield``ed under a ``match_all`` filter for the user's own indices: OpenSearch
    2.x answers a top-level ``range`` on a ``float`` field (what dynamic mapping makes of a JSON fraction) over
    a segment the query matches whole with an ArrayIndexOutOfBoundsException (its filter-rewrite shortcut reads
    the 4-byte points as 8), and skips that shortcut for an aggregation under another. Same counts either way."""
    agg = {"range": {"field": f, "ranges": ranges}}
    return {"filter": {"match_all": {}}, "aggs": {"r": agg}} if shield else agg


def _range_buckets(found: dict[str, Any]) -> list[dict[str, Any]]:
    """The buckets of :func:`_range`'s aggregation, shielded or not."""
    return found.get("r", found).get("buckets", [])


def _column_aggs(key: str, col: ColumnBaseline, f: str, edges: list[float] | None,
                 shield: bool = False) -> dict[str, Any]:
    aggs: dict[str, Any] = {
        f"{key}_exists": {"filter": {"exists": {"field": f}}},
        # values the engine did not index (``ignore_malformed``, ``ignore_above``): flagged in ``_ignored``
        f"{key}_ignored": {"filter": {"term": {"_ignored": f}}},
        # values of another type, kept aside when the record was indexed (logging_adapter.refit)
        f"{key}_refused": {"filter": {"term": {REFUSED_FIELDS: f}}},
    }
    if col.kind == "numeric":
        ranges = _ranges(edges, first=None) if edges else [{}]
        aggs[f"{key}_bins"] = _range(f, ranges, shield)
        aggs[f"{key}_stats"] = {"extended_stats": {"field": f}}
    elif col.kind == "boolean":
        aggs[f"{key}_terms"] = {"terms": {"field": f, "size": 3}}
    elif col.kind == "categorical":
        known = list(col.categories or {})
        if known:
            aggs[f"{key}_known"] = {"terms": {"field": f, "include": known, "size": len(known)}}
        aggs[f"{key}_unseen"] = {"terms": {"field": f, "size": UNSEEN_EXAMPLES,
                                           **({"exclude": known} if known else {})}}
    return aggs


def _read_column(key: str, col: ColumnBaseline, aggs: dict[str, Any]) -> ColumnProfile:
    values = aggs[f"{key}_exists"]["doc_count"]
    ignored = aggs[f"{key}_ignored"]["doc_count"]
    refused = aggs[f"{key}_refused"]["doc_count"]
    prof = ColumnProfile(kind=col.kind, present=values + ignored + refused, mismatched=refused)
    if refused:
        prof.mismatch_examples = ["(value of another type, kept unindexed)"]
    if col.kind == "numeric":
        # Elasticsearch indexes no nulls: a null reads as absent (the missing rate is the same).
        prof.mismatched += ignored
        prof.bins = [b["doc_count"] for b in _range_buckets(aggs[f"{key}_bins"])]
        stats = aggs[f"{key}_stats"]
        if stats.get("count"):
            prof.min, prof.max = stats["min"], stats["max"]
            prof.sum, prof.sumsq = stats["sum"], stats["sum_of_squares"]
        if ignored:
            prof.mismatch_examples = ["(value the numeric mapping refused)"]
        return prof
    if col.kind == "text":
        return prof
    if col.kind == "embedding":  # an array of strings, refused by the float mapping; wrong lengths: the sample
        prof.mismatched += ignored
        return prof
    if col.kind == "boolean":
        for b in aggs[f"{key}_terms"]["buckets"]:
            name = b.get("key_as_string") or str(b["key"]).lower()
            prof.categories[name] = prof.categories.get(name, 0) + b["doc_count"]
        return prof
    known = aggs.get(f"{key}_known", {"buckets": []})
    prof.categories = {b["key"]: b["doc_count"] for b in known["buckets"] if b["doc_count"]}
    unseen = aggs[f"{key}_unseen"]
    prof.unseen_values = {str(b.get("key_as_string", b["key"])): b["doc_count"] for b in unseen["buckets"]}
    prof.unseen = sum(prof.unseen_values.values()) + unseen.get("sum_other_doc_count", 0) + ignored
    if len(prof.unseen_values) > UNSEEN_KEEP:
        prof.unseen_values = dict(sorted(prof.unseen_values.items(), key=lambda kv: -kv[1])[:UNSEEN_KEEP])
    return prof


def _labelled_aggs(ref: QualityReference) -> dict[str, Any]:
    """The sub-aggregations of labelled predictions (outcome joined) that :func:`_read_labelled` reads."""
    score = c.column_field(ref.column)
    labelled: dict[str, Any] = {"delays": {"range": {"field": c.OUTCOME_DELAY_S,
                                                     "ranges": _ranges(DELAY_EDGES, first=0.0)}}}
    if ref.task == "regression":
        labelled["error"] = {"extended_stats": {"field": c.OUTCOME_ERROR}}
        labelled["abs_error"] = {"sum": {"field": c.OUTCOME_ABS_ERROR}}
    elif ref.scored:
        labelled["bins"] = {"range": {"field": score, "ranges": _ranges(ref.edges, first=None)},
                            "aggs": {"positive": {"filter": {"term": {c.OUTCOME_POSITIVE: True}}}}}
        labelled["squares"] = {"extended_stats": {"field": score}}
        labelled["positive"] = {"filter": {"term": {c.OUTCOME_POSITIVE: True}},
                                "aggs": {"score": {"sum": {"field": score}}}}
    else:
        labelled["predicted"] = {"terms": {"field": score, "size": 200},
                                 "aggs": {"actual": {"terms": {"field": c.OUTCOME_ACTUAL, "size": 200}}}}
    return labelled


def _read_labelled(prof: QualityProfile, got: dict[str, Any], ref: QualityReference) -> QualityProfile:
    """The labelled counts of ``got`` (a bucket of :func:`_labelled_aggs`) into ``prof``."""
    prof.labelled = got["doc_count"]
    prof.delays = {str(i): b["doc_count"] for i, b in enumerate(got["delays"]["buckets"]) if b["doc_count"]}
    if ref.task == "regression":
        err = got["error"]
        prof.errors = err.get("count") or 0
        prof.error_sum, prof.sq_error_sum = err.get("sum") or 0.0, err.get("sum_of_squares") or 0.0
        prof.abs_error_sum = got["abs_error"].get("value") or 0.0
    elif ref.scored:
        prof.positives = [b["positive"]["doc_count"] for b in got["bins"]["buckets"]]
        prof.negatives = [b["doc_count"] - b["positive"]["doc_count"] for b in got["bins"]["buckets"]]
        n_pos = got["positive"]["doc_count"]
        squares = got["squares"].get("sum_of_squares") or 0.0
        # sum of (score - outcome)^2 = sum of score^2 - 2 * sum of positives' scores + positives
        prof.brier = squares - 2 * (got["positive"]["score"].get("value") or 0.0) + n_pos
    else:
        prof.confusion = {str(b.get("key_as_string", b["key"])): {a["key"]: a["doc_count"] for a in b["actual"]["buckets"]}
                          for b in got["predicted"]["buckets"]}
    return prof


def _positive_query(groups: GroupReference) -> dict[str, Any]:
    """The predictions :meth:`GroupReference.is_positive` calls positive, as a query."""
    field = c.column_field(groups.column)
    if groups.threshold is not None:
        return {"range": {field: {"gte": groups.threshold}}}
    return {"term": {field: groups.positive}}
