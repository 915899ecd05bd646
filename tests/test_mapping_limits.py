"""Records are never refused for their number of keys nor for a type the mapping refuses: the refused values are
kept aside unindexed, counted, and a baseline feature among them reads as a type mismatch, as local files say.
On the real Elasticsearch node and the real OpenSearch node (which has no ``ignore_dynamic_beyond_limit``)."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

import orjson

import synth
from analyzers.core.window import analyze
from analyzers.sources.elastic import EsWindowProfiler
from analyzers.sources.local import LocalProfiler
from analyzers.sources.jsonl import read_predictions
from analyzers.store.baselines import store_baseline
from logging_adapter.bulk import doc_from_line, send_bulk
from logging_adapter.templates import TOTAL_FIELDS_LIMIT
from test_es_analyzers import T0, frame_records


def mapped_fields(props: dict) -> int:
    return sum(1 + mapped_fields(spec.get("properties", {})) for spec in props.values())


def ship(cluster, records: list[dict]) -> Counter:
    docs = [doc_from_line(orjson.dumps(r), cluster.prefix) for r in records]
    stats: Counter = Counter()
    for i in range(0, len(docs), 200):
        out = send_bulk(cluster.client, docs[i:i + 200])
        assert not out.retry, out.error
        stats.update(created=out.created, duplicates=out.duplicates, rejected=len(out.rejected),
                     refitted=out.refitted)
    cluster.refresh()
    return stats


def test_a_wide_model_loses_no_record_to_the_field_limit(each_engine):
    cluster = each_engine
    """A key per user: every record adds 60 new keys, 150 records add 9,000, far past the limit."""
    records = frame_records(synth.table(150, seed=600), T0, 3000)
    for i, rec in enumerate(records):
        rec["predwatch"]["features"].update({f"user_{i}_{k}": k for k in range(60)})
    records[-1]["predwatch"]["features"]["new_signal"] = 1.5  # a legitimate new feature, late
    stats = ship(cluster, records)
    assert stats["created"] == 150 and stats["rejected"] == 0, stats
    docs = cluster.docs("predictions-*", size=200)
    assert len(docs) == 150 and len({d["_id"] for d in docs}) == 150
    last = next(d["_source"] for d in docs if d["_id"] == records[-1]["predwatch"]["prediction_id"])
    kept = {**last["predwatch"]["features"], **last["predwatch"].get("unindexed", {}).get("features", {})}
    assert kept["new_signal"] == 1.5, "kept, indexed or aside"
    for spec in cluster.client.indices.get_mapping(index=f"{cluster.prefix}-predictions-*").body.values():
        assert mapped_fields(spec["mappings"]["properties"]) <= TOTAL_FIELDS_LIMIT, "the mapping stays bounded"
    if stats["refitted"]:  # an engine that refuses past the limit: the keys beyond it are counted
        assert sum(d["_source"]["predwatch"].get("unindexed_keys", 0) for d in docs) > 0


def test_values_the_mapping_refuses_are_indexed_and_counted_as_type_mismatches(each_engine, baseline, tmp_path):
    cluster = each_engine
    store_baseline(cluster.client, baseline, cluster.prefix)  # is_member typed boolean, country keyword
    records = frame_records(synth.table(400, seed=601), T0, 3000)
    for rec in records[:40]:
        rec["predwatch"]["features"]["is_member"] = "yes"  # a boolean feature sent as text
    for rec in records[40:60]:
        rec["predwatch"]["features"]["country"] = {"code": "DE"}  # an object in a categorical feature
    stats = ship(cluster, records)
    assert stats["created"] == 400 and stats["rejected"] == 0 and stats["refitted"] == 60, stats
    profile = EsWindowProfiler(cluster.client, baseline, prefix=cluster.prefix).profile(
        T0.isoformat(), (T0 + timedelta(hours=1)).isoformat(), "7")
    local = LocalProfiler(baseline).profile(read_predictions(records))
    for feature, bad in (("is_member", 40), ("country", 0)):  # an object's keys are other features: absent
        es_col, local_col = profile.columns[feature], local.columns[feature]
        assert es_col.mismatched == local_col.mismatched == bad, feature
        assert es_col.present - es_col.nulls == local_col.present - local_col.nulls, feature  # (no null is indexed)
    flagged = {(r.check, r.feature) for r in analyze(profile, baseline).results if r.status != "ok"}
    assert {("type_mismatch", "is_member"), ("missing_feature", "country")} <= flagged, flagged
