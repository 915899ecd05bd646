"""Synthetic prediction features shared by the benchmarks: 12 numeric, 6 categorical, 1 text, a score."""
from __future__ import annotations

import random

WORDS = ("red blue green shoes shirt size small large cotton wool leather cheap gift sale new classic "
         "running trail summer winter kids women men black white boots socks jacket").split()
CATEGORIES = {
    "country": ["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL"],
    "device": ["ios", "android", "web"],
    "channel": ["organic", "paid", "email", "social"],
    "tier": ["free", "plus", "pro"],
    "currency": ["EUR", "USD", "GBP", "PLN"],
    "segment": [f"s{i}" for i in range(40)],
}


def make_features(rng: random.Random) -> dict:
    """One realistic feature dict."""
    feats = {f"num_{i}": round(rng.gauss(50.0 * (i + 1), 10.0 * (i + 1)), 3) for i in range(12)}
    for name, values in CATEGORIES.items():
        feats[name] = values[min(int(rng.paretovariate(1.2)) - 1, len(values) - 1)]
    feats["query"] = " ".join(rng.choice(WORDS) for _ in range(12))
    return feats


def make_score(rng: random.Random) -> float:
    return round(rng.random(), 4)
