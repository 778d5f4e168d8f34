"""What every CorpusCT app graph shares: its folders and the sub-graphs several apps wire the same way.

- ``compose_intake()``: study loader (robust to bad files) -> CT series selector (rules + content checks + report)
  -> series to volume; returns the selector (port ``selection_report``) and the converter (``ct_volume``, ``image``).
- ``compose_range(to_volume)``: GrayNet range operator fed by the converter (ports ``scan_range``, ``results``,
  ``measurement_groups``).
- ``compose_organs(graynet)``: organ segmentation (gated by the range) -> anchor post-process; returns the
  post-process operator (ports ``segmentation``, ``ct_volume``, ``label_map``).
- ``compose_results_writer(selector, results_src)``: ``selection_report.json`` (+ ``results.json``).

Every operator is built through ``make()``; the whole-body app overrides it to time each operator's compute.
"""

from __future__ import annotations

from pathlib import Path

from holoscan.conditions import CountCondition
from monai.deploy.core import Application

from operators.anchor_postprocess.operator import AnchorPostprocessOperator
from operators.graynet_range.operator import GrayNetRangeOperator
from operators.organ_segmentation.operator import OrganSegmentationOperator
from operators.results_writer.operator import JSONResultsWriterOperator
from operators.series_selector.operator import CTSeriesSelectorOperator
from operators.series_to_volume.operator import SeriesToVolumeOperator
from operators.study_loader.operator import CTStudyLoaderOperator

DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


class CorpusCTApp(Application):
    APP_NAME = "corpusct"  # each app sets its own (results.json provenance, report titles)

    def __init__(self, input_dir: Path, output_dir: Path, models_dir: Path | None = None, rules=None):
        self.input_dir, self.output_dir, self.rules = Path(input_dir), Path(output_dir), rules
        self.models_dir = Path(models_dir) if models_dir else DEFAULT_MODELS_DIR
        super().__init__()

    def make(self, cls, *args, **kwargs):
        """Construct operator ``cls`` of this graph."""
        return cls(self, *args, **kwargs)

    def compose_intake(self) -> tuple[CTSeriesSelectorOperator, SeriesToVolumeOperator]:
        loader = self.make(CTStudyLoaderOperator, CountCondition(self, 1), input_folder=self.input_dir,
                           name="study_loader")
        selector = self.make(CTSeriesSelectorOperator, rules_json=self.rules, name="series_selector")
        to_volume = self.make(SeriesToVolumeOperator, name="series_to_volume")
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, to_volume, {("study_selected_series_list", "study_selected_series_list")})
        return selector, to_volume

    def compose_range(self, to_volume) -> GrayNetRangeOperator:
        graynet = self.make(GrayNetRangeOperator, models_dir=self.models_dir, app_name=self.APP_NAME,
                            name="graynet_range")
        self.add_flow(to_volume, graynet, {("ct_volume", "ct_volume")})
        return graynet

    def compose_organs(self, graynet, organs=None, postprocess_enabled: dict | None = None,
                       **segmentation_kwargs) -> AnchorPostprocessOperator:
        """Organ segmentation of ``organs`` (None: every organ with a bundle) inside the GrayNet range, then the
        anchor post-process; ``segmentation_kwargs`` go to OrganSegmentationOperator (e.g. a site's bundle)."""
        seg = self.make(OrganSegmentationOperator, models_dir=self.models_dir, organs=organs,
                        name="organ_segmentation", **segmentation_kwargs)
        anchor = self.make(AnchorPostprocessOperator, enabled=postprocess_enabled, name="anchor_postprocess")
        self.add_flow(graynet, seg, {("scan_range", "scan_range")})
        self.add_flow(seg, anchor, {("segmentation", "segmentation")})
        return anchor

    def compose_results_writer(self, selector, results_src=None) -> JSONResultsWriterOperator:
        """``selection_report.json`` from the selector and, when ``results_src`` is given, ``results.json`` from
        its ``results`` port."""
        files = {"selection_report": "selection_report.json"}
        if results_src is not None:
            files["results"] = "results.json"
        writer = self.make(JSONResultsWriterOperator, output_folder=self.output_dir, files=files,
                           name="results_writer")
        self.add_flow(selector, writer, {("selection_report", "selection_report")})
        if results_src is not None:
            self.add_flow(results_src, writer, {("results", "results")})
        return writer
