"""The organ-segmentation app end to end on the demo study: intake -> GrayNet range -> per-organ bundles -> anchor
post-process -> DICOM SEG + results.json + overlay PNG + STL.

The models folder is built here so that the test does not depend on how far training has got: the repository's
GrayNet bundle plus fixed-weight TorchScript organ bundles (test_organ_segmentation.make_band_bundle: bones =
HU > 200 in the bone window, lungs = -950..-500 HU in the lung window, brain = 20..45 HU, which the range must
skip in an abdomen scan) and, for the liver, a site's multi-class MONAI bundle with a label mapping
(test_organ_segmentation.TwoLabels: 20..80 HU in the patient's right half). The SEG is read back independently (our own per-frame reader) and compared with the
phantom's ground truth and with results.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from _dicom_checks import dciodvfy, needs_dciodvfy
from test_organ_segmentation import _label_map_bundle, make_band_bundle

from apps.organ_segmentation.app import settings_from_env
from operators.common.dicom_series import series_to_volume
from operators.common.errors import BadInputError
from operators.common.labels import ALL_ORGANS, ORGAN_BY_NAME
from operators.common.paths import REPO_ROOT
from operators.common.render import canonical_lps
from operators.dicom_output.seg import read_seg_label_map
from operators.organ_segmentation.results import dice, read_stl


@pytest.fixture(scope="module")
def app_run(demo_study, tmp_path_factory):
    root = tmp_path_factory.mktemp("organ_app")
    models = root / "models"
    bundles = models / "organ_segmentation" / "bundles"
    (models).mkdir()
    (models / "graynet").symlink_to(REPO_ROOT / "models" / "graynet")
    make_band_bundle(bundles, "bones", 200.0, 3000.0)
    make_band_bundle(bundles, "lungs", -950.0, -500.0)
    make_band_bundle(bundles, "brain", 20.0, 45.0)
    # a site's multi-class bundle (MONAI RAS layout) for the liver: its label 2 = 20..80 HU in the patient's right
    cfg = root / "site_bundle.json"
    cfg.write_text(json.dumps({"bundle": str(_label_map_bundle(root)), "label_mapping": {"2": "liver"}}))
    out = root / "out"
    env = dict(os.environ, CORPUSCT_ORGAN_STL="1", CORPUSCT_ORGANS="bones,lungs,brain,liver",
               CORPUSCT_ORGAN_BUNDLE_CONFIG=str(cfg), OMP_NUM_THREADS="2")
    r = subprocess.run([sys.executable, str(REPO_ROOT / "apps" / "organ_segmentation"), "-i", str(demo_study.dicom_dir),
                        "-o", str(out), "-m", str(models)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return out


def _axial_volume(demo_study):
    rec = demo_study.series["axial"]
    return series_to_volume([pydicom.dcmread(p) for p in rec.paths]), rec.series_instance_uid


def test_outputs_and_results(app_run):
    for name in ("organs_seg.dcm", "results.json", "organs.png", "selection_report.json", "stl/bones.stl"):
        assert (app_run / name).is_file(), name
    assert (app_run / "organs.png").stat().st_size > 20_000
    res = json.loads((app_run / "results.json").read_text())
    organs = res["organs"]
    assert set(organs) == {"bones", "lungs", "brain", "liver"}
    assert organs["liver"]["status"] == "segmented" and 20 < organs["liver"]["mean_hu"] < 80
    assert organs["brain"] == {"volume_ml": None, "mean_hu": None, "status": "not in field of view"}
    assert organs["bones"]["status"] == "segmented" and organs["bones"]["mean_hu"] > 200
    assert organs["bones"]["volume_ml"] > 100
    assert organs["lungs"]["status"] in ("segmented", "not found")
    for key in ("anchor_postprocess", "timing_s", "source", "provenance", "slices_searched"):
        assert key in res, key


def test_seg_reads_back_onto_the_ct(app_run, demo_study):
    vol, series_uid = _axial_volume(demo_study)
    seg = pydicom.dcmread(app_run / "organs_seg.dcm")
    assert seg.Modality == "SEG"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
    assert seg.StudyInstanceUID == vol.meta.study_instance_uid
    codes = {lab.code.value for lab in ALL_ORGANS}
    tracking = {str(s.TrackingID) for s in seg.SegmentSequence}
    for s in seg.SegmentSequence:
        assert s.SegmentedPropertyTypeCodeSequence[0].CodeValue in codes
        assert s.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
        assert ORGAN_BY_NAME[str(s.TrackingID)].code.value == s.SegmentedPropertyTypeCodeSequence[0].CodeValue
    res = json.loads((app_run / "results.json").read_text())["organs"]
    assert tracking == {o for o, r in res.items() if r["status"] == "segmented"}
    by_sop, _ = read_seg_label_map(seg, vol, ALL_ORGANS, match="sop")
    by_pos, _ = read_seg_label_map(seg, vol, ALL_ORGANS, match="position")
    assert np.array_equal(by_sop, by_pos)
    voxel_ml = abs(np.linalg.det(vol.affine_lps[:3, :3])) / 1000
    for organ in tracking:  # frames land on exactly as many voxels as results.json measured
        n = int((by_pos == ORGAN_BY_NAME[organ].id).sum())
        assert n * voxel_ml == pytest.approx(res[organ]["volume_ml"], abs=0.02)
    # orientation against the phantom's truth, both brought to patient axes through their own affines (the
    # reader orders the slices feet to head, the phantom head to feet)
    ph = demo_study.phantom
    seg_c, aff_seg = canonical_lps(by_pos, vol.affine_lps)
    gt_c, aff_gt = canonical_lps(ph.organs, ph.ct.affine_lps)
    assert np.allclose(aff_seg, aff_gt, atol=1e-3)
    bones, gt = seg_c == ORGAN_BY_NAME["bones"].id, gt_c == ORGAN_BY_NAME["bones"].id
    assert dice(bones, gt) > 0.7
    assert dice(bones[:, ::-1], gt) < 0.4 and dice(bones[::-1], gt) < 0.4  # front-back, head-feet
    # left-right (the phantom's skeleton is symmetric): the site bundle's liver lies in the patient's right half
    liver = np.argwhere(by_pos == ORGAN_BY_NAME["liver"].id)
    x_mm = vol.index_to_lps(liver[:, ::-1])[:, 0]
    centre_x = vol.index_to_lps(np.array([(vol.shape[2] - 1) / 2, 0, 0]))[0, 0]
    assert len(liver) > 100 and np.all(x_mm <= centre_x + 1e-3)
    # voxels the bone band marked are bone on the CT grid (up to the resampling at their edges)
    assert np.mean(vol.hu[by_pos == ORGAN_BY_NAME["bones"].id] > 150) > 0.9


def test_stl_mesh_in_patient_space(app_run, demo_study):
    vol, _ = _axial_volume(demo_study)
    _, tri = read_stl(app_run / "stl" / "bones.stl")
    pts = tri.reshape(-1, 3)
    corners = np.array([[i, j, k] for i in (0, vol.shape[2] - 1) for j in (0, vol.shape[1] - 1)
                        for k in (0, vol.shape[0] - 1)], float)
    lps = vol.index_to_lps(corners)
    assert np.all(pts.min(0) >= lps.min(0) - 5) and np.all(pts.max(0) <= lps.max(0) + 5)


@needs_dciodvfy
def test_seg_dciodvfy(app_run):
    errors, _ = dciodvfy(app_run / "organs_seg.dcm")
    assert not errors, errors


def test_settings_from_env(tmp_path):
    cfg = tmp_path / "bundle.json"
    cfg.write_text(json.dumps({"bundle": str(tmp_path), "label_mapping": {"1": "liver", "5": "spleen"},
                               "options": {"axes": "ras", "spacing_mm": [1.5, 1.5, 1.5]}}))
    s = settings_from_env({"CORPUSCT_ORGANS": "liver, spleen", "CORPUSCT_ORGAN_STL": "yes",
                           "CORPUSCT_ORGAN_BUNDLE_CONFIG": str(cfg)})
    assert s["organs"] == ["liver", "spleen"] and s["write_stl"] is True
    assert s["label_mapping"] == {1: "liver", 5: "spleen"} and s["bundle_options"]["axes"] == "ras"
    cfg.write_text("{}")
    with pytest.raises(BadInputError, match="label_mapping"):
        settings_from_env({"CORPUSCT_ORGAN_BUNDLE_CONFIG": str(cfg)})
