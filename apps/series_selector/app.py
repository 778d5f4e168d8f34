"""Series selector app: study folder -> chosen axial CT series -> HU volume, with a selection report.

The intake step every CorpusCT app starts with, runnable on its own to check what a study offers:
``selection_report.json`` (why each series was chosen or rejected), ``results.json`` (geometry, acquisition
and dose metadata of the chosen series) and ``preview.png`` (axial, coronal and sagittal views).
"""

from __future__ import annotations

from pathlib import Path

from holoscan.conditions import CountCondition
from monai.deploy.core import Application

from operators.results_writer.operator import JSONResultsWriterOperator
from operators.series_selector.operator import CTSeriesSelectorOperator
from operators.series_to_volume.operator import SeriesToVolumeOperator
from operators.study_loader.operator import CTStudyLoaderOperator
from operators.volume_report.operator import VolumeReportOperator

APP_NAME = "series_selector"


class SeriesSelectorApp(Application):
    def __init__(self, input_dir: Path, output_dir: Path, models_dir: Path | None = None, rules=None):
        self.input_dir, self.output_dir, self.rules = Path(input_dir), Path(output_dir), rules
        super().__init__()

    def compose(self):
        loader = CTStudyLoaderOperator(self, CountCondition(self, 1), input_folder=self.input_dir,
                                       name="study_loader")
        selector = CTSeriesSelectorOperator(self, rules_json=self.rules, name="series_selector")
        to_volume = SeriesToVolumeOperator(self, name="series_to_volume")
        report = VolumeReportOperator(self, output_folder=self.output_dir, app_name=APP_NAME, name="volume_report")
        writer = JSONResultsWriterOperator(self, output_folder=self.output_dir,
                                           files={"selection_report": "selection_report.json"},
                                           name="results_writer")
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, to_volume, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(selector, writer, {("selection_report", "selection_report")})
        self.add_flow(to_volume, report, {("ct_volume", "ct_volume")})
