"""GrayNet bundle (models/graynet) and the range-selector app on the demo study."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from _dicom_checks import dciodvfy

from operators.common.labels import BODY_PART_BY_NAME
from operators.common.paths import REPO_ROOT
from operators.dicom_output.sr import measurement_table
from operators.graynet_range.inference import GrayNetModel
from operators.graynet_range.range_selector import select_range

BUNDLE = REPO_ROOT / "models" / "graynet"
REQUIRED = ("body_parts_per_slice", "covered_body_parts", "scan_range_icrp110_cm", "age_years", "sex",
            "sex_probability", "weight_kg", "provenance")


@pytest.fixture(scope="module")
def model():
    return GrayNetModel.from_bundle(BUNDLE)


def test_bundle_files():
    md = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    json.loads((BUNDLE / "configs" / "inference.json").read_text())
    assert md["name"] == "graynet" and len(md["corpusct"]["body_parts"]) == 24
    assert (BUNDLE / "models" / "model.ts").stat().st_size < 10e6
    assert (BUNDLE / "docs" / "README.md").is_file()


def test_model_matches_phantom_labels(model, demo_study):
    """On the demo phantom (abdomen, 128 x 128, never seen in training) most slices get their labelled parts."""
    ph = demo_study.phantom
    pred = model.predict(ph.ct)
    assert pred.part_probabilities.shape == (ph.ct.shape[0], 24)
    sr = select_range(pred)
    truth = [set(p) - {"arms"} for p in ph.body_parts]
    got = [set(p) - {"arms"} for p in sr.body_parts_per_slice]
    exact = np.mean([t == g for t, g in zip(truth, got, strict=False)])
    jacc = np.mean([len(t & g) / max(len(t | g), 1) for t, g in zip(truth, got, strict=False)])
    assert jacc >= 0.75, (exact, jacc)
    assert sr.covers("abdomen") and not sr.covers("head") and not sr.covers("legs")
    assert 10 < pred.weight_kg < 200 and 1 <= pred.age_years <= 100


def test_invalid_bundle(tmp_path):
    from operators.common.errors import ModelError
    with pytest.raises(ModelError):
        GrayNetModel.from_bundle(tmp_path)


def _coded_values(ds, concept_name: str) -> list[str]:
    """Meanings of every CODE content item with this concept name, anywhere in an SR content tree."""
    out = []
    for item in ds.get("ContentSequence", []):
        if item.get("ValueType") == "CODE" and item.ConceptNameCodeSequence[0].CodeMeaning == concept_name:
            out.append(item.ConceptCodeSequence[0].CodeMeaning)
        out += _coded_values(item, concept_name)
    return out


def test_app_end_to_end(demo_study, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(REPO_ROOT / "apps" / "range_selector"), "-i", str(demo_study.dicom_dir),
                        "-o", str(out), "-l", "WARNING"], capture_output=True, text=True, timeout=240, cwd=REPO_ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    for k in REQUIRED:
        assert k in res, k
    n_axial = demo_study.series["axial"].n_images
    assert len(res["body_parts_per_slice"]) == n_axial
    rng = res["scan_range_icrp110_cm"]
    assert rng["phantom"] in ("AM", "AF") and rng["start"] < rng["end"] and rng["uncertainty"] > 0
    assert res["sex"] in ("F", "M") and 0.5 <= res["sex_probability"] <= 1.0
    assert res["provenance"]["models"].get("graynet")
    assert (out / "range.png").stat().st_size > 10_000
    assert not any(p.name.startswith(".corpusct-staging") for p in out.iterdir())

    # the DICOM SR carries the same findings and references the source study and series
    sr = pydicom.dcmread(out / "range_sr.dcm")
    src = pydicom.dcmread(demo_study.series["axial"].paths[0], stop_before_pixels=True)
    assert sr.StudyInstanceUID == src.StudyInstanceUID
    evidence = {s.SeriesInstanceUID for st in sr.CurrentRequestedProcedureEvidenceSequence
                for s in st.ReferencedSeriesSequence}
    assert src.SeriesInstanceUID in evidence
    assert "not for clinical use" in sr.SeriesDescription.lower()
    groups = {g["tracking_id"]: g for g in measurement_table(sr)}
    start = groups["scan range"]["measurements"]["Scan start on ICRP-110 reference body"]
    assert start == (pytest.approx(rng["start"], abs=0.05), "cm")
    assert set(_coded_values(sr, "Target Region")) == {BODY_PART_BY_NAME[n].display for n in res["covered_body_parts"]}
    if shutil.which("dciodvfy"):
        errors, warnings = dciodvfy(out / "range_sr.dcm")
        assert not errors, errors
        assert all("99CORPUSCT" in w for w in warnings), warnings
