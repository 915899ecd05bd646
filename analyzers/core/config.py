"""Check thresholds, with per-check defaults and per-feature overrides.

In ``predwatch.toml``::

    [checks]
    fdr = 0.01                      # false discovery rate across all tests of a window

    [checks.distribution_shift]     # defaults for one check
    warning = 0.1
    critical = 0.25

    [features.amount.out_of_range]  # one feature, one check
    warning = 0.05
    enabled = true

A check's default levels are in its spec (:mod:`analyzers.core.registry`), beside its detector.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from . import registry

DEFAULT_FDR = 0.01


@dataclass(frozen=True)
class Level:
    warning: float
    critical: float
    enabled: bool = True


@dataclass
class CheckConfig:
    """Thresholds for every (check, feature); see the module docstring for the file format."""

    fdr: float = DEFAULT_FDR
    checks: dict[str, Level] = field(default_factory=dict)  # configured checks (the others: their spec's levels)
    features: dict[str, dict[str, Level]] = field(default_factory=dict)

    def level(self, check: str, feature: str) -> Level:
        return (self.features.get(feature, {}).get(check) or self.checks.get(check)
                or Level(*registry.spec(check).levels))

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> "CheckConfig":
        doc = doc or {}
        cfg = cls()
        checks = dict(doc.get("checks", {}))
        cfg.fdr = _number("checks", "fdr", checks.pop("fdr", DEFAULT_FDR))
        if not 0 < cfg.fdr < 1:
            raise ValueError(f"[checks] fdr must be between 0 and 1, got {cfg.fdr}")
        for check, values in checks.items():
            cfg.checks[check] = _level(check, values, cfg.checks.get(check))
        for feature, per_check in doc.get("features", {}).items():
            cfg.features[feature] = {
                check: _level(f"{feature}.{check}", values, cfg.checks.get(check))
                for check, values in per_check.items()
            }
        return cfg


def _level(where: str, values: Any, default: Level | None) -> Level:
    check = where.rsplit(".", 1)[-1]
    if check not in registry.names():
        raise ValueError(f"unknown check {check!r} in configuration; checks are {', '.join(registry.names())}")
    if not isinstance(values, dict):
        raise ValueError(f"[{where}] must be a table with warning/critical/enabled")
    unknown = set(values) - {"warning", "critical", "enabled"}
    if unknown:
        raise ValueError(f"[{where}]: unknown keys {', '.join(sorted(unknown))}")
    base = default or Level(*registry.spec(check).levels)
    warning = _number(where, "warning", values.get("warning", base.warning))
    critical = _number(where, "critical", values.get("critical", max(base.critical, warning)))
    enabled = values.get("enabled", base.enabled)
    if not isinstance(enabled, bool):
        raise ValueError(f"[{where}] enabled: not true or false ({enabled!r})")
    level = Level(warning=warning, critical=critical, enabled=enabled)
    if level.critical < level.warning:
        raise ValueError(f"[{where}]: critical ({level.critical}) is below warning ({level.warning})")
    return level


def _number(where: str, key: str, value: Any) -> float:
    """A number from the configuration; the error names the table and the key."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"[{where}] {key}: not a number ({value!r})")
    return float(value)


def parse_duration(text: str | int | float) -> timedelta:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"7d"`` (or seconds as a number)."""
    if isinstance(text, (int, float)):
        return timedelta(seconds=text)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if not text or text[-1] not in units or not text[:-1].replace(".", "", 1).isdigit():
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h, 7d)")
    return timedelta(seconds=float(text[:-1]) * units[text[-1]])
