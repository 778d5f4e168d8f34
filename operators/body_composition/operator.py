"""Body-composition operator: CT volume (+ GrayNet scan range) -> 7-class label map on the CT grid, metrics
(results dict for results.json), TID 1500 measurement groups and the PNG report page.

Ports: input ``scan_range`` ((CTVolume, ScanRange) as GrayNetRangeOperator emits it); outputs ``ct_volume``,
``label_map`` (for SegWriterOperator), ``measurement_groups`` (for SRWriterOperator) and ``results``.
The science lives in inference.py, analysis.py, metrics.py, sr_groups.py and report.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from operators.common.provenance import provenance

from .analysis import analyse
from .inference import BodyCompositionModel
from .report import render_report
from .sr_groups import measurement_groups


def run_body_composition(vol, model: BodyCompositionModel, scan_range=None, app_name: str = "body_composition",
                         report_png: Path | None = None, extra_models: dict | None = None):
    """(labels, result, results dict, measurement groups): the operator's whole job, callable without the graph."""
    labels, timing = model.predict(vol)
    res = analyse(vol, labels, scan_range=scan_range)
    out = res.to_json()
    out["timing_s"] = timing
    out["source"] = {"study_instance_uid": vol.meta.study_instance_uid,
                     "series_instance_uid": vol.meta.series_instance_uid}
    name, version = model.name_version
    out["provenance"] = provenance(app_name, {name: version, **(extra_models or {})})
    if report_png is not None:
        render_report(vol.hu, labels, vol.affine_lps, res, report_png)
    return labels, res, out, measurement_groups(res)


class BodyCompositionOperator(Operator):
    def __init__(self, fragment: Fragment, *args, models_dir: Path, output_folder: Path,
                 app_name: str = "body_composition", report_name: str = "body_composition.png", **kwargs):
        md = Path(models_dir)
        self.bundle_dir = md / "body_composition" if (md / "body_composition").is_dir() else md
        self.output_folder, self.app_name, self.report_name = Path(output_folder), app_name, report_name
        self._model = None
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("scan_range")
        for port in ("ct_volume", "label_map", "measurement_groups", "results"):
            spec.output(port).condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        vol, sr = op_input.receive("scan_range")
        if self._model is None:
            self._model = BodyCompositionModel.from_bundle(self.bundle_dir)
        labels, res, out, groups = run_body_composition(vol, self._model, sr, self.app_name,
                                                        self.output_folder / self.report_name)
        self._log.info("Body composition: %s %s", res.status, res.reason)
        op_output.emit(vol, "ct_volume")
        op_output.emit(labels, "label_map")
        op_output.emit(groups, "measurement_groups")
        op_output.emit(out, "results")
