"""Window profiles: merging the profiles of two windows equals profiling their union."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import synth
from analyzers.core.baseline import bin_index, numeric_edges
from analyzers.core.profile import WindowProfile
from analyzers.sources.jsonl import read_predictions
from analyzers.sources.local import LocalProfiler

import numpy as np

values = st.one_of(
    st.none(), st.integers(-5, 500), st.floats(-10, 1000, allow_nan=False), st.sampled_from(list(synth.COUNTRIES)),
    st.text(alphabet="abcxyz ", max_size=20), st.booleans(), st.just({"nested": 1}), st.just([1, 2]),
)
feature_names = st.sampled_from(["amount", "age", "country", "merchant", "is_member", "query", "unknown"])
record = st.builds(
    lambda feats, score, ts: {"@timestamp": f"2026-11-22T07:{ts // 60:02d}:{ts % 60:02d}.000Z",
                              "predwatch": {"model": {"name": "checkout-risk", "version": "7"},
                                            "features": feats, "prediction": score}},
    st.dictionaries(feature_names, values, max_size=7),
    st.one_of(st.floats(0, 1), st.none(), st.text(max_size=3)),
    st.integers(0, 3599),
)


def profile(baseline, recs, chunk=7) -> WindowProfile:
    return LocalProfiler(baseline, chunk=chunk).profile(read_predictions(recs))


def same(a: WindowProfile, b: WindowProfile) -> None:
    """Equal, up to float rounding in the running sums (addition order differs)."""
    da, db = a.to_dict(), b.to_dict()
    for doc in (da, db):
        for col in doc["columns"].values():
            for key in ("sum", "sumsq"):
                col[key] = pytest.approx(col[key], rel=1e-9, abs=1e-9)
    diff = {name: {k: (col.get(k), db["columns"].get(name, {}).get(k)) for k in col
                   if col.get(k) != db["columns"].get(name, {}).get(k)}
            for name, col in da["columns"].items()}
    diff = {k: v for k, v in diff.items() if v}
    assert not diff, diff
    assert {k: v for k, v in da.items() if k != "columns"} == {k: v for k, v in db.items() if k != "columns"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(record, max_size=40), st.data())
def test_merge_equals_profile_of_union(baseline, recs, data):
    cut = data.draw(st.integers(0, len(recs)))
    merged = profile(baseline, recs[:cut]).merge(profile(baseline, recs[cut:]))
    same(merged, profile(baseline, recs))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(record, max_size=30), st.lists(record, max_size=30), st.lists(record, max_size=30))
def test_merge_is_associative_and_commutative_in_counts(baseline, a, b, c):
    pa, pb, pc = (profile(baseline, x) for x in (a, b, c))
    left, right = pa.merge(pb).merge(pc), pa.merge(pb.merge(pc))
    same(left, right)
    swapped = pb.merge(pa)
    for name, col in pa.merge(pb).columns.items():
        other = swapped.columns[name]
        assert (col.present, col.nulls, col.mismatched, col.bins, col.categories, col.unseen, col.tokens,
                col.oov_tokens) == (other.present, other.nulls, other.mismatched, other.bins, other.categories,
                                    other.unseen, other.tokens, other.oov_tokens)


def test_profile_round_trips_through_json(baseline):
    prof = profile(baseline, synth.records(synth.table(300, seed=3)), chunk=100)
    assert WindowProfile.from_dict(prof.to_dict()) == prof


def test_profile_counts(baseline):
    recs = synth.records(synth.table(200, seed=4))
    del recs[0]["predwatch"]["features"]["age"]
    recs[1]["predwatch"]["features"]["age"] = None
    recs[2]["predwatch"]["features"]["age"] = "forty"
    recs[3]["predwatch"]["features"]["brand_new"] = 1
    prof = profile(baseline, recs, chunk=64)
    age = prof.columns["age"]
    assert prof.records == 200 and prof.absent("age") == 1
    assert age.mismatched == 1 and age.mismatch_examples == ["forty"]
    assert age.nulls >= 1 and sum(age.bins) == age.values
    assert prof.unknown_columns == {"brand_new": 1}
    assert prof.start == "2026-11-22T07:00:00.000Z" and prof.end == "2026-11-22T07:03:19.000Z"


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200))
def test_every_training_value_falls_inside_the_edges(xs):
    arr = np.asarray(xs)
    edges = numeric_edges(arr)
    idx = bin_index(edges, arr)
    assert idx.min() >= 1 and idx.max() <= len(edges) - 1, "no training value lands in an out-of-range tail"


def test_nested_and_dotted_windows_profile_the_same(baseline):
    nested = synth.records(synth.table(100, seed=5))
    dotted = []
    for rec in nested:
        flat = {"@timestamp": rec["@timestamp"], "predwatch.model.name": "checkout-risk",
                "predwatch.prediction": rec["predwatch"]["prediction"]}
        flat.update({f"predwatch.features.{k}": v for k, v in rec["predwatch"]["features"].items()})
        dotted.append(flat)
    assert profile(baseline, nested).columns == profile(baseline, dotted).columns


@pytest.mark.parametrize("chunk", [1, 13, 1000])
def test_chunk_size_does_not_change_the_profile(baseline, chunk):
    recs = synth.records(synth.table(150, seed=6))
    same(profile(baseline, recs, chunk=chunk), profile(baseline, recs, chunk=150))


def test_equal_values_of_another_type_are_still_mismatches(baseline):
    """True == 1 == 1.0 in Python; a boolean feature logged as 1 is still the wrong type."""
    recs = synth.records(synth.table(40, seed=7))
    for i, rec in enumerate(recs):
        rec["predwatch"]["features"]["is_member"] = True if i % 2 else 1
    member = profile(baseline, recs, chunk=40).columns["is_member"]
    assert member.mismatched == 20 and member.categories == {"true": 20}
    assert member.mismatch_examples == ["1"]


def test_a_number_as_text_is_a_mismatch_and_never_out_of_range(baseline):
    """'0' in a numeric column is a type mismatch: the records that the out-of-range count names are the
    numbers in the outer bins, not the text numpy would read as 0 (found by hypothesis: a merge of two
    halves then disagreed with the whole)."""
    recs = [{"@timestamp": "2026-11-22T07:00:00.000Z",
             "predwatch": {"model": {"name": "checkout-risk", "version": "7"}, "features": {}, "prediction": p}}
            for p in (0.0, 0.0, None, "0")]
    whole = profile(baseline, recs).columns["prediction"]
    assert whole.bins[0] == 2 and whole.mismatched == 1
    assert whole.offending["out_of_range"]["country"] == {"(missing)": 2}
    for cut in range(len(recs) + 1):
        same(profile(baseline, recs[:cut]).merge(profile(baseline, recs[cut:])), profile(baseline, recs))


def test_features_in_another_key_order_give_the_same_profile(baseline):
    """A chunk whose records share one key order is transposed by position; keys in another order in some
    records (or one key fewer) must not shift any value into another column."""
    recs = synth.records(synth.table(600, seed=5))
    reordered = [dict(r, predwatch=dict(r["predwatch"], features=dict(reversed(r["predwatch"]["features"].items()))))
                 if i % 2 else r for i, r in enumerate(recs)]
    ordered = profile(baseline, recs, chunk=600)
    same(ordered, profile(baseline, reordered, chunk=600))
    same(ordered, profile(baseline, reordered, chunk=2))  # chunks of one order each, then the other
    fewer = [dict(r, predwatch=dict(r["predwatch"], features={k: v for k, v in r["predwatch"]["features"].items()
                                                              if k != "country"})) for r in recs]
    assert profile(baseline, fewer, chunk=600).columns["country"].present == 0
    age, ordered_age = profile(baseline, fewer, chunk=600).columns["age"], ordered.columns["age"]
    assert (age.present, age.nulls, age.bins, age.sum) == (ordered_age.present, ordered_age.nulls, ordered_age.bins,
                                                           ordered_age.sum)


def rounded(doc):
    """Floats to 12 significant digits, all through a document."""
    if isinstance(doc, float):
        return float(f"{doc:.12g}")
    if isinstance(doc, dict):
        return {k: rounded(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [rounded(v) for v in doc]
    return doc


def test_the_short_path_for_canonical_lines_gives_the_full_paths_profile(baseline, tmp_path, monkeypatch):
    """Lines the short path takes and lines it must leave to the full one, each in a piece of its own among
    canonical lines: the same profile and the same rejections as reading every line the long way, with most
    lines on the short path."""
    import json

    from analyzers.sources import jsonl
    from analyzers.sources.jsonl import read_jsonl, read_records

    monkeypatch.setattr(jsonl, "PIECE", 4)  # pieces of 4 lines: one line the short path refuses in each
    records = synth.records(synth.table(600, seed=77))

    def changed(i, **ns):
        return dict(records[i], predwatch=dict(records[i]["predwatch"], **ns))

    def feature(i, **features):
        return changed(i, features={**records[i]["predwatch"]["features"], **features})

    tricky = [changed(0, model={"name": "checkout-risk", "version": 7}),
              changed(1, prediction_id=12),
              feature(2, query="a {brace} [and] list"),
              feature(3, age=[1, 2]),
              changed(4, prediction={"score": 0.3}),
              dict(records[5], labels={"tenant": "eu"}),
              {"predwatch.model.name": "checkout-risk", "predwatch.features.age": 33, "@timestamp": records[6]["@timestamp"]},
              changed(7, model={"name": {"x": 1}}),
              feature(8, age=2 ** 63),  # orjson: an int; beyond what the schema decoder takes as one
              feature(9, country=2 ** 64 + 1),  # orjson: a float, and so another category
              dict(records[10], host={"name": "web-1"}),  # a top-level key the contract does not name
              {**records[11], "predwatch.features.extra": 1},  # dotted and nested at once
              changed(12, latency_ms=True), changed(13, latency_ms="12"),
              changed(14, model={"name": "checkout-risk", "version": "3", "framework": "sklearn"}),
              changed(15, features={}), changed(16, features=None),
              feature(17, country={"code": "DE"}),  # a nested feature object
              {"@timestamp": records[18]["@timestamp"], "predwatch": {"model": {"name": "checkout-risk"},
                                                                       "prediction_id": records[18]["predwatch"]["prediction_id"],
                                                                       "actual": 1}}]  # an outcome
    def dumps(record):
        return json.dumps(record).encode()

    odd = [dumps(r) for r in tricky] + [b"{not json", b"[1, 2]", b"", b"\xef\xbb\xbf" + dumps(records[19]),
                                          dumps(records[20]) + b"\r"]  # a CRLF ending
    lines = []
    for i, record in enumerate(records[30:]):
        lines += [odd[i // 3]] if i % 3 == 0 and i // 3 < len(odd) else []
        lines.append(dumps(record))
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    slow, fast = LocalProfiler(baseline), LocalProfiler(baseline)
    a = slow.windows(read_predictions(read_jsonl([path]), flat=False))
    b = fast.windows(read_records([path]))
    assert rounded(a[None].to_dict()) == rounded(b[None].to_dict())  # sums in another order: the last bits differ
    assert [(r.where, r.reason) for r in slow.rejections] == [(r.where, r.reason) for r in fast.rejections]
    assert slow.rejected == fast.rejected == 3
    assert slow.outcomes == fast.outcomes and len(fast.outcomes) == 1
    assert sum(len(chunk.columns) for chunk in read_records([path])) >= 400  # the short path was taken
