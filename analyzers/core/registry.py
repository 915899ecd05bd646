"""Every check, registered once beside its detector (as NannyML registers its methods).

A :class:`CheckSpec` says all that the rest of predwatch needs to know of a check: its name, its default
levels and the scale they are on, which records it calls offending (for the segments a finding names), whether
the recent days judge it too, and how the report draws it. The detector is
either a *column* detector (one column's baseline and profile) or a *window* detector (the whole window: the
model's quality, its latency, joint shifts). Checks are judged in the order they were registered.

Adding a check: write its detector in its own module, decorate it with :func:`register`, and name the module
in :data:`BUILT_IN`; config, evaluation, segments, the recent-days judgement, documents and reports read it
from here.

>>> spec("out_of_range").problem, spec("out_of_range").against_recent
('out_of_range', False)
>>> sorted(s.name for s in specs() if s.window is not None)  # doctest: +NORMALIZE_WHITESPACE
['embedding_shift', 'estimated_quality_drop', 'fairness_gap', 'latency_regression', 'multivariate_shift',
 'prediction_bias', 'quality_drop', 'version_disagreement', 'version_quality_gap', 'version_shift',
 'version_traffic_shift']
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# the modules whose detectors are built in: importing them registers them, in this order
BUILT_IN = ("analyzers.core.checks", "analyzers.core.quality", "analyzers.core.joint", "analyzers.core.groups",
            "analyzers.core.versions")


@dataclass
class Measurement:
    """What a detector measured. ``value`` is the effect size compared with the thresholds."""

    value: float
    p_value: float | None
    n_window: int
    n_baseline: int
    observed: float | None = None
    expected: float | None = None
    detail: str = ""
    examples: list[Any] = field(default_factory=list)
    segments: list[dict[str, Any]] | None = None  # where it concentrates, when the detector says (else segments.explain)
    reference: str | None = None  # what it was judged against, when not the window's reference (the champion)


@dataclass(frozen=True)
class Measured:
    """A window detector's measurement of one feature (``metric``: which of the check's metrics)."""

    feature: str
    role: str
    measurement: Measurement
    metric: str | None = None
    segment: dict[str, str] | None = None  # the group measured ({"feature": F, "value": V}), if not all records


# (column baseline, column profile, window profile, reference name) -> Measurement | None; the registry names
# no core type of its own, so that every detector's module can import it
ColumnDetector = Callable[[Any, Any, Any, str], "Measurement | None"]
WindowDetector = Callable[[Any, Any, str], Iterable[Measured]]  # (window profile, baseline, reference name)


@dataclass(frozen=True)
class CheckSpec:
    """One check. ``levels``: the default (warning, critical) thresholds, on the scale ``scale`` names."""

    name: str
    levels: tuple[float, float]
    scale: str
    column: ColumnDetector | None = None  # judged per column of the baseline ...
    window: WindowDetector | None = None  # ... or once per window
    roles: frozenset[str] | None = None  # column checks: the column roles judged (None: every column)
    problem: str | None = None  # the kind of offending record the profiles count for it (segments)
    noun: str | None = None  # how a message names those records ("missing values")
    against_recent: bool = True  # judged against the recent days too
    draws_observed: bool = False  # the report draws observed against expected (else the effect and its level)


_SPECS: dict[str, CheckSpec] = {}


def register(spec: CheckSpec) -> CheckSpec:
    """Add (or replace) a check; the registry keeps the order of first registration."""
    _SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a check (tests register toy checks and take them back)."""
    _SPECS.pop(name, None)


def column_check(name: str, levels: tuple[float, float], scale: str, **kw: Any
                 ) -> Callable[[ColumnDetector], ColumnDetector]:
    """Decorator: register the function as the column detector of check ``name``."""
    return _registering("column", name, levels, scale, kw)


def window_check(name: str, levels: tuple[float, float], scale: str, **kw: Any
                 ) -> Callable[[WindowDetector], WindowDetector]:
    """Decorator: register the function as the window detector of check ``name``."""
    return _registering("window", name, levels, scale, kw)


def _registering(slot: str, name: str, levels: tuple[float, float], scale: str, kw: dict[str, Any]) -> Callable:
    def wrap(detector: Callable) -> Callable:
        register(CheckSpec(name, levels, scale, **{slot: detector}, **kw))
        return detector
    return wrap


def _load() -> None:
    for module in BUILT_IN:
        importlib.import_module(module)


def specs() -> list[CheckSpec]:
    """Every registered check, built-in ones first, in registration order."""
    _load()
    return list(_SPECS.values())


def spec(name: str) -> CheckSpec:
    """The check named ``name``; KeyError names the known checks."""
    _load()
    try:
        return _SPECS[name]
    except KeyError:
        raise KeyError(f"unknown check {name!r}; checks are {', '.join(_SPECS)}") from None


def find(name: str) -> CheckSpec | None:
    """The check named ``name``, or None for what is no registered check (volume, label coverage ...)."""
    _load()
    return _SPECS.get(name)


def names() -> list[str]:
    return [s.name for s in specs()]
