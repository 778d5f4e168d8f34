"""Organ-segmentation operators (thin): the science is in preprocess.py, inference.py, backends.py, results.py.

``OrganSegmentationOperator``
    in:  ``scan_range`` ((CTVolume, ScanRange) as GrayNetRangeOperator emits it), or ``ct_volume`` (CTVolume)
         when constructed with ``use_scan_range=False`` (every organ is then looked for on every slice)
    out: ``segmentation`` ((CTVolume, OrganSegmentation)), ``ct_volume``, ``label_map`` (uint8 (z, y, x) ALL_ORGANS
         ids on the CT grid)
    config: ``models_dir`` (per-organ bundles in models_dir/organ_segmentation/bundles/<organ>/), ``organs``
         (subset; default every organ of ALL_ORGANS with a bundle), ``label_map_bundle`` + ``label_mapping``
         {bundle id: organ name} (+ ``bundle_options``: axes, spacing_mm, intensity, roi_size; backends.py) to run
         a site's multi-class MONAI bundle for the organs it maps, ``margin_mm``, ``threads`` (default: the
         available cores).

``OrganResultsOperator``
    in:  ``segmentation`` ((CTVolume, OrganSegmentation), after the anchor post-process or straight from above)
    out: ``results`` (dict for results.json: ``{"organs": {"liver": {"volume_ml", "mean_hu", "status"}, ...}}`` +
         timing, source, provenance), ``label_map``, ``ct_volume``; writes the overlay PNG and, with
         ``write_stl=True``, one STL mesh per segmented organ (LPS mm) into ``output_folder/stl``.

``run_organ_segmentation`` / ``organ_results_json`` do the same without the graph.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from operators.common.errors import MissingAnatomyError, ModelError
from operators.common.labels import ORGAN_BY_NAME
from operators.common.provenance import provenance

from .backends import LabelMapBundle
from .inference import (
    MARGIN_MM,
    STATUS_SEGMENTED,
    OrganSegmentation,
    find_bundles_dir,
    load_organ_models,
    segment_organs,
)
from .results import organ_results, write_stl

log = logging.getLogger(__name__)


class OrganSegmenter:
    """Loads the models once; ``__call__(vol, scan_range)`` -> OrganSegmentation (per-organ bundles and/or a
    label-map bundle; a label-map bundle wins for the organs it maps)."""

    def __init__(self, models_dir: str | Path, organs=None, label_map_bundle: str | Path | None = None,
                 label_mapping: dict | None = None, bundle_options: dict | None = None,
                 margin_mm: float = MARGIN_MM, threads: int | None = None):
        self.margin_mm, self.threads = float(margin_mm), threads
        self.bundle = None
        if label_map_bundle is not None:
            self.bundle = LabelMapBundle.from_bundle(label_map_bundle, label_mapping or {}, **(bundle_options or {}))
        mapped = set(self.bundle.label_mapping.values()) if self.bundle else set()
        if organs is not None:
            per_organ = [o for o in organs if o not in mapped]
        else:
            per_organ = None if self.bundle is None else []
        self.bundles_dir = find_bundles_dir(models_dir)
        self.models = {} if per_organ == [] else load_organ_models(self.bundles_dir, per_organ)
        if not self.models and self.bundle is None:
            raise ModelError(f"No organ-segmentation bundle found in {self.bundles_dir} (expected one folder per "
                             "organ with models/model.ts and configs/metadata.json).")
        self.requested = list(organs) if organs is not None else None

    def __call__(self, vol, scan_range=None) -> OrganSegmentation:
        seg = None
        if self.models:
            seg = segment_organs(vol, self.models, scan_range, margin_mm=self.margin_mm, threads=self.threads)
        if self.bundle is not None:
            b = self.bundle.segment(vol, scan_range, margin_mm=self.margin_mm, threads=self.threads)
            if seg is None:
                seg = b
            else:  # the site's bundle labels replace ours where it found its organs
                take = b.labels > 0
                seg.labels[take] = b.labels[take]
                seg.status.update(b.status)
                seg.slices.update(b.slices)
                seg.timing_s["bundle"] = b.timing_s["total"]
                seg.models.update(b.models)
                for organ, st in list(seg.status.items()):
                    if st == STATUS_SEGMENTED and not (seg.labels == ORGAN_BY_NAME[organ].id).any():
                        seg.status[organ] = "not found"
        return seg


def run_organ_segmentation(vol, segmenter: OrganSegmenter, scan_range=None) -> OrganSegmentation:
    """The operator's job without the graph; MissingAnatomyError when no requested organ is in the scan."""
    seg = segmenter(vol, scan_range)
    if not (seg.labels > 0).any():
        covered = ", ".join(scan_range.covered_body_parts) if scan_range is not None else "unknown"
        raise MissingAnatomyError("None of the requested organs was found in this scan (it covers: "
                                  f"{covered}); no segmentation to write.")
    return seg


def organ_results_json(vol, seg: OrganSegmentation, app_name: str = "organ_segmentation",
                       postprocess_report: dict | None = None) -> dict:
    out = {"organs": {k: {kk: vv for kk, vv in v.items() if kk != "n_voxels"}
                      for k, v in organ_results(vol, seg.labels, seg.status, seg.slices).items()}}
    out["slices_searched"] = seg.slices
    if postprocess_report is not None:
        out["anchor_postprocess"] = postprocess_report
    out["timing_s"] = seg.timing_s
    out["source"] = {"study_instance_uid": vol.meta.study_instance_uid,
                     "series_instance_uid": vol.meta.series_instance_uid}
    out["provenance"] = provenance(app_name, dict(seg.models))
    return out


def render_organ_overlay(vol, labels: np.ndarray, out_png: str | Path, title: str = "") -> Path:
    """Coronal, sagittal and up to three axial views (through the largest organs, planes >= 30 mm apart) with the
    label overlay."""
    from operators.common.labels import ALL_ORGANS
    from operators.common.render import canonical_lps, render_views

    lab_c, aff = canonical_lps(labels, vol.affine_lps)
    ids, counts = np.unique(lab_c[lab_c > 0], return_counts=True)
    order = [int(i) for i in ids[np.argsort(counts)[::-1]] if int(i) != ORGAN_BY_NAME["bones"].id]
    names = {lab.id: lab.name for lab in ALL_ORGANS}

    def centre_mm(mask):
        kji = np.argwhere(mask).mean(0)
        return aff[:3, :3] @ kji[::-1] + aff[:3, 3]

    body = centre_mm(lab_c > 0) if (lab_c > 0).any() else aff[:3, :3] @ (np.array(lab_c.shape[::-1]) / 2) + aff[:3, 3]
    views = [("coronal", float(body[1]), "all organs"), ("sagittal", float(body[0]), "all organs")]
    chosen: list[float] = []
    for oid in order:  # the three largest organs, on axial planes at least 30 mm apart
        z = float(centre_mm(lab_c == oid)[2])
        if all(abs(z - c) >= 30.0 for c in chosen):
            chosen.append(z)
            views.append(("axial", z, names.get(oid, str(oid))))
        if len(chosen) == 3:
            break
    return render_views(vol.hu, vol.affine_lps, out_png, views, labels=labels, label_table=ALL_ORGANS,
                        title=title, panel_size=3.6)


class OrganSegmentationOperator(Operator):
    def __init__(self, fragment: Fragment, *args, models_dir: Path, organs=None, use_scan_range: bool = True,
                 label_map_bundle: Path | None = None, label_mapping: dict | None = None,
                 bundle_options: dict | None = None, margin_mm: float = MARGIN_MM, threads: int | None = None,
                 **kwargs):
        self.models_dir, self.organs, self.use_scan_range = Path(models_dir), organs, bool(use_scan_range)
        self.bundle_cfg = dict(label_map_bundle=label_map_bundle, label_mapping=label_mapping,
                               bundle_options=bundle_options, margin_mm=margin_mm, threads=threads)
        self._segmenter = None
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("scan_range" if self.use_scan_range else "ct_volume")
        for port in ("segmentation", "ct_volume", "label_map"):
            spec.output(port).condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        if self.use_scan_range:
            vol, sr = op_input.receive("scan_range")
        else:
            vol, sr = op_input.receive("ct_volume"), None
        if self._segmenter is None:
            self._segmenter = OrganSegmenter(self.models_dir, self.organs, **self.bundle_cfg)
        seg = run_organ_segmentation(vol, self._segmenter, sr)
        n_seg = sum(st == STATUS_SEGMENTED for st in seg.status.values())
        self._log.info("Organ segmentation: %d of %d organs segmented in %.1f s", n_seg, len(seg.status),
                       seg.timing_s.get("total", 0.0))
        op_output.emit((vol, seg), "segmentation")
        op_output.emit(vol, "ct_volume")
        op_output.emit(seg.labels, "label_map")


class OrganResultsOperator(Operator):
    def __init__(self, fragment: Fragment, *args, output_folder: Path, app_name: str = "organ_segmentation",
                 overlay_name: str | None = "organs.png", write_stl: bool = False, stl_step: int = 1, **kwargs):
        self.output_folder, self.app_name, self.overlay_name = Path(output_folder), app_name, overlay_name
        self.write_stl, self.stl_step = bool(write_stl), int(stl_step)
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("segmentation")
        spec.output("results").condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        vol, seg = op_input.receive("segmentation")
        report = seg.postprocess_report
        out = organ_results_json(vol, seg, self.app_name, report)
        if self.overlay_name:
            render_organ_overlay(vol, seg.labels, self.output_folder / self.overlay_name,
                                 title="CorpusCT organ segmentation (research use only)")
        if self.write_stl:
            files = {}
            for organ, r in out["organs"].items():
                if r["status"] == STATUS_SEGMENTED:
                    from operators.common.labels import organ_mask

                    p = write_stl(organ_mask(seg.labels, organ), vol.affine_lps,
                                  self.output_folder / "stl" / f"{organ}.stl", organ, self.stl_step)
                    files[organ] = f"stl/{p.name}"
            out["stl_meshes_lps_mm"] = files
        op_output.emit(out, "results")
