"""A synthetic model's training data and production windows, with and without incidents.

Realistic on purpose: natural nulls, a long-tail categorical (Zipf, thousands of
values, many seen once), integer and zero-inflated numerics, free text drawn from
a Zipf vocabulary (rare words included), and a score.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from logging_adapter import contract as c

WORDS = np.array([f"w{i}" for i in range(3000)])
_WORD_P = 1.0 / np.arange(1, len(WORDS) + 1) ** 1.1
_WORD_P /= _WORD_P.sum()
COUNTRIES = np.array(["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL", "SE", "AT"])
_COUNTRY_P = np.array([30, 20, 15, 10, 8, 6, 5, 3, 2, 1], dtype=float) / 100


def _letters(i: np.ndarray) -> np.ndarray:
    """Numbers spelled in letters, so the tokenizer (letters only) keeps them as words."""
    alphabet = np.array(list("abcdefghij"))
    return np.array(["".join(alphabet[int(d)] for d in str(k)) for k in i])


WORDS = np.char.add("w", _letters(np.arange(len(WORDS))))


def table(n: int, seed: int = 0) -> pd.DataFrame:
    """n rows from the training distribution."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 0.8, n)
    age = rng.normal(40, 12, n).round(0)
    age[rng.random(n) < 0.03] = np.nan  # natural nulls
    visits = np.where(rng.random(n) < 0.4, 0, rng.poisson(4, n)).astype(float)
    hour = rng.integers(0, 24, n).astype(float)
    country = rng.choice(COUNTRIES, n, p=_COUNTRY_P).astype(object)
    country[rng.random(n) < 0.01] = None
    merchant = np.char.add("m", rng.zipf(1.3, n).clip(max=10**7).astype(str)).astype(object)
    is_member = rng.random(n) < 0.3
    words = rng.choice(WORDS, (n, 8), p=_WORD_P)
    query = np.array([" ".join(row[: rng.integers(3, 9)]) for row in words], dtype=object)
    logit = 0.02 * (amount - 20) + 0.5 * is_member - 0.01 * (age - 40)
    score = 1 / (1 + np.exp(-np.nan_to_num(logit)))
    return pd.DataFrame({
        "amount": amount.round(2), "age": age, "visits": visits, "hour": hour, "country": country,
        "merchant": merchant, "is_member": is_member, "query": query, "score": score.round(4),
    })


def records(frame: pd.DataFrame, *, model: str = "checkout-risk", version: str = "7",
            start: str = "2026-11-22T07:00:00") -> list[dict]:
    """Prediction records (nested form) for the rows of a table; NaN becomes null, None stays null."""
    base = pd.Timestamp(start, tz="UTC")
    out = []
    features = [col for col in frame.columns if col != "score"]
    for i, row in enumerate(frame.to_dict("records")):
        feats = {k: (None if isinstance(v, float) and np.isnan(v) else _native(v))
                 for k, v in row.items() if k in features}
        out.append({
            "@timestamp": c.utc_iso((base + pd.Timedelta(seconds=i)).to_pydatetime()),
            "message": "prediction",
            "predwatch": {"model": {"name": model, "version": version}, "prediction_id": f"p-{start}-{i}",
                          "features": feats, "prediction": _native(row["score"])},
        })
    return out


def _native(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


KINDS = {"query": "text"}
