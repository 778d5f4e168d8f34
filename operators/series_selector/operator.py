"""CT series selector operator: SDK JSON rule matching + content checks + ranking, with a report.

Input port ``dicom_study_list`` (list of SDK ``DICOMStudy``). Output ports ``study_selected_series_list``
(list with one SDK ``StudySelectedSeries`` holding the chosen series, so SDK operators downstream work) and
``selection_report`` (JSON-serialisable dict, ``selection.SelectionReport.to_json()``). No usable CT ->
``BadInputError`` listing why each series was rejected.

The rule matching is the SDK's own (``DICOMSeriesSelectorOperator._select_series``); this class only asks it
once per series and, for explanations, once per condition.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

from monai.deploy.core import ConditionType, Fragment, OperatorSpec
from monai.deploy.core.domain import DICOMStudy, SelectedSeries, StudySelectedSeries
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator

from operators.common.dicom_files import SKIPPED_FILES_KEY
from operators.common.dicom_series import series_datasets

from .qc import QCConfig
from .rules import load_rules, rule_names
from .selection import RuleOutcome, SelectionConfig, SelectionReport, SeriesInput, select_ct_series


class CTSeriesSelectorOperator(DICOMSeriesSelectorOperator):
    """Chooses the one CT series to analyse. See ``operators/series_selector/selection.py`` for the science."""

    def __init__(self, fragment: Fragment, *args, rules_json: str | Path | dict | None = None,
                 min_slices: int = 10, max_axial_angle_deg: float = 10.0,
                 preferred_thickness_mm: tuple[float, float] = (1.0, 5.0), **kwargs):
        self._rules = load_rules(rules_json)
        self.config = SelectionConfig(qc=QCConfig(min_slices=int(min_slices),
                                                  max_axial_angle_deg=float(max_axial_angle_deg)),
                                      preferred_thickness_mm=tuple(preferred_thickness_mm))
        self.output_name_report = "selection_report"
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, rules=json.dumps(self._rules), all_matched=True, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input(self.input_name_study_list)
        spec.output(self.output_name_selected_series).condition(ConditionType.NONE)
        spec.output(self.output_name_report).condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        studies = op_input.receive(self.input_name_study_list)
        selected, report = self.select(studies)
        op_output.emit(selected, self.output_name_selected_series)
        op_output.emit(report.to_json(), self.output_name_report)

    # --- glue: SDK objects <-> pure selection -------------------------------------------------------

    def select(self, studies: list[DICOMStudy]) -> tuple[list[StudySelectedSeries], SelectionReport]:
        inputs, skipped, study_of = [], [], {}
        for study in studies or []:
            for item in study.metadata().get(SKIPPED_FILES_KEY, []) or []:
                if item not in skipped:
                    skipped.append(item)
            for series in study.get_all_series():
                study_of[id(series)] = study
                inputs.append(SeriesInput(study_instance_uid=str(study.StudyInstanceUID),
                                          series_instance_uid=str(series.SeriesInstanceUID),
                                          datasets=series_datasets(series), rule=self.match_rules(study, series),
                                          handle=series))
        report = select_ct_series(inputs, self.config, rules=rule_names(self._rules), skipped_files=skipped)
        chosen = report.chosen
        sss = StudySelectedSeries(study_of[id(chosen.handle)])
        sss.add_selected_series(SelectedSeries(chosen.matched_rule or "", chosen.handle, None))
        self._log.info("Chose CT series %s (%s): %s", chosen.series_number, chosen.series_instance_uid,
                       chosen.reasons[-1])
        return [sss], report

    def match_rules(self, study: DICOMStudy, series) -> RuleOutcome:
        """SDK rule matching for one series; on no match, which condition of each selection failed."""
        one = copy.copy(study)
        one._series_dict = {series.get_series_instance_uid(): series}
        failures = []
        for sel in self._rules["selections"]:
            name = str(sel.get("name", "")).strip()
            conds = sel["conditions"]
            try:
                if self._select_series(conds, one, all_matched=True):
                    return RuleOutcome(matched_rule=name)
            except Exception as ex:  # noqa: BLE001 - the SDK raises on e.g. missing PatientPosition
                failures.append(f"rule '{name}' cannot be evaluated ({type(ex).__name__}: {ex})")
                continue
            failed = []
            for key, val in conds.items():
                try:
                    ok = bool(self._select_series({key: val}, one, all_matched=True))
                except Exception as ex:  # noqa: BLE001
                    ok, val = False, f"{val!r} ({type(ex).__name__}: {ex})"
                if not ok:
                    failed.append(f"{key} {self._actual(study, series, key)} does not match {val!r}")
            failures.append(f"does not match rule '{name}': " + "; ".join(failed or ["conditions not met"]))
        return RuleOutcome(matched_rule=None, failures=failures)

    @staticmethod
    def _actual(study, series, key) -> str:
        for obj in (series, study):
            v = getattr(obj, key, None) if isinstance(getattr(type(obj), key, None), property) else None
            if v not in (None, ""):
                return repr(v)
        try:
            ds = series.get_sop_instances()[0].get_native_sop_instance()
            v = ds.get(key, None)
        except Exception:  # noqa: BLE001
            v = None
        if v is None or v == "":
            return "(absent)"
        if type(v).__name__ == "MultiValue":
            return "\\".join(str(x) for x in v)
        return repr(v)
