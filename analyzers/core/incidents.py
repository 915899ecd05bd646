"""Incidents: one episode of one problem, told once instead of once per window.

A drift that starts in June and lasts until December is one incident, not two hundred findings. An incident is
keyed by (model, version, feature, check, reference): the first window with a finding opens it, later windows
with the same finding extend it, a gap of at most ``gap`` quiet windows does not split it, and more quiet windows
than that close it. One pure function (:func:`incidents_of`) over the windows in time order, so that the local
files and any other caller that holds window results tell the same episodes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import stats
from .checks import CheckResult

DEFAULT_GAP = 1  # quiet windows an episode may skip without being split
RANK = {"warning": 1, "critical": 2}


@dataclass
class Incident:
    """One episode of one problem. ``end`` is None while it is ongoing (not closed by the last window)."""

    model: str | None
    version: str | None
    feature: str
    check: str
    reference: str
    start: str | None
    end: str | None
    last_seen: str | None  # the end of the last window with the finding, ongoing or not
    windows: int
    peak_severity: str
    peak_value: float
    message: str  # the first window's message
    latest_message: str
    window_starts: list[str | None] = field(default_factory=list)  # the windows with the finding

    @property
    def ongoing(self) -> bool:
        return self.end is None

    @property
    def id(self) -> str:
        """Deterministic: the same episode gets the same id from every run (and from every daemon)."""
        key = "\x1f".join(str(part) for part in (self.model, self.version, self.feature, self.check,
                                                 self.reference, self.start))
        return hashlib.sha256(key.encode()).hexdigest()[:24]

    def to_json(self) -> dict[str, Any]:
        """The incident as ``predwatch check --format json`` prints it (inside ``{"incident": ...}``)."""
        return {"model": self.model, "version": self.version, "feature": self.feature, "check": self.check,
                "reference": self.reference, "start": self.start, "end": self.end, "windows": self.windows,
                "peak_severity": self.peak_severity, "peak_value": stats.finite_or_none(round(self.peak_value, 6)),
                "message": self.message, "latest_message": self.latest_message, "last_seen": self.last_seen,
                "id": self.id}


@dataclass
class _Open:
    incident: Incident
    last_index: int  # the index of the last window with the finding


def incidents_of(windows: Sequence[Any], gap: int = DEFAULT_GAP) -> list[Incident]:
    """The incidents of a series of analysed windows (``WindowResult``, in time order), against training and
    against the recent days alike, sorted by start. ``gap``: quiet windows that do not split an episode."""
    if gap < 0:
        raise ValueError("gap: a number of windows, 0 or more")
    spans = [_bounds(w) for w in windows]
    findings = [list(_findings_of(w)) for w in windows]
    return episodes(spans, findings, gap)


def episodes(spans: Sequence[tuple[str | None, str | None]], findings: Sequence[Iterable[tuple[str | None,
             str | None, CheckResult]]], gap: int = DEFAULT_GAP) -> list[Incident]:
    """The incidents of windows given as their (start, end) and their findings, each a (model, version, result).

    >>> from analyzers.core.checks import CheckResult
    >>> def shift(status):
    ...     return CheckResult("distribution_shift", "age", "feature", status, 0.3 if status == "critical" else 0.15,
    ...                        0.1, 0.25, 1e-9, 1e-9, 500, 5000, None, None, f"age {status}", [])
    >>> days = [(f"d{i}", f"d{i + 1}") for i in range(6)]
    >>> said = [[], [("m", "1", shift("warning"))], [], [("m", "1", shift("critical"))], [], []]
    >>> [(i.start, i.end, i.windows, i.peak_severity) for i in episodes(days, said)]
    [('d1', 'd4', 2, 'critical')]
    >>> [(i.start, i.end) for i in episodes(days, said, gap=0)]
    [('d1', 'd2'), ('d3', 'd4')]
    """
    opened: dict[tuple, _Open] = {}
    done: list[Incident] = []
    for index, ((start, end), found) in enumerate(zip(spans, findings)):
        for model, version, r in found:
            key = (model, version, r.feature, r.check, r.reference)
            held = opened.get(key)
            if held is None:
                opened[key] = _Open(Incident(model, version, r.feature, r.check, r.reference, start, end, end, 1,
                                             r.status, r.value, r.message, r.message, [start]), index)
                continue
            if held.last_index == index:  # the same check twice in one window (quality metrics): one finding
                _peak(held.incident, r)
                continue
            inc = held.incident
            inc.windows += 1
            inc.end = inc.last_seen = end
            inc.latest_message = r.message
            inc.window_starts.append(start)
            _peak(inc, r)
            held.last_index = index
        for key, held in list(opened.items()):  # closed: more quiet windows than the gap since its last finding
            if index - held.last_index > gap:
                done.append(opened.pop(key).incident)
    for held in opened.values():  # not closed by the windows that followed: ongoing
        held.incident.end = None
        done.append(held.incident)
    return sorted(done, key=lambda i: (i.start or "", i.model or "", i.check, i.feature, i.reference))


def _peak(inc: Incident, r: CheckResult) -> None:
    if (RANK.get(r.status, 0), abs(r.value)) > (RANK.get(inc.peak_severity, 0), abs(inc.peak_value)):
        inc.peak_severity, inc.peak_value = r.status, r.value


def _bounds(w: Any) -> tuple[str | None, str | None]:
    return w.bounds or (w.profile.start, w.profile.end)


def _findings_of(w: Any) -> Iterable[tuple[str | None, str | None, CheckResult]]:
    model = w.profile.model or w.baseline.model
    for r in [*w.findings, *w.recent_findings]:
        yield model, w.baseline.version, r


def ordered_for_reading(incidents: Sequence[Incident]) -> list[Incident]:
    """Open ones first (the newest first), then the closed ones (the most recently ended first)."""
    return sorted(incidents, key=lambda i: (not i.ongoing, _descending(i.start if i.ongoing else i.end)))


def _descending(text: str | None) -> tuple:
    return tuple(-ord(ch) for ch in (text or ""))
