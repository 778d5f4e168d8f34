"""Range selector app: study folder -> chosen axial CT series -> GrayNet body parts per slice, age / sex /
weight estimates and the scan range on the ICRP-110 reference body.

Outputs: ``results.json`` (body_parts_per_slice, covered_body_parts, body_part_examined,
scan_range_icrp110_cm, age_years, sex, sex_probability, weight_kg, gating, provenance),
``selection_report.json`` and ``range.png`` (coronal view beside the reference-body diagram).
"""

from __future__ import annotations

from pathlib import Path

from holoscan.conditions import CountCondition
from monai.deploy.core import Application

from operators.graynet_range.operator import GrayNetRangeOperator, RangeFigureOperator
from operators.results_writer.operator import JSONResultsWriterOperator
from operators.series_selector.operator import CTSeriesSelectorOperator
from operators.series_to_volume.operator import SeriesToVolumeOperator
from operators.study_loader.operator import CTStudyLoaderOperator

APP_NAME = "range_selector"


class RangeSelectorApp(Application):
    def __init__(self, input_dir: Path, output_dir: Path, models_dir: Path | None = None, rules=None):
        self.input_dir, self.output_dir, self.rules = Path(input_dir), Path(output_dir), rules
        self.models_dir = Path(models_dir) if models_dir else Path(__file__).resolve().parents[2] / "models"
        super().__init__()

    def compose(self):
        loader = CTStudyLoaderOperator(self, CountCondition(self, 1), input_folder=self.input_dir,
                                       name="study_loader")
        selector = CTSeriesSelectorOperator(self, rules_json=self.rules, name="series_selector")
        to_volume = SeriesToVolumeOperator(self, name="series_to_volume")
        graynet = GrayNetRangeOperator(self, models_dir=self.models_dir, app_name=APP_NAME, name="graynet_range")
        figure = RangeFigureOperator(self, output_folder=self.output_dir, name="range_figure")
        writer = JSONResultsWriterOperator(self, output_folder=self.output_dir,
                                           files={"selection_report": "selection_report.json",
                                                  "results": "results.json"}, name="results_writer")
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, to_volume, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(selector, writer, {("selection_report", "selection_report")})
        self.add_flow(to_volume, graynet, {("ct_volume", "ct_volume")})
        self.add_flow(graynet, writer, {("results", "results")})
        self.add_flow(graynet, figure, {("scan_range", "scan_range")})
