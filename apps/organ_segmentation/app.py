"""Organ segmentation app: study folder -> chosen axial CT series -> GrayNet range (which body parts the scan
shows) -> one 2D Res-UNet per organ, only for organs inside the range and only on their slices (or a site's
multi-class MONAI bundle with a label mapping) -> anchor-organ post-process -> DICOM SEG + results.json + PNG.

Outputs: ``organs_seg.dcm`` (DICOM SEG, one segment per segmented organ, SNOMED CT codes and colours of
``labels.ALL_ORGANS``, referencing the source series), ``results.json`` (``{"organs": {"liver": {"volume_ml",
"mean_hu", "status"[, "volume_check"]}, ...}, "anchor_postprocess", "slices_searched", "timing_s", "source",
"provenance"}``; ``volume_check`` for the solid organs: within / above / below 1/3-3 x the ICRP-110 reference
adult, or partial when the scan cuts the organ and it is below that, operators/organ_segmentation/results.py),
``organs.png`` (coronal, sagittal and axial overlays), ``selection_report.json`` and, with STL on, ``stl/<organ>.stl``.

Settings: constructor arguments, else the environment (see __main__.py): ``CORPUSCT_ORGANS``,
``CORPUSCT_ORGAN_STL``, ``CORPUSCT_ORGAN_BUNDLE_CONFIG``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from apps.base import CorpusCTApp
from operators.common.errors import BadInputError
from operators.common.labels import ALL_ORGANS
from operators.dicom_output.operator import SegWriterOperator
from operators.organ_segmentation.inference import bundle_versions
from operators.organ_segmentation.operator import OrganResultsOperator

APP_NAME = "organ_segmentation"


def settings_from_env(env=None) -> dict:
    env = os.environ if env is None else env
    out: dict = {}
    if env.get("CORPUSCT_ORGANS"):
        out["organs"] = [o.strip() for o in env["CORPUSCT_ORGANS"].split(",") if o.strip()]
    if env.get("CORPUSCT_ORGAN_STL"):
        out["write_stl"] = env["CORPUSCT_ORGAN_STL"].strip().lower() in ("1", "true", "yes", "on")
    if env.get("CORPUSCT_ORGAN_BUNDLE_CONFIG"):
        path = Path(env["CORPUSCT_ORGAN_BUNDLE_CONFIG"])
        try:
            cfg = json.loads(path.read_text())
            out["label_map_bundle"] = Path(cfg["bundle"])
            out["label_mapping"] = {int(k): v for k, v in cfg["label_mapping"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInputError(f"Bundle configuration {path} is unreadable or incomplete (needs 'bundle' and "
                                f"'label_mapping'): {exc}") from exc
        out["bundle_options"] = dict(cfg.get("options", {}))
    return out


class OrganSegmentationApp(CorpusCTApp):
    APP_NAME = APP_NAME

    def __init__(self, input_dir: Path, output_dir: Path, models_dir: Path | None = None, rules=None, *,
                 organs=None, write_stl: bool | None = None, label_map_bundle: Path | None = None,
                 label_mapping: dict | None = None, bundle_options: dict | None = None,
                 postprocess_enabled: dict | None = None):
        env = settings_from_env()
        self.organs = organs if organs is not None else env.get("organs")
        self.write_stl = bool(write_stl if write_stl is not None else env.get("write_stl", False))
        self.label_map_bundle = label_map_bundle if label_map_bundle is not None else env.get("label_map_bundle")
        self.label_mapping = label_mapping if label_mapping is not None else env.get("label_mapping")
        self.bundle_options = bundle_options if bundle_options is not None else env.get("bundle_options")
        self.postprocess_enabled = postprocess_enabled
        super().__init__(input_dir, output_dir, models_dir, rules)

    def compose(self):
        selector, to_volume = self.compose_intake()
        graynet = self.compose_range(to_volume)
        anchor = self.compose_organs(graynet, self.organs, self.postprocess_enabled,
                                     label_map_bundle=self.label_map_bundle, label_mapping=self.label_mapping,
                                     bundle_options=self.bundle_options)
        results = OrganResultsOperator(self, output_folder=self.output_dir, app_name=APP_NAME,
                                       write_stl=self.write_stl, name="organ_results")
        versions = {**graynet.model_versions(), **bundle_versions(self.models_dir, self.organs)}
        seg = SegWriterOperator(self, output_folder=self.output_dir, label_table=ALL_ORGANS, filename="organs_seg.dcm",
                                algorithm_name="CorpusCT organ segmentation (2D Res-UNet per organ)",
                                model_versions=versions, description="CorpusCT organ segmentation",
                                name="seg_writer")
        self.add_flow(anchor, results, {("segmentation", "segmentation")})
        self.add_flow(anchor, seg, {("ct_volume", "ct_volume"), ("label_map", "label_map")})
        self.compose_results_writer(selector, results)
