"""MCDoseOperator: CT volume (+ optional organ masks) -> Monte Carlo dose grid and organ doses in mGy."""

from __future__ import annotations

import logging

from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from operators.common.dosimetry import volume_ssde

from .dose import patient_dose


class MCDoseOperator(Operator):
    """Inputs: ``ct_volume`` (CTVolume), ``organ_masks`` (optional dict name -> bool (z,y,x) array).
    Outputs: ``mc_dose`` (PatientDose: block dose grid in mGy (soft-tissue dose per block) with relative
    uncertainty, organ doses in mGy with 1-sigma (energy in the organ's own voxels of its own tissue kind over
    their mass, at the CT grid), histories, time, calibration) and ``dose_summary`` (dict incl. the SSDE baseline
    at the central slice)."""

    def __init__(self, fragment: Fragment, *args, n_histories: int = 2_000_000, block=(2, 4, 4),
                 pitch: float = 1.0, collimation_cm: float = 4.0, ctdi_histories: int = 4_000_000, **kwargs):
        self.n_histories, self.block, self.pitch, self.collimation_cm = int(n_histories), tuple(block), pitch, collimation_cm
        self.ctdi_histories = int(ctdi_histories)
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("ct_volume")
        spec.input("organ_masks").condition(ConditionType.NONE)  # optional
        spec.output("mc_dose").condition(ConditionType.NONE)
        spec.output("dose_summary").condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        vol = op_input.receive("ct_volume")
        masks = op_input.receive("organ_masks")  # None when not connected / nothing sent
        res = patient_dose(vol, masks, n_histories=self.n_histories, block=self.block, pitch=self.pitch,
                           collimation_cm=self.collimation_cm, ctdi_histories=self.ctdi_histories)
        summary = {"organ_dose_mgy": {k: {"mean": v[0], "sigma": v[1], **res.organ_info.get(k, {})}
                                      for k, v in res.organ_dose_mgy.items()},
                   "histories": res.histories, "seconds": res.seconds, "calibration": res.calibration,
                   "conservation_error": res.conservation_error, **volume_ssde(vol)}
        self._log.info("MC dose: %d histories in %.1f s", res.histories, res.seconds)
        op_output.emit(res, "mc_dose")
        op_output.emit(summary, "dose_summary")
