"""The alert budget: windows already profiled, judged again under other thresholds, counted as incidents a week.

A threshold is tuned against what it would have said, not against a guess: the profiles of past windows (stored
by the daemon, or counted again from local files) are judged under the current ``[checks]``/``[features]`` and
under the changed ones, the same way the daemon and ``predwatch check`` judge them (:func:`analyze` against
training, :func:`recent_results` against the same window on the previous days), and the incidents each setting
would have opened are counted per check, model and ISO week. Nothing here reads or writes anything.
"""
from __future__ import annotations

import copy
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from logging_adapter.contract import parse_time, utc_iso

from .baseline import Baseline
from .config import CheckConfig
from .incidents import DEFAULT_GAP, Incident, incidents_of
from .profile import WindowProfile
from .reference import recent_results
from .window import WindowResult, analyze

SETTABLE = ("checks", "features")  # the tables of predwatch.toml a backtest may change
ALL_CHECKS = "*"  # the row of every check together: a model's incidents in a week


def setting(text: str) -> dict[str, Any]:
    """One ``--set`` (``checks.distribution_shift.warning=0.2``) as the nested table it stands for; the value is
    read as a TOML value (``0.2``, ``false``). Raises ValueError saying what is wrong with it.

    >>> setting("features.amount.out_of_range.enabled=false")
    {'features': {'amount': {'out_of_range': {'enabled': False}}}}
    """
    key, sep, value = text.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or not all(parts) or not value.strip():
        raise ValueError("not KEY=VALUE (e.g. checks.distribution_shift.warning=0.2)")
    if parts[0] not in SETTABLE:
        raise ValueError(f"only {' and '.join(t + '.*' for t in SETTABLE)} can be changed")
    expected = 4 if parts[0] == "features" else 2 if parts[1:] == ["fdr"] else 3
    if len(parts) != expected:
        shape = ("features.FEATURE.CHECK.(warning|critical|enabled)" if parts[0] == "features"
                 else "checks.CHECK.(warning|critical|enabled) or checks.fdr")
        raise ValueError(f"not of the form {shape}")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        raise ValueError(f"{value.strip()!r} is not a number or true/false") from None
    table: dict[str, Any] = {parts[-1]: parsed}
    for part in reversed(parts[:-1]):
        table = {part: table}
    return table


def overrides_table(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``[checks]``/``[features]`` tables of an overrides file; anything else in it is refused."""
    other = sorted(set(doc) - set(SETTABLE))
    if other:
        raise ValueError(f"only [checks] and [features] tables can be overridden, not {', '.join(other)}")
    return doc


def merged(base: dict[str, Any], *changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with each change laid over it, table by table (neither is modified)."""
    out = copy.deepcopy(base)
    for change in changes:
        _lay(out, change)
    return out


def _lay(into: dict[str, Any], change: dict[str, Any]) -> None:
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _lay(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def changed_config(raw: dict[str, Any], *changes: dict[str, Any]) -> CheckConfig:
    """The thresholds of predwatch.toml's tables ``raw`` with ``changes`` laid over them, read by the one parser
    of those tables (:meth:`CheckConfig.from_dict`), so a change means what the same lines in the file would."""
    return CheckConfig.from_dict(merged(raw, *changes))


@dataclass
class Window:
    """One analysed window: its span and what was counted in it."""

    start: datetime
    end: datetime
    profile: WindowProfile


def replay(windows: Sequence[Window], baseline: Baseline, config: CheckConfig, recent_days: int,
           history: Sequence[Window] = ()) -> list[WindowResult]:
    """Each window judged under ``config``, against training and against the same window on the previous
    ``recent_days`` days (among ``windows`` and the earlier ``history``), as the daemon and ``predwatch check``
    judge it. In time order."""
    by_start = {w.start: w for w in [*history, *windows]}
    out = []
    for w in sorted(windows, key=lambda w: w.start):
        result = analyze(w.profile, baseline, config)
        result.bounds = (utc_iso(w.start), utc_iso(w.end))
        if recent_days and w.profile.records:
            earlier = [by_start[s].profile for s in (w.start - timedelta(days=d) for d in range(1, recent_days + 1))
                       if s in by_start]
            result.recent = recent_results(w.profile, baseline, earlier, config)
        out.append(result)
    return out


def week_of(when: str | datetime) -> str:
    """The ISO week of a time, as ``2026-W45``."""
    year, week, _ = (parse_time(when) if isinstance(when, str) else when).isocalendar()
    return f"{year}-W{week:02d}"


def reference_family(reference: str) -> str:
    """"training, same hours of day" is training; what a daemon's ``alert_on`` names."""
    return reference.split(",")[0]


@dataclass
class WeekCount:
    """Incidents one check opened in one model-week, under the current and under the changed thresholds."""

    model: str
    week: str
    check: str
    reference: str
    current: int
    changed: int

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "week": self.week, "check": self.check, "reference": self.reference,
                "current": self.current, "changed": self.changed}


def weekly_counts(weeks: dict[str, list[str]], current: Sequence[Incident],
                  changed: Sequence[Incident]) -> list[WeekCount]:
    """Per (check, reference, model), one row for every week of that model's windows (``weeks``: model -> its
    weeks, quiet ones included: a budget counts the weeks without an incident too), for the checks that opened an
    incident under either setting, led by every check together (``check`` "*": the budget). An incident counts
    in the week it opened."""
    counts: dict[tuple[str, str, str, str], list[int]] = {}
    for column, incidents in enumerate((current, changed)):
        for i in incidents:
            for check in (ALL_CHECKS, i.check):
                key = (check, reference_family(i.reference), i.model or "", week_of(i.start))
                counts.setdefault(key, [0, 0])[column] += 1
    rows = []
    for check, reference, model in sorted({k[:3] for k in counts}, key=lambda k: (k[1] != "training", k)):
        for week in sorted(set(weeks.get(model, [])) | {k[3] for k in counts if k[:3] == (check, reference, model)}):
            now, then = counts.get((check, reference, model, week), [0, 0])
            rows.append(WeekCount(model, week, check, reference, now, then))
    return rows


def backtest(windows: Sequence[Window], baseline: Baseline, current: CheckConfig, changed: CheckConfig, *,
             recent_days: int, gap: int = DEFAULT_GAP, history: Sequence[Window] = ()
             ) -> tuple[list[WindowResult], list[Incident], list[Incident]]:
    """One model version's windows under the current thresholds (returned, for the features they judged), and
    the incidents under each of the two settings."""
    now = replay(windows, baseline, current, recent_days, history)
    return now, incidents_of(now, gap), incidents_of(replay(windows, baseline, changed, recent_days, history), gap)
