"""Body composition app: study folder -> chosen axial CT series -> GrayNet range (sex / weight / age estimates)
-> 7-class body-composition 3D U-Net -> waist (lowest rib to iliac crest) and L3 metrics, sarcopenia flags.

Outputs: ``body_composition_seg.dcm`` (DICOM SEG, 7 segments), ``body_composition_sr.dcm`` (TID 1500, UCUM
units), ``body_composition.png`` (report page), ``results.json`` (volumes_cm3, waist, l3, flags,
height_source, weight_source, status, provenance) and ``selection_report.json``.
"""

from __future__ import annotations

from apps.base import CorpusCTApp
from operators.body_composition.operator import BodyCompositionOperator
from operators.dicom_output.operator import SegWriterOperator, SRWriterOperator

APP_NAME = "body_composition"


class BodyCompositionApp(CorpusCTApp):
    APP_NAME = APP_NAME

    def compose(self):
        selector, to_volume = self.compose_intake()
        graynet = self.compose_range(to_volume)
        bodycomp = BodyCompositionOperator(self, models_dir=self.models_dir, output_folder=self.output_dir,
                                           app_name=APP_NAME, name="body_composition")
        seg = SegWriterOperator(self, output_folder=self.output_dir, label_table="body_composition",
                                algorithm_name="CorpusCT body composition 3D U-Net", name="seg_writer")
        sr = SRWriterOperator(self, output_folder=self.output_dir, filename="body_composition_sr.dcm",
                              reference_seg=True, algorithm_name="CorpusCT body composition",
                              description="CorpusCT body composition", name="sr_writer")
        self.add_flow(graynet, bodycomp, {("scan_range", "scan_range")})
        self.add_flow(bodycomp, seg, {("ct_volume", "ct_volume"), ("label_map", "label_map")})
        self.add_flow(bodycomp, sr, {("ct_volume", "ct_volume"), ("measurement_groups", "measurement_groups")})
        self.add_flow(seg, sr, {("seg", "seg")})
        self.compose_results_writer(selector, bodycomp)
