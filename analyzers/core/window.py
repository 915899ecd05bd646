"""One analysed window: its profile, every check result, and the findings as JSON."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .baseline import Baseline
from .checks import CheckResult, evaluate, findings
from .config import CheckConfig
from .profile import Rejected, WindowProfile
from .groups import fairness_section, group_quality_section
from .quality import latency_percentiles, quality_section
from .reference import reference_for
from .versions import comparison_section


@dataclass
class WindowResult:
    baseline: Baseline
    profile: WindowProfile
    results: list[CheckResult]
    rejections: list[Rejected] = field(default_factory=list)
    bounds: tuple[str, str] | None = None  # the window's [start, end) when it was cut from time, not from files
    reference: Baseline | None = None  # what it was judged against (the same hours of training), if not baseline
    recent: list[CheckResult] = field(default_factory=list)  # against the same window on previous days
    unmatched_outcomes: int = 0  # outcome records read whose prediction no window holds
    early_outcomes: int = 0  # outcomes stamped before their prediction (left out of the label delays)

    @property
    def judged_against(self) -> Baseline:
        return self.reference or self.baseline

    @property
    def findings(self) -> list[CheckResult]:
        return findings(self.results)

    def to_json(self) -> dict[str, Any]:
        """The documented output of ``predwatch check --format json``."""
        p = self.profile
        start, end = self.bounds or (p.start, p.end)
        return {
            "model": p.model or self.baseline.model,
            "baseline_version": self.baseline.version,
            "window": {"start": start, "end": end, "records": p.records, "rejected": p.rejected,
                       "versions": p.versions, "other_models": p.other_models},
            "findings": [r.finding() for r in self.findings],
            "not_judged": [{"check": r.check, "feature": r.feature, "n_window": r.n_window}
                           for r in self.results if not r.judged],
            **({"recent_findings": [r.finding() for r in findings(self.recent)]} if self.recent else {}),
            **({"quality": self.quality} if self.baseline.quality else {}),
            **({"latency": self.latency} if p.latency else {}),
            **({"versions_compared": self.versions_compared} if p.compared is not None else {}),
            **({"quality_by_group": self.quality_by_group} if self.baseline.groups and self.baseline.quality else {}),
            **({"fairness": self.fairness} if self.baseline.groups and self.baseline.groups.sensitive else {}),
        }

    @property
    def versions_compared(self) -> dict[str, Any] | None:
        """The two versions side by side (``--compare``; :func:`analyzers.core.versions.comparison_section`)."""
        compared = self.profile.compared
        return None if compared is None else comparison_section(compared, self.baseline.quality)

    @property
    def quality_by_group(self) -> list[dict[str, Any]]:
        """Each group's quality with enough labels, against its reference (:mod:`analyzers.core.groups`)."""
        return group_quality_section(self.profile, self.baseline)

    @property
    def fairness(self) -> list[dict[str, Any]]:
        """Each sensitive field's fairness gaps, with intervals and the reference's."""
        return fairness_section(self.profile, self.baseline)

    @property
    def quality(self) -> dict[str, Any] | None:
        """The ``quality`` section: labels, coverage, delay, each metric against its reference, the estimate."""
        return quality_section(self.profile.quality, self.baseline.quality, self.unmatched_outcomes,
                               self.early_outcomes)

    @property
    def latency(self) -> dict[str, float] | None:
        """p50, p95 and p99 latency in milliseconds (None when no record had one)."""
        return latency_percentiles(self.profile.latency)

    @property
    def recent_findings(self) -> list[CheckResult]:
        return findings(self.recent)


def analyze(profile: WindowProfile, baseline: Baseline, config: CheckConfig | None = None,
            rejections: list[Rejected] | None = None) -> WindowResult:
    """The one place a profile meets the checks: against the same hours of training when the baseline
    has them (:func:`analyzers.core.reference.reference_for`), else against all of training."""
    reference, name = reference_for(baseline, profile)
    result = WindowResult(baseline, profile, evaluate(profile, reference, config, name), rejections or [])
    result.reference = reference if reference is not baseline else None
    return result

