"""Series selector app: study folder -> chosen axial CT series -> HU volume, with a selection report.

The intake step every CorpusCT app starts with, runnable on its own to check what a study offers:
``selection_report.json`` (why each series was chosen or rejected), ``results.json`` (geometry, acquisition
and dose metadata of the chosen series) and ``preview.png`` (axial, coronal and sagittal views).
"""

from __future__ import annotations

from apps.base import CorpusCTApp
from operators.results_writer.operator import JSONResultsWriterOperator
from operators.volume_report.operator import VolumeReportOperator

APP_NAME = "series_selector"


class SeriesSelectorApp(CorpusCTApp):
    def compose(self):
        selector, to_volume = self.compose_intake()
        report = VolumeReportOperator(self, output_folder=self.output_dir, app_name=APP_NAME, name="volume_report")
        writer = JSONResultsWriterOperator(self, output_folder=self.output_dir,
                                           files={"selection_report": "selection_report.json"},
                                           name="results_writer")
        self.add_flow(selector, writer, {("selection_report", "selection_report")})
        self.add_flow(to_volume, report, {("ct_volume", "ct_volume")})
