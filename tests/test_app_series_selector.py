"""The series selector app run as a user runs it: ``python apps/series_selector -i DIR -o OUT``."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(args, tmp_path):
    return subprocess.run([sys.executable, str(REPO / "apps" / "series_selector"), *args], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)


def test_app_on_demo_study_chooses_axial_and_writes_results(demo_study, tmp_path):
    out = tmp_path / "out"
    proc = _run(["-i", str(demo_study.dicom_dir), "-o", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["preview.png", "results.json", "selection_report.json"]

    report = json.loads((out / "selection_report.json").read_text())
    status = {s["SeriesInstanceUID"]: s["status"] for s in report["series"]}
    axial = [s for s in demo_study.series if "LOCALIZER" not in s.image_type and "REFORMATTED" not in s.image_type]
    assert len(axial) == 1
    assert report["chosen"]["SeriesInstanceUID"] == axial[0].series_instance_uid
    assert sorted(status.values()) == ["chosen", "rejected", "rejected"]

    res = json.loads((out / "results.json").read_text())
    ct = demo_study.phantom.ct
    assert res["volume"]["shape_zyx"] == list(ct.shape)
    # the loader orders slices along +z (feet first); the phantom is head first: same voxels, reversed k
    aff = np.array(res["volume"]["affine_lps"])
    last = ct.shape[0] - 1
    np.testing.assert_allclose(aff[:3, 3], ct.index_to_lps([0, 0, last])[0], atol=1e-3)
    np.testing.assert_allclose(aff[:3, :2], ct.affine_lps[:3, :2], atol=1e-6)
    np.testing.assert_allclose(aff[:3, 2], -ct.affine_lps[:3, 2], atol=1e-6)
    assert len(res["acquisition"]["tube_current_ma"]) == ct.shape[0]
    assert res["provenance"]["disclaimer"].lower().endswith("not for clinical use")

    import matplotlib.image as mpimg
    png = mpimg.imread(out / "preview.png")
    assert png.shape[0] > 200 and png[..., :3].std() > 0.05  # a rendered picture, not a blank canvas


def test_app_on_folder_without_ct_exits_2_with_no_output(demo_study, tmp_path):
    only_scout = tmp_path / "scout_only"
    only_scout.mkdir()
    scout = next(s for s in demo_study.series if "LOCALIZER" in s.image_type)
    for f in demo_study.dicom_dir.rglob("*"):
        if f.is_file() and scout.series_instance_uid in _series_uid(f):
            shutil.copy(f, only_scout / f.name)
    assert any(only_scout.iterdir())
    out = tmp_path / "out"
    proc = _run(["-i", str(only_scout), "-o", str(out)], tmp_path)
    assert proc.returncode == 2
    assert "LOCALIZER" in proc.stderr
    assert list(out.iterdir()) == []


def _series_uid(path: Path) -> str:
    import pydicom
    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


@pytest.mark.slow
def test_app_without_input_runs_on_builtin_demo(tmp_path):
    out = tmp_path / "out"
    proc = _run(["-o", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "built-in demo study" in proc.stderr
    assert (out / "results.json").exists()
