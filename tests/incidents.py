"""Incidents injected into a window drawn from the training distribution (see synth.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from synth import table


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.random.Generator]:
    return table(n, seed=seed), np.random.default_rng(seed + 1000)


def feature_vanishes(n, seed):
    w, _ = _frame(n, seed)
    return w.drop(columns=["age"]), ("missing_feature", "age")


def null_rate_jumps(n, seed):
    w, rng = _frame(n, seed)
    w.loc[rng.random(n) < 0.3, "country"] = None
    return w, ("missing_feature", "country")


def new_category_takes_a_tenth(n, seed):
    w, rng = _frame(n, seed)
    w.loc[rng.random(n) < 0.1, "country"] = "XX"
    return w, ("unseen_category", "country")


def rare_category_becomes_common(n, seed):
    w, rng = _frame(n, seed)
    w.loc[rng.random(n) < 0.2, "country"] = "AT"  # 1% in training
    return w, ("distribution_shift", "country")


def mean_shifts(n, seed):
    w, _ = _frame(n, seed)
    w["age"] = w["age"] + 6  # half a standard deviation
    return w, ("distribution_shift", "age")


def spread_grows(n, seed):
    w, _ = _frame(n, seed)
    mean = w["amount"].mean()
    w["amount"] = (mean + (w["amount"] - mean) * 1.8).clip(lower=0.01)
    return w, ("distribution_shift", "amount")


def unit_changes(n, seed):
    w, _ = _frame(n, seed)
    w["amount"] = w["amount"] * 100  # euros to cents
    return w, ("out_of_range", "amount")


def a_third_of_words_oov(n, seed):
    w, rng = _frame(n, seed)
    w["query"] = [" ".join(t if rng.random() > 0.34 else "zz" + t for t in q.split()) for q in w["query"]]
    return w, ("oov_rate", "query")


def scores_go_wrong(n, seed):
    w, _ = _frame(n, seed)
    w["score"] = (1 - w["score"]).round(4)
    return w, ("prediction_shift", "prediction")


def strings_in_numeric(n, seed):
    w, rng = _frame(n, seed)
    w["visits"] = w["visits"].astype(object)
    mask = rng.random(n) < 0.2
    w.loc[mask, "visits"] = [str(v) for v in w.loc[mask, "visits"]]
    return w, ("type_mismatch", "visits")


ALL = [feature_vanishes, null_rate_jumps, new_category_takes_a_tenth, rare_category_becomes_common, mean_shifts,
       spread_grows, unit_changes, a_third_of_words_oov, scores_go_wrong, strings_in_numeric]
