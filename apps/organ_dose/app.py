"""Organ dose app: study folder -> chosen axial CT series -> GrayNet range -> organ segmentation of the dose
organs and the anchors (+ anchor post-process) -> radiomics features -> per-region networks -> organ doses in
mGy; with Monte Carlo on, also the Monte Carlo reference (operators/mc_dose) and its RT Dose.

Dose parameters come from the study's CT Radiation Dose SR when the input folder holds one (matched to the
series), else from the image headers (``dose_source`` says which).

Outputs: ``organ_dose_sr.dcm`` (TID 1500: Organ Dose in mGy per organ, method stated: network / Monte Carlo,
uncertainty; CTDIvol and SSDE), ``results.json`` (``{"organ_doses_mgy": {"liver": {"dose", "method",
"uncertainty"}, ...}, "ctdivol_mgy", "ssde_mgy", "dose_source", ...}``), ``organ_dose.png`` (report page),
``selection_report.json`` and, with Monte Carlo, ``dose_rtdose.dcm``.

Settings: ``monte_carlo`` (constructor) else ``CORPUSCT_ORGAN_DOSE_MC=1`` (``__main__.py --mc`` sets it),
``CORPUSCT_MC_HISTORIES`` (default 2e6).
"""

from __future__ import annotations

import os

from apps.base import CorpusCTApp
from operators.anchor_postprocess.rules import ANCHORS
from operators.dicom_output.operator import RTDoseWriterOperator, SRWriterOperator
from operators.radiomics_dose.operator import (
    OrganDoseMergeOperator,
    OrganMasksOperator,
    RadiomicsDoseOperator,
)
from operators.radiomics_dose.regions import DOSE_ORGANS

APP_NAME = "organ_dose"


class OrganDoseApp(CorpusCTApp):
    APP_NAME = APP_NAME

    def __init__(self, *args, monte_carlo: bool | None = None, mc_histories: int | None = None, **kwargs):
        env = os.environ
        self.monte_carlo = bool(monte_carlo if monte_carlo is not None
                                else env.get("CORPUSCT_ORGAN_DOSE_MC", "").lower() in ("1", "true", "yes", "on"))
        self.mc_histories = int(mc_histories or float(env.get("CORPUSCT_MC_HISTORIES", 2e6)))
        super().__init__(*args, **kwargs)

    def compose(self):
        selector, to_volume = self.compose_intake()
        # only the organs the dose networks read, and the anchors that bound them in the post-process
        anchor = self.compose_organs(self.compose_range(to_volume), organs=list(dict.fromkeys(DOSE_ORGANS + ANCHORS)))
        png = self.output_dir / "organ_dose.png"
        dose = RadiomicsDoseOperator(self, models_dir=self.models_dir, app_name=APP_NAME, study_folder=self.input_dir,
                                     report_png=None if self.monte_carlo else png, name="radiomics_dose")
        sr = SRWriterOperator(self, output_folder=self.output_dir, filename="organ_dose_sr.dcm",
                              algorithm_name="CorpusCT radiomics organ dose", description="CorpusCT organ dose",
                              name="sr_writer")
        self.add_flow(anchor, dose, {("ct_volume", "ct_volume"), ("label_map", "label_map")})
        self.add_flow(anchor, sr, {("ct_volume", "ct_volume")})
        if not self.monte_carlo:
            self.add_flow(dose, sr, {("measurement_groups", "measurement_groups")})
            self.compose_results_writer(selector, dose)
            return
        from operators.mc_dose.operator import MCDoseOperator

        masks = OrganMasksOperator(self, name="organ_masks")
        mc = MCDoseOperator(self, n_histories=self.mc_histories, name="mc_dose")
        merge = OrganDoseMergeOperator(self, report_png=png, name="organ_dose_merge")
        rtdose = RTDoseWriterOperator(self, output_folder=self.output_dir, name="rtdose_writer")
        self.add_flow(anchor, masks, {("label_map", "label_map")})
        self.add_flow(anchor, mc, {("ct_volume", "ct_volume")})
        self.add_flow(masks, mc, {("organ_masks", "organ_masks")})
        self.add_flow(dose, merge, {("results", "results")})
        self.add_flow(mc, merge, {("mc_dose", "mc_dose")})
        self.add_flow(anchor, merge, {("ct_volume", "ct_volume")})
        self.add_flow(merge, sr, {("measurement_groups", "measurement_groups")})
        self.compose_results_writer(selector, merge)
        self.add_flow(anchor, rtdose, {("ct_volume", "ct_volume")})
        self.add_flow(merge, rtdose, {("dose_grid", "dose_grid")})
