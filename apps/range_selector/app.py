"""Range selector app: study folder -> chosen axial CT series -> GrayNet body parts per slice, age / sex /
weight estimates and the scan range on the ICRP-110 reference body.

Outputs: ``results.json`` (body_parts_per_slice, covered_body_parts, body_part_examined,
scan_range_icrp110_cm, age_years, sex, sex_probability, weight_kg, gating, provenance),
``selection_report.json``, ``range.png`` (coronal view beside the reference-body diagram) and ``range_sr.dcm``
(TID 1500 SR: scan range, covered body parts, age/sex/weight estimates; references the source series).
"""

from __future__ import annotations

from apps.base import CorpusCTApp
from operators.dicom_output.operator import SRWriterOperator
from operators.graynet_range.operator import RangeFigureOperator

APP_NAME = "range_selector"


class RangeSelectorApp(CorpusCTApp):
    APP_NAME = APP_NAME

    def compose(self):
        selector, to_volume = self.compose_intake()
        graynet = self.compose_range(to_volume)
        self.compose_results_writer(selector, graynet)
        figure = RangeFigureOperator(self, output_folder=self.output_dir, name="range_figure")
        self.add_flow(graynet, figure, {("scan_range", "scan_range")})
        sr_writer = SRWriterOperator(self, output_folder=self.output_dir, filename="range_sr.dcm",
                                     description="CorpusCT GrayNet body parts and scan range",
                                     algorithm_name="CorpusCT GrayNet range selector",
                                     model_versions=graynet.model_versions(), name="sr_writer")
        self.add_flow(to_volume, sr_writer, {("ct_volume", "ct_volume")})
        self.add_flow(graynet, sr_writer, {("measurement_groups", "measurement_groups")})
