"""Radiomics organ-dose operator: CT volume + organ label map (ALL_ORGANS ids on the CT grid) + dose parameters
-> organ doses in mGy (results dict) and TID 1500 measurement groups for the SR writer.

Ports: inputs ``ct_volume`` (CTVolume), ``label_map`` (uint8 ALL_ORGANS ids), ``dose_parameters``
(operators.common.dose_parameters.DoseParameters; optional: else the dose SR in ``study_folder``, else the
image headers); outputs ``results``
({"organ_doses_mgy": {organ: {"dose", "method", "uncertainty"}}, "ctdivol_mgy", "ssde_mgy", "dose_source", ...})
and ``measurement_groups``. The science is in features.py, inference.py and regions.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from operators.common.dose_parameters import dose_parameters, find_dose_reports, from_headers
from operators.common.labels import ORGAN_BY_NAME, PRIVATE_SCHEME, Code
from operators.common.provenance import provenance
from operators.dicom_output import codes as C
from operators.dicom_output.sr import Evaluation, MeasurementGroup, Quantity

from .inference import OrganDoseModel, predict_organ_doses
from .report import merge_monte_carlo, render_report

NETWORK_METHOD = Code("20001", "Radiomics network organ dose estimate", PRIVATE_SCHEME)
MONTE_CARLO_METHOD = Code("20002", "Monte Carlo organ dose", PRIVATE_SCHEME)
DOSE_SOURCE = Code("20003", "Source of the dose parameters", PRIVATE_SCHEME)
UNCERTAINTY = Code("20004", "Organ dose uncertainty (1 sigma)", PRIVATE_SCHEME)
CTDIVOL = Code("113830", "Mean CTDIvol", "DCM")
SSDE = Code("113930", "Size Specific Dose Estimation", "DCM")
METHODS = {"network": NETWORK_METHOD, "monte_carlo": MONTE_CARLO_METHOD}


def measurement_groups(result: dict) -> list[MeasurementGroup]:
    """One group per organ (Organ Dose in mGy, method stated, uncertainty), plus the scan's CTDIvol and SSDE."""
    scan = [Quantity(CTDIVOL, float(result["ctdivol_mgy"]), "mGy")]
    if result.get("ssde_mgy") is not None:
        scan.append(Quantity(SSDE, float(result["ssde_mgy"]), "mGy"))
    groups = [MeasurementGroup("scan_dose", measurements=scan,
                               evaluations=[Evaluation(DOSE_SOURCE, str(result.get("dose_source", "")))])]
    entries = {(o, d.get("method", "network")): d for o, d in result["organ_doses_mgy"].items()}
    for o, d in result.get("monte_carlo", {}).get("organ_doses_mgy", {}).items():
        entries[(o, "monte_carlo")] = d
    for (organ, _), d in entries.items():
        meth = METHODS.get(d.get("method"), NETWORK_METHOD)
        m = [Quantity(C.ORGAN_DOSE, float(d["dose"]), "mGy", method=meth)]
        if d.get("uncertainty") is not None:
            m.append(Quantity(UNCERTAINTY, float(d["uncertainty"]), "mGy", method=meth))
        lab = ORGAN_BY_NAME.get(organ)
        groups.append(MeasurementGroup(f"organ_dose_{organ}_{d.get('method', 'network')}", measurements=m,
                                       finding_site=lab.code if lab else None))
    return groups


def run_radiomics_dose(vol, label_map, dose_params, model: OrganDoseModel, app_name: str = "organ_dose",
                       study_folder: Path | None = None):
    """(results dict, measurement groups): the operator's whole job, callable without the graph. Dose parameters:
    ``dose_params`` if given, else the CT Radiation Dose SR found in ``study_folder``, else the image headers."""
    if dose_params is not None:
        dp = dose_params
    elif study_folder is not None:
        dp = dose_parameters(vol, find_dose_reports(study_folder))
    else:
        dp = from_headers(vol)
    res = predict_organ_doses(model, vol.hu, vol.spacing_mm, label_map, dp, slice_z_mm=vol.slice_z_mm,
                              affine_lps=vol.affine_lps)
    out = res.to_json()
    out["dose_parameters"] = dp.to_json()
    out["source"] = {"study_instance_uid": vol.meta.study_instance_uid,
                     "series_instance_uid": vol.meta.series_instance_uid}
    name, version = model.name_version
    out["provenance"] = provenance(app_name, {name: version})
    return out, measurement_groups(out)


class RadiomicsDoseOperator(Operator):
    def __init__(self, fragment: Fragment, *args, models_dir: Path, app_name: str = "organ_dose",
                 study_folder: Path | None = None, report_png: Path | None = None, **kwargs):
        md = Path(models_dir)
        self.study_folder = None if study_folder is None else Path(study_folder)
        self.report_png = None if report_png is None else Path(report_png)
        self.bundle_dir = md / "organ_dose" if (md / "organ_dose").is_dir() else md
        self.app_name = app_name
        self._model = None
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("ct_volume")
        spec.input("label_map")
        spec.input("dose_parameters").condition(ConditionType.NONE)
        for port in ("results", "measurement_groups"):
            spec.output(port).condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        vol = op_input.receive("ct_volume")
        labels = op_input.receive("label_map")
        dp = op_input.receive("dose_parameters")
        if self._model is None:
            self._model = OrganDoseModel(self.bundle_dir)
        out, groups = run_radiomics_dose(vol, labels, dp, self._model, self.app_name, self.study_folder)
        self._log.info("Organ doses (%s, %s): %d organs in %.1f s", out["dose_source"], ",".join(out["regions"]),
                       len(out["organ_doses_mgy"]), out["timing_s"]["total"])
        if self.report_png is not None:
            render_report(out, self.report_png)
        op_output.emit(out, "results")
        op_output.emit(groups, "measurement_groups")


def label_map_masks(label_map, organs=None) -> dict:
    """{organ: bool mask} of the ALL_ORGANS organs present in ``label_map`` (or of ``organs``)."""
    from operators.common.labels import ALL_ORGANS, organ_mask

    names = organs or [lab.name for lab in ALL_ORGANS]
    masks = {n: organ_mask(label_map, n) for n in names}
    return {n: m for n, m in masks.items() if m.any()}


def mc_dose_grid(mc, vol):
    """operators.dicom_output.rtdose.DoseGrid (Gy) of a mc_dose PatientDose on its block grid."""
    from operators.dicom_output.rtdose import DoseGrid

    bz, by, bx = mc.block
    scale = np.array([[bx, 0, 0, (bx - 1) / 2], [0, by, 0, (by - 1) / 2], [0, 0, bz, (bz - 1) / 2], [0, 0, 0, 1.0]])
    rel = mc.dose_rel_sigma[np.isfinite(mc.dose_rel_sigma) & (mc.dose_mgy > 0.5 * mc.dose_mgy.max())]
    return DoseGrid(np.asarray(mc.dose_mgy, float) / 1000.0, vol.affine_lps @ scale, n_histories=mc.histories,
                    uncertainty_percent=float(100 * np.mean(rel)) if rel.size else None,
                    comment="CorpusCT Monte Carlo (operators/mc_dose), kerma approximation")


class OrganMasksOperator(Operator):
    """``label_map`` (ALL_ORGANS ids) -> ``organ_masks`` {organ: bool mask} for MCDoseOperator."""

    def setup(self, spec: OperatorSpec):
        spec.input("label_map")
        spec.output("organ_masks")

    def compute(self, op_input, op_output, context):
        # as a Python object: a dict of arrays would otherwise go out as a holoscan TensorMap (no bool dtype)
        op_output.emit(label_map_masks(op_input.receive("label_map")), "organ_masks", "PyObject")


class OrganDoseMergeOperator(Operator):
    """Network ``results`` + Monte Carlo ``mc_dose`` (PatientDose) + ``ct_volume`` -> ``results`` with both,
    ``measurement_groups`` (both methods) and ``dose_grid`` (DoseGrid for the RT Dose writer); report page."""

    def __init__(self, fragment: Fragment, *args, report_png: Path | None = None, **kwargs):
        self.report_png = None if report_png is None else Path(report_png)
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("results")
        spec.input("mc_dose")
        spec.input("ct_volume")
        for port in ("results", "measurement_groups", "dose_grid"):
            spec.output(port).condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        res, mc, vol = op_input.receive("results"), op_input.receive("mc_dose"), op_input.receive("ct_volume")
        out = merge_monte_carlo(res, mc.organ_dose_mgy, {"histories": mc.histories, "seconds": round(mc.seconds, 1),
                                                         "calibration": mc.calibration, "block": list(mc.block)})
        if self.report_png is not None:
            render_report(out, self.report_png)
        op_output.emit(out, "results")
        op_output.emit(measurement_groups(out), "measurement_groups")
        op_output.emit(mc_dose_grid(mc, vol), "dose_grid")
