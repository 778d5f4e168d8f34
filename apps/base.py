"""What every CorpusCT app graph shares: its folders and the intake sub-graph.

Intake = study loader (robust to bad files) -> CT series selector (rules + content checks + report) ->
series to volume. ``compose_intake()`` adds those three operators and their flows and returns the two an
app wires further: the selector (port ``selection_report``) and the converter (ports ``ct_volume``, ``image``).
"""

from __future__ import annotations

from pathlib import Path

from holoscan.conditions import CountCondition
from monai.deploy.core import Application

from operators.series_selector.operator import CTSeriesSelectorOperator
from operators.series_to_volume.operator import SeriesToVolumeOperator
from operators.study_loader.operator import CTStudyLoaderOperator

DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


class CorpusCTApp(Application):
    def __init__(self, input_dir: Path, output_dir: Path, models_dir: Path | None = None, rules=None):
        self.input_dir, self.output_dir, self.rules = Path(input_dir), Path(output_dir), rules
        self.models_dir = Path(models_dir) if models_dir else DEFAULT_MODELS_DIR
        super().__init__()

    def compose_intake(self, make=None) -> tuple[CTSeriesSelectorOperator, SeriesToVolumeOperator]:
        """``make(cls, *args, **kwargs)`` constructs each operator (default: ``cls(self, ...)``); the whole-body app
        passes its timing constructor so that every intake operator is timed on its own."""
        make = make or (lambda cls, *a, **k: cls(self, *a, **k))
        loader = make(CTStudyLoaderOperator, CountCondition(self, 1), input_folder=self.input_dir,
                      name="study_loader")
        selector = make(CTSeriesSelectorOperator, rules_json=self.rules, name="series_selector")
        to_volume = make(SeriesToVolumeOperator, name="series_to_volume")
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, to_volume, {("study_selected_series_list", "study_selected_series_list")})
        return selector, to_volume
