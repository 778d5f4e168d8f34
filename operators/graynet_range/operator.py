"""GrayNet range operator: CT volume -> per-slice body parts, age / sex / weight estimates and the scan range
on the ICRP-110 reference body (``range_selector.ScanRange``, with the gating API other operators use).

Ports: input ``ct_volume`` (``CTVolume``); outputs ``scan_range`` (``ScanRange``), ``results`` (dict for
results.json, with provenance) and ``measurement_groups`` (for the TID 1500 SR writer, ``report.py``). ``RangeFigureOperator`` writes the PNG (coronal view + reference body).
The science lives in inference.py, range_selector.py and figure.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from operators.common.bundle import bundle_name_version, read_bundle_metadata
from operators.common.errors import ModelError
from operators.common.provenance import provenance

from .figure import render_range
from .inference import GrayNetModel
from .range_selector import select_range
from .report import range_measurement_groups


def run_graynet_range(vol, model: GrayNetModel, app_name: str = "range_selector", use_header_sex: bool = True):
    """(ScanRange, results dict) for a CTVolume: the operator's whole job, callable without the graph."""
    pred = model.predict(vol)
    header_sex = (vol.meta.patient_sex or "").upper()
    phantom = {"M": "AM", "F": "AF"}.get(header_sex) if use_header_sex else None
    sr = select_range(pred, phantom=phantom)
    name, version = model.name_version
    results = sr.to_json()
    results["scan_range_icrp110_cm"]["phantom_chosen_by"] = "header sex" if phantom else "predicted sex"
    results["timing_s"] = pred.seconds
    results["estimates_note"] = ("age, sex and weight are estimates of a model trained on synthetic phantoms "
                                 "(labels from phantom parameters, not population data)")
    results["source"] = {"study_instance_uid": vol.meta.study_instance_uid,
                         "series_instance_uid": vol.meta.series_instance_uid,
                         "sop_instance_uids": list(vol.meta.sop_instance_uids)}
    results["provenance"] = provenance(app_name, {name: version})
    return sr, results


class GrayNetRangeOperator(Operator):
    def __init__(self, fragment: Fragment, *args, models_dir: Path, app_name: str = "range_selector",
                 use_header_sex: bool = True, **kwargs):
        self.bundle_dir = Path(models_dir) / "graynet" if (Path(models_dir) / "graynet").is_dir() else Path(models_dir)
        self.app_name, self.use_header_sex = app_name, use_header_sex
        self._model = None
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def model_versions(self) -> dict[str, str]:
        """{bundle name: version} from the bundle metadata (empty if unreadable: compute() then says why)."""
        try:
            return dict([bundle_name_version(read_bundle_metadata(self.bundle_dir), "graynet")])
        except ModelError:
            return {}

    def setup(self, spec: OperatorSpec):
        spec.input("ct_volume")
        spec.output("scan_range").condition(ConditionType.NONE)
        spec.output("results").condition(ConditionType.NONE)
        spec.output("measurement_groups").condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        vol = op_input.receive("ct_volume")
        if self._model is None:
            self._model = GrayNetModel.from_bundle(self.bundle_dir)
        sr, results = run_graynet_range(vol, self._model, self.app_name, self.use_header_sex)
        self._log.info("Scan range on ICRP-110 %s: %.1f-%.1f cm (+-%.1f, %s); body part examined %s",
                       sr.phantom, sr.start_cm, sr.end_cm, sr.uncertainty_cm, sr.method, sr.body_part_examined())
        op_output.emit((vol, sr), "scan_range")
        op_output.emit(results, "results")
        op_output.emit(range_measurement_groups(sr), "measurement_groups")


class RangeFigureOperator(Operator):
    """Writes ``range.png`` from the (CTVolume, ScanRange) pair."""

    def __init__(self, fragment: Fragment, *args, output_folder: Path, file_name: str = "range.png", **kwargs):
        self.output_folder, self.file_name = Path(output_folder), file_name
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("scan_range")

    def compute(self, op_input, op_output, context):
        vol, sr = op_input.receive("scan_range")
        render_range(vol, sr, self.output_folder / self.file_name)
