"""Series selector app: study folder -> chosen axial CT series -> HU volume, with a selection report.

The intake step every CorpusCT app starts with, runnable on its own to check what a study offers:
``selection_report.json`` (why each series was chosen or rejected), ``results.json`` (geometry, acquisition
and dose metadata of the chosen series) and ``preview.png`` (axial, coronal and sagittal views).
"""

from __future__ import annotations

from apps.base import CorpusCTApp
from operators.volume_report.operator import VolumeReportOperator

APP_NAME = "series_selector"


class SeriesSelectorApp(CorpusCTApp):
    APP_NAME = APP_NAME

    def compose(self):
        selector, to_volume = self.compose_intake()
        report = VolumeReportOperator(self, output_folder=self.output_dir, app_name=APP_NAME, name="volume_report")
        self.add_flow(to_volume, report, {("ct_volume", "ct_volume")})
        self.compose_results_writer(selector)
