"""Detection that holds on cases nobody tuned to (issue 26): hourly traffic whose category mix and numeric spread
move with the hour, with thin night hours that the baseline merges with their neighbours.

The generator is this file's own: every share and spread is a smooth function of the hour of day, night traffic
is a fraction of the afternoon's, and one country is 0.3% of the traffic."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analyzers.core.baseline import build_baseline
from analyzers.core.checks import findings
from analyzers.core.window import analyze
from analyzers.sources.jsonl import read_predictions
from analyzers.sources.local import LocalProfiler

KINDS = {"device": "categorical", "channel": "categorical", "country": "categorical", "amount": "numeric",
         "basket": "numeric"}
COUNTRIES = ["DE", "FR", "IT", "ES", "NL", "BE", "AT", "PL", "SE", "LU"]
COUNTRY_SHARES = np.array([0.30, 0.20, 0.14, 0.12, 0.08, 0.06, 0.04, 0.03, 0.027, 0.003])


def volume(hour: float) -> float:
    """Relative traffic of an hour: from 01:00 to 08:00 a tenth of the afternoon's or less."""
    day = max(0.0, math.sin(math.pi * (hour - 7) / 19)) if 7 <= hour <= 26 else 0.0
    return 0.06 + 0.94 * day ** 1.5


def hourly(n: int, seed: int, hours: list[int] | None = None, day: str = "2026-11-02",
           amount_hour: int | None = None) -> pd.DataFrame:
    """``n`` records at ``hours`` (all 24 weighted by :func:`volume` when None). ``amount_hour``: the amounts are
    drawn as at that hour (a daytime distribution stamped at night)."""
    rng = np.random.default_rng(seed)
    if hours is None:
        hours = list(range(24))
    weights = np.array([volume(h) for h in hours])
    hour = rng.choice(hours, n, p=weights / weights.sum())
    frac = hour + rng.random(n)  # the hour of day with its minutes: shares move within an hour too
    night = np.exp(-((frac - 3.5) ** 2) / 8)  # the night's peak, two hours either side
    morning = np.exp(-((frac - 8.5) ** 2) / 4)  # the morning newsletter
    tablet = 0.03 + 0.12 * night
    mobile = 0.40 + 0.30 * night
    u = rng.random(n)
    device = np.where(u < tablet, "tablet", np.where(u < tablet + mobile, "mobile", "desktop"))
    email = 0.03 + 0.35 * morning
    app = 0.30 + 0.25 * night
    v = rng.random(n)
    channel = np.where(v < email, "email", np.where(v < email + app, "app", np.where(v < email + app + 0.1,
                                                                                        "partner", "web")))
    country = rng.choice(COUNTRIES, n, p=COUNTRY_SHARES / COUNTRY_SHARES.sum())
    at = frac if amount_hour is None else amount_hour + rng.random(n)
    at_night = np.exp(-((at - 3.5) ** 2) / 8)
    amount = np.round(rng.lognormal(3.4 - 0.5 * at_night, 0.5 + 0.4 * at_night), 2)  # small and spread at night
    basket = rng.poisson(2 + 1.5 * (1 - night)) + 1
    stamps = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(frac * 3600, unit="s").round("s")
    return pd.DataFrame({"ts": stamps, "device": device, "channel": channel, "country": country, "amount": amount,
                         "basket": basket, "score": np.round(rng.random(n), 4)})


def records(frame: pd.DataFrame) -> list[dict]:
    return [{"@timestamp": row.ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
             "predwatch": {"model": {"name": "shop", "version": "1"},
                           "features": {"device": row.device, "channel": row.channel, "country": row.country,
                                        "amount": row.amount, "basket": int(row.basket)},
                           "prediction": row.score}} for row in frame.itertuples()]


def training(days: int = 3, per_day: int = 8000, seed: int = 1) -> pd.DataFrame:
    return pd.concat([hourly(per_day, seed + d, day=f"2026-10-{5 + d:02d}") for d in range(days)],
                     ignore_index=True)


def baselines(train: pd.DataFrame):
    kw = dict(model="shop", version="1", kinds=KINDS, predictions=["score"])
    return build_baseline(train, time_column="ts", **kw), build_baseline(train.drop(columns=["ts"]), **kw)


def judged(baseline, frame):
    profile = LocalProfiler(baseline).profile(read_predictions(records(frame)))
    return analyze(profile, baseline).results


def found(baseline, frame) -> set[tuple[str, str]]:
    return {(f.check, f.feature) for f in findings(judged(baseline, frame))}


@pytest.fixture(scope="module")
def two_days():
    """Two days of training: 80-140 rows in each hour from 00:00 to 08:00, neighbours merged into slices."""
    return baselines(training(days=2))


@pytest.fixture(scope="module")
def one_day():
    """One day: 40-70 rows in each night hour."""
    return baselines(training(days=1))


@pytest.mark.parametrize("days", ["one_day", "two_days"])
@pytest.mark.parametrize("hour", [3, 8])
@pytest.mark.parametrize("rows", [1000, 5000])
def test_quiet_hourly_windows_raise_nothing_against_the_same_hours(request, days, hour, rows):
    """At 03:00 the device mix, the amounts and the baskets are the night's; at 08:00 the channel mix is the morning
    newsletter's. A merged slice of thin hours holds other hours' mix: each hour is judged against its own
    neighbourhood, centred on it, and what its neighbours leave uncertain (their noise, and how much they differ
    from each other) is counted in the p-values."""
    by_hour, _ = request.getfixturevalue(days)
    assert len(by_hour.time_slices["slices"]) < 24, "thin hours are merged in the stored slices"
    frame = hourly(rows, 7000 + 10 * hour + rows, [hour])
    assert found(by_hour, frame) == set(), [f.message for f in findings(judged(by_hour, frame))]


def test_daytime_amounts_stamped_at_night_are_caught_and_nothing_else(two_days):
    """Amounts that are normal for the day as a whole arrive at 03:00: caught, and only they."""
    by_hour, _ = two_days
    frame = hourly(2000, 7100, [3], amount_hour=14)
    assert found(by_hour, frame) == {("distribution_shift", "amount")}, \
        [f.message for f in findings(judged(by_hour, frame))]


def test_a_rare_category_surging_at_a_busy_hour_is_caught_against_the_same_hours():
    """A country at 0.3% of training rises to about 5% of a 2,000-record window at 14:00. At that hour training
    saw it fewer than five times: it is judged by its count in all of training (rare or not), and its share at
    that hour, with that hour's noise."""
    from analyzers.core.checks import RARE

    train = training(days=1)
    by_hour, flat = baselines(train)
    hour_14 = int(((train["ts"].dt.hour == 14) & (train["country"] == "LU")).sum())
    assert hour_14 < RARE <= by_hour.columns["country"].categories["LU"], "rare at that hour, not in training"
    frame = hourly(2000, 7200, [14])
    frame.loc[np.random.default_rng(7201).random(2000) < 0.047, "country"] = "LU"
    surge = {("category_share", "country"), ("distribution_shift", "country")}
    assert surge & found(flat, frame), "caught against all hours"
    assert surge & found(by_hour, frame), [f.message for f in findings(judged(by_hour, frame))]
    assert found(by_hour, hourly(2000, 7202, [14])) == set(), "the same hour without the surge is quiet"
