"""Joint shifts and embeddings (analyzers.core.joint), on synthetic data where the truth is known.

No cluster: pure statistics. Every generator is seeded. A "finding" here is what the check registry would raise
for a window holding this one test: effect at or above the warning level and p-value at or below the
false-discovery rate (0.01; with more tests in a window, Benjamini-Hochberg only makes it harder).
"""
from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import synth  # noqa: E402

from analyzers.core.joint import (  # noqa: E402
    DEFAULT_LEVELS,
    EmbeddingReference,
    JointReference,
    RowSample,
    embedding_length,
    embedding_shift,
    fit_embedding_reference,
    fit_joint_reference,
    key_hash,
    multivariate_shift,
)

FDR = 0.01
MV_WARNING = DEFAULT_LEVELS["multivariate_shift"][0]
EMB_WARNING = DEFAULT_LEVELS["embedding_shift"][0]


def is_finding(m, warning: float) -> bool:
    return m is not None and m.value >= warning and m.p_value is not None and m.p_value <= FDR


# -- tabular data: two correlated inputs, a segment that sets a numeric's level, natural nulls ------------------------

KINDS = {"x1": "numeric", "x2": "numeric", "amount": "numeric", "visits": "numeric", "level": "numeric",
         "segment": "categorical", "country": "categorical", "member": "boolean"}
COUNTRIES = np.array(["DE", "FR", "US", "GB", "NL", "ES"])
COUNTRY_P = np.array([35, 25, 15, 10, 10, 5]) / 100


def table(n: int, seed: int, *, independent: bool = False, inverted: bool = False, rho: float = 0.8) -> pd.DataFrame:
    """Training-like rows. ``independent``: x1 and x2 (correlation ``rho``, 0.8 in training) drawn apart, each
    marginal N(0, 1) as before. ``inverted``: segment A's level is now B's and B's A's (A and B 40% each, so the level's
    distribution and the segment shares are unchanged). Nulls: 5% in x1, amount, visits, country, member."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n) if independent else rho * x1 + np.sqrt(1 - rho ** 2) * rng.normal(size=n)
    amount = rng.lognormal(3, 0.8, n).round(2)
    visits = rng.poisson(3, n).astype(float)
    segment = rng.choice(np.array(["A", "B", "C"]), n, p=[0.4, 0.4, 0.2])
    means = {"A": -1.0, "B": 1.0, "C": 0.0} if inverted else {"A": 1.0, "B": -1.0, "C": 0.0}
    level = np.array([means[s] for s in segment]) + 0.6 * rng.normal(size=n)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "amount": amount, "visits": visits, "level": level,
                          "segment": segment.astype(object), "country": rng.choice(COUNTRIES, n, p=COUNTRY_P).astype(object),
                          "member": (rng.random(n) < 0.3).astype(object)})
    for col in ("x1", "amount", "visits", "country", "member"):
        frame.loc[rng.random(n) < 0.05, col] = None
    return frame


def rows(frame: pd.DataFrame) -> list[dict]:
    """Records as the checks receive them: JSON values, nulls as None."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()}
            for rec in frame.to_dict("records")]


@pytest.fixture(scope="module")
def joint_reference() -> JointReference:
    ref = fit_joint_reference(table(50_000, seed=1), KINDS, seed=0)
    assert ref is not None
    return ref


def test_correlated_inputs_made_independent_are_caught(joint_reference):
    window = table(2000, seed=11, independent=True)
    assert abs(window["x2"].std() - 1) < 0.05 and abs(window["x2"].mean()) < 0.06  # the marginal is unchanged
    m = multivariate_shift(joint_reference, rows(window))
    assert is_finding(m, MV_WARNING) and m.p_value < 1e-3
    assert m.value >= DEFAULT_LEVELS["multivariate_shift"][1]  # 0.8 -> 0.0 is critical
    assert round(m.expected, 1) == 0.8 and abs(m.observed) < 0.1
    assert list(m.contributions)[:2] in (["x1", "x2"], ["x2", "x1"]) and m.contributions["x1"] > 0.4
    assert "x1 ~ x2: +0.80 in training" in m.detail


def test_a_segment_mix_inverted_with_marginals_kept_is_caught(joint_reference):
    before, after = table(2000, seed=12), table(2000, seed=12, inverted=True)
    assert (before["segment"] == after["segment"]).all()  # the same segments, the same shares
    qs = np.linspace(0.05, 0.95, 19)
    assert np.abs(np.quantile(before["level"], qs) - np.quantile(after["level"], qs)).max() < 0.15  # same marginal
    m = multivariate_shift(joint_reference, rows(after))
    assert is_finding(m, MV_WARNING) and m.p_value < 1e-3
    assert set(list(m.contributions)[:2]) == {"segment", "level"}
    assert "level ~ segment=" in m.detail
    assert not is_finding(multivariate_shift(joint_reference, rows(before)), MV_WARNING)


def test_windows_from_training_raise_no_multivariate_shift(joint_reference):
    """Natural nulls (5% in five inputs), two categoricals and a boolean, 20 windows each of 500 and 5,000 rows and
    one of 50,000: none is a finding, and the effect stays below the warning level even where the p-value is
    small (a large window against a finite reference)."""
    measured = [multivariate_shift(joint_reference, rows(table(n, seed=100 + s)))
                for n in (500, 5000) for s in range(20)]
    measured.append(multivariate_shift(joint_reference, rows(table(50_000, seed=99))))
    assert all(m is not None for m in measured)
    assert not [m for m in measured if is_finding(m, MV_WARNING)]
    assert max(m.value for m in measured) < MV_WARNING
    assert measured[-1].value < MV_WARNING / 2 and measured[-1].n_window == 50_000


def test_multivariate_p_values_account_for_the_finite_reference():
    """Over independent training samples and windows, p-values are not too small: at most 2 of 25 at 0.01 (the
    Bonferroni combination over pairs is conservative; 1 of 100 was measured at 2,000 rows). Windows judged
    against one fixed reference share its sampling error, which the effect level, not the p-value, absorbs."""
    p_values = [multivariate_shift(fit_joint_reference(table(5000, seed=1000 + s), KINDS, seed=s),
                                   rows(table(1000, seed=2000 + s))).p_value for s in range(25)]
    assert sum(p <= 0.01 for p in p_values) <= 2 and sum(p <= 0.05 for p in p_values) <= 5
    assert np.median(p_values) > 0.3


def test_marginal_shifts_are_left_to_the_per_feature_checks(joint_reference):
    """A numeric rescaled, a null rate tripled, a category's share moved: the per-feature checks see these;
    the joint check, which compares how inputs move together, stays quiet."""
    window = table(5000, seed=13)
    window["amount"] = window["amount"] * 3 + 50
    window["x2"] = window["x2"] * 2 - 1
    window.loc[np.random.default_rng(0).random(len(window)) < 0.15, "visits"] = None
    window.loc[window["country"] == "FR", "country"] = "DE"
    m = multivariate_shift(joint_reference, rows(window))
    assert not is_finding(m, MV_WARNING), m.detail


def test_the_synthetic_model_training_windows_raise_nothing():
    """The shared synthetic model (long-tail merchants, integer ages with nulls, zero-inflated visits, free text,
    which the joint check leaves out)."""
    kinds = {"amount": "numeric", "age": "numeric", "visits": "numeric", "hour": "numeric",
             "country": "categorical", "merchant": "categorical", "is_member": "boolean", "query": "text"}
    ref = fit_joint_reference(synth.table(20_000, seed=1), kinds)
    assert "query" not in ref.inputs and "merchant" in ref.inputs
    for seed in range(3):
        m = multivariate_shift(ref, rows(synth.table(3000, seed=50 + seed).drop(columns=["score"])))
        assert not is_finding(m, MV_WARNING) and m.value < MV_WARNING, m.detail


def test_the_joint_reference_round_trips_to_the_same_measurement(joint_reference):
    doc = json.loads(json.dumps(joint_reference.to_dict()))
    again = JointReference.from_dict(doc)
    window = rows(table(1000, seed=14, independent=True))
    assert multivariate_shift(again, window) == multivariate_shift(joint_reference, window)
    assert len(json.dumps(doc)) < 50_000  # bounded: 18 encoded columns whatever the training size


def test_too_little_to_judge():
    assert fit_joint_reference(pd.DataFrame({"a": range(100), "t": ["some words here"] * 100}),
                               {"a": "numeric", "t": "text"}) is None
    ref = fit_joint_reference(table(2000, seed=2), KINDS)
    assert multivariate_shift(ref, rows(table(49, seed=3))) is None
    assert multivariate_shift(ref, rows(table(50, seed=3))) is not None


# -- the row sample ---------------------------------------------------------------------------------------------------

def test_row_sample_merge_is_order_independent_and_equals_one_pass():
    rng = np.random.default_rng(5)
    records = [(f"p-{i}", {"x": float(rng.normal()), "c": str(rng.choice(["a", "b"])), "v": [0.5, float(i)],
                           "n": None}) for i in range(3000)]
    first = min((key for key, _ in records), key=key_hash)  # a key that is certainly sampled, offered twice
    records.insert(1500, (first, {"x": -1.0, "c": "z", "v": [0.0, 0.0], "n": None}))
    one_pass = RowSample(k=250)
    for key, row in records:
        one_pass.add(key, row)
    parts = [RowSample(k=250) for _ in range(3)]
    for idx in rng.permutation(len(records)):
        parts[idx % 3].add(*records[idx])
    a, b, c = parts
    merged = [a.merge(b).merge(c), c.merge(a.merge(b)), b.merge(c).merge(a)]
    assert all(m.rows == one_pass.rows and m.keys == one_pass.keys for m in merged)
    assert len(one_pass) == 250 and one_pass.seen == len(records) == merged[0].seen
    back = RowSample.from_dict(json.loads(json.dumps(one_pass.to_dict())))
    assert back.rows == one_pass.rows and back.k == 250 and back.seen == one_pass.seen
    # the sample is of keys: uniform over them, so its mean index is the population's
    index = [int(key[2:]) for key in one_pass.keys]
    assert abs(np.mean(index) - 1500) < 3 * 866 / np.sqrt(250)


def test_row_sample_keeps_plain_json():
    sample = RowSample(k=5)
    sample.add("a", {"x": np.float64(1.5), "e": np.array([1.0, 2.0]), "bad": float("nan"), "i": np.int64(3)})
    (row,) = sample.rows
    assert row == {"x": 1.5, "e": [1.0, 2.0], "bad": None, "i": 3}
    json.dumps(sample.to_dict(), allow_nan=False)


# -- embeddings -------------------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def world(dim: int):
    """Topics: 6 cluster centres in a 12-dimensional subspace, isotropic noise off it; a new topic's centre
    off the subspace; the per-dimension spread; a random sign per dimension for the centroid's move."""
    w = np.random.default_rng(1000 + dim)
    basis = np.linalg.qr(w.normal(size=(dim, 12)))[0].T
    centres = w.normal(scale=2.0, size=(6, 12))
    novel = w.normal(size=dim)
    novel *= 2.0 * np.sqrt(12) / np.linalg.norm(novel)  # as far out as the known topics' centres
    signs = w.choice([-1.0, 1.0], dim)
    world_ = (basis, centres, novel, signs, None)
    spread = embeddings(10_000, dim, seed=-1, _world=world_).std(axis=0)
    return basis, centres, novel, signs, spread


def embeddings(n: int, dim: int, seed: int, *, move: float = 0.0, new_cluster: float = 0.0, _world=None):
    basis, centres, novel, signs, spread = _world or world(dim)
    rng = np.random.default_rng(seed + 10_000)
    x = (centres[rng.integers(0, 6, n)] + rng.normal(size=(n, 12))) @ basis + 0.3 * rng.normal(size=(n, dim))
    if new_cluster:
        k = int(round(new_cluster * n))
        x[:k] = novel + rng.normal(size=(k, 12)) @ basis + 0.3 * rng.normal(size=(k, dim))
    if move:
        x = x + move * spread * signs  # every dimension's mean moves by `move` of its spread
    return x


@lru_cache(maxsize=None)
def embedding_reference(dim: int) -> EmbeddingReference:
    return fit_embedding_reference(embeddings(5000, dim, seed=1), seed=0)


@pytest.mark.parametrize("dim", [32, 384])
def test_an_embedding_centroid_move_is_caught(dim):
    m = embedding_shift(embedding_reference(dim), embeddings(1000, dim, seed=21, move=0.3))
    assert is_finding(m, EMB_WARNING) and m.p_value < 1e-3
    assert m.value >= DEFAULT_LEVELS["embedding_shift"][1]


@pytest.mark.parametrize("dim", [32, 384])
def test_a_new_cluster_of_a_tenth_of_the_rows_is_caught(dim):
    m = embedding_shift(embedding_reference(dim), embeddings(1000, dim, seed=22, new_cluster=0.1))
    assert is_finding(m, EMB_WARNING) and m.p_value < 1e-3
    assert 0.06 <= m.value <= 0.14  # about the tenth of the rows that is new
    if dim == 384:
        assert next(iter(m.contributions)) == "residual"  # the new topic lies off training's principal directions


@pytest.mark.parametrize("dim,seeds", [(32, 15), (384, 8)])
def test_embedding_windows_from_training_raise_nothing(dim, seeds):
    ref = embedding_reference(dim)
    measured = [embedding_shift(ref, embeddings(n, dim, seed=100 + s)) for n in (500, 2000) for s in range(seeds)]
    measured.append(embedding_shift(ref, embeddings(50_000 if dim == 32 else 10_000, dim, seed=99)))
    assert not [m for m in measured if is_finding(m, EMB_WARNING)]
    assert max(m.value for m in measured) < EMB_WARNING
    assert measured[-1].n_window == 2000  # large windows are judged on a seeded sample


def test_the_embedding_reference_round_trips_to_the_same_measurement():
    ref = embedding_reference(32)
    doc = json.loads(json.dumps(ref.to_dict()))
    again = EmbeddingReference.from_dict(doc)
    window = embeddings(800, 32, seed=23, new_cluster=0.1)
    assert embedding_shift(again, window) == embedding_shift(ref, window)
    assert len(json.dumps(doc)) < 400_000
    with pytest.raises(ValueError):
        embedding_shift(ref, embeddings(100, 384, seed=1))
    assert embedding_shift(ref, embeddings(49, 32, seed=1)) is None


def test_embedding_length_recognises_fixed_length_arrays_of_numbers():
    vec = [0.25] * 384
    assert embedding_length([vec, None, vec, np.array(vec), tuple(vec)]) == 384
    assert embedding_length([np.zeros(8, dtype=np.float32)] * 3) == 8
    assert embedding_length([[1] * 1024, float("nan")]) == 1024
    assert embedding_length([[0.0] * 7]) is None and embedding_length([[0.0] * 1025]) is None  # out of 8..1,024
    assert embedding_length([[0.0] * 16] * 10 + [[0.0] * 12]) is None  # 91%: not one length
    assert embedding_length([[0.0] * 16] * 40 + [[0.0] * 12]) == 16  # 98%: one stray is a type mismatch later
    assert embedding_length([[True] * 16, [False] * 16]) is None  # booleans are not numbers
    assert embedding_length([["a"] * 16]) is None and embedding_length(["a", "b"]) is None
    assert embedding_length([1.0, 2.0]) is None and embedding_length([]) is None and embedding_length([None]) is None
