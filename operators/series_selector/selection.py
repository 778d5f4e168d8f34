"""Choosing the CT series to analyse, with reasons (pure: no holoscan import).

Input: every series of the input (its datasets) plus the outcome of the SDK JSON rule matching (done by the
operator with the SDK's own matcher). Each series gets content checks (``qc.check_series``); survivors (rule
matched and no content failure) are ranked by

    total = 0.4 x kernel + 0.2 x thickness + 0.4 x coverage

- kernel: soft-tissue 1.0, intermediate 0.6, unknown 0.5, lung/bone/sharp 0.0 (``kernels.classify_kernel``),
- thickness: 1.0 for slices within ``preferred_thickness_mm`` (1-5 mm), 5/t above, 0.8 + 0.2 t below,
- coverage: z extent / largest z extent among the survivors.
Ties go to more images, then the lower SeriesNumber. The best one is "chosen", other survivors "candidate",
the rest "rejected". ``SelectionReport.to_json()`` is the machine-readable report. No survivor ->
``BadInputError`` listing why each series was rejected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from operators.common.errors import BadInputError

from .kernels import KERNEL_SCORE, classify_kernel
from .qc import QCConfig, SeriesFacts, check_series

logger = logging.getLogger(__name__)

WEIGHTS = {"kernel": 0.4, "thickness": 0.2, "coverage": 0.4}


@dataclass
class RuleOutcome:
    """Result of the JSON rule matching for one series."""

    matched_rule: str | None = None  # name of the first selection that matched
    failures: list[str] = field(default_factory=list)  # human-readable, one per failed condition


@dataclass
class SeriesInput:
    study_instance_uid: str
    series_instance_uid: str
    datasets: list  # pydicom datasets
    rule: RuleOutcome = field(default_factory=RuleOutcome)
    handle: object = None  # the SDK DICOMSeries (opaque here)


@dataclass
class SeriesVerdict:
    study_instance_uid: str
    series_instance_uid: str
    series_number: int | None
    series_description: str
    n_instances: int
    status: str = "rejected"  # chosen | candidate | rejected
    matched_rule: str | None = None
    reasons: list[str] = field(default_factory=list)
    score: dict = field(default_factory=dict)
    facts: SeriesFacts = field(default_factory=SeriesFacts)
    handle: object = None

    def to_json(self) -> dict:
        return {
            "StudyInstanceUID": self.study_instance_uid,
            "SeriesInstanceUID": self.series_instance_uid,
            "SeriesNumber": self.series_number,
            "SeriesDescription": self.series_description,
            "n_instances": self.n_instances,
            "status": self.status,
            "matched_rule": self.matched_rule,
            "reasons": list(self.reasons),
            "score": dict(self.score),
            "facts": self.facts.to_json(),
        }

    def summary(self) -> str:
        d = f" '{self.series_description}'" if self.series_description else ""
        return f"series {self.series_number if self.series_number is not None else '?'}{d} ({self.n_instances} images)"


@dataclass
class SelectionConfig:
    qc: QCConfig = field(default_factory=QCConfig)
    preferred_thickness_mm: tuple[float, float] = (1.0, 5.0)
    weights: dict = field(default_factory=lambda: dict(WEIGHTS))

    def to_json(self) -> dict:
        return {**self.qc.to_json(), "preferred_thickness_mm": list(self.preferred_thickness_mm),
                "weights": dict(self.weights)}


@dataclass
class SelectionReport:
    series: list[SeriesVerdict]
    rules: list[str]
    config: SelectionConfig
    skipped_files: list[dict] = field(default_factory=list)

    @property
    def chosen(self) -> SeriesVerdict | None:
        return next((s for s in self.series if s.status == "chosen"), None)

    def to_json(self) -> dict:
        ch = self.chosen
        return {
            "chosen": None if ch is None else {"StudyInstanceUID": ch.study_instance_uid,
                                               "SeriesInstanceUID": ch.series_instance_uid,
                                               "SeriesNumber": ch.series_number,
                                               "SeriesDescription": ch.series_description},
            "n_series": len(self.series),
            "rules": list(self.rules),
            "config": self.config.to_json(),
            "series": [s.to_json() for s in self.series],
            "skipped_files": list(self.skipped_files),
        }


def _series_number(ds):
    try:
        v = ds.get("SeriesNumber", None)
        return None if v is None or v == "" else int(v)
    except (TypeError, ValueError):
        return None


def thickness_score(t: float | None, lo: float, hi: float) -> float:
    if t is None or t <= 0:
        return 0.5
    if t < lo:
        return 0.8 + 0.2 * t / lo
    if t > hi:
        return hi / t
    return 1.0


def select_ct_series(inputs: list[SeriesInput], cfg: SelectionConfig | None = None,
                     rules: list[str] | None = None, skipped_files: list[dict] | None = None,
                     raise_if_none: bool = True) -> SelectionReport:
    """Check, rank and choose. Returns the report (chosen = ``report.chosen``; its ``handle`` is the input's)."""
    cfg = cfg or SelectionConfig()
    verdicts: list[SeriesVerdict] = []
    for s in inputs:
        ds0 = s.datasets[0] if s.datasets else {}
        v = SeriesVerdict(
            study_instance_uid=s.study_instance_uid, series_instance_uid=s.series_instance_uid,
            series_number=_series_number(ds0) if s.datasets else None,
            series_description=str(ds0.get("SeriesDescription", "") or "") if s.datasets else "",
            n_instances=len(s.datasets), matched_rule=s.rule.matched_rule, handle=s.handle)
        content_reasons, v.facts = check_series(s.datasets, cfg.qc)
        if s.rule.matched_rule is None:
            v.reasons.extend(f"rejected: {f}" for f in (s.rule.failures or ["does not match the selection rules"]))
        v.reasons.extend(content_reasons)
        verdicts.append(v)

    study_order = {u: i for i, u in enumerate(dict.fromkeys(v.study_instance_uid for v in verdicts))}
    verdicts.sort(key=lambda v: (study_order[v.study_instance_uid],
                                 v.series_number if v.series_number is not None else 1 << 30))
    survivors = [v for v in verdicts if not v.reasons]
    if survivors:
        max_cov = max(v.facts.z_coverage_mm for v in survivors) or 1.0
        lo, hi = cfg.preferred_thickness_mm
        for v in survivors:
            kcls, kwhy = classify_kernel(v.facts.convolution_kernel, v.facts.manufacturer)
            t = v.facts.slice_thickness_mm or v.facts.slice_spacing_mm
            comp = {"kernel": KERNEL_SCORE[kcls], "thickness": round(thickness_score(t, lo, hi), 4),
                    "coverage": round(v.facts.z_coverage_mm / max_cov, 4)}
            total = sum(cfg.weights[k] * comp[k] for k in comp)
            v.score = {"total": round(total, 4), **comp, "kernel_class": kcls, "kernel_note": kwhy}
        survivors.sort(key=lambda v: (-v.score["total"], -v.n_instances,
                                      v.series_number if v.series_number is not None else 1 << 30))
        best = survivors[0]
        best.status = "chosen"
        best.reasons.append(_why(best, len(survivors)))
        for v in survivors[1:]:
            v.status = "candidate"
            v.reasons.append(f"candidate: usable, score {v.score['total']:.2f} < {best.score['total']:.2f} of the "
                             f"chosen series ({_facts_text(v)})")
    report = SelectionReport(series=verdicts, rules=list(rules or []), config=cfg,
                             skipped_files=list(skipped_files or []))
    for v in verdicts:
        logger.info("Series %s %s: %s: %s", v.series_number, v.series_instance_uid, v.status, "; ".join(v.reasons))
    if report.chosen is None and raise_if_none:
        raise BadInputError(no_ct_message(report))
    return report


def _facts_text(v: SeriesVerdict) -> str:
    t = v.facts.slice_thickness_mm
    return (f"{v.score['kernel_class']} kernel {v.facts.convolution_kernel or '?'}, "
            f"{'?' if t is None else f'{t:g}'} mm slices, {v.facts.z_coverage_mm:.0f} mm z coverage")


def _why(v: SeriesVerdict, n: int) -> str:
    return (f"chosen: best score {v.score['total']:.2f} of {n} usable series ({_facts_text(v)}; "
            f"{v.score['kernel_note']})")


def no_ct_message(report: SelectionReport) -> str:
    lines = [f"No usable CT series in the input ({len(report.series)} series examined):"]
    for v in report.series:
        lines.append(f" - {v.summary()}: " + "; ".join(r.removeprefix("rejected: ") for r in v.reasons))
    if report.skipped_files:
        lines.append(f" ({len(report.skipped_files)} unreadable file(s) were skipped)")
    return "\n".join(lines)
