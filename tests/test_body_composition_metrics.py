"""Body-composition metrics on procedural-phantom GROUND TRUTH labels (no network): waist areas against an
independent voxel count, bone-anatomy waist against the phantom's landmarks, flags at the cut-offs, a head
scan is not evaluable with a reason."""

import numpy as np
import pytest

from models.phantoms import PhantomParams, generate_phantom
from operators.body_composition import metrics as M
from operators.body_composition.analysis import analyse
from operators.body_composition.preprocess import ModelGrid
from operators.body_composition.sr_groups import measurement_groups
from operators.common.volume import CTMetadata, CTVolume, axial_affine


@pytest.fixture(scope="module")
def abdomen():
    return generate_phantom(PhantomParams(seed=11, sex="M", age_years=60, bmi=24, region="abdomen", matrix=128))


def test_waist_sma_equals_independent_voxel_count(abdomen):
    ph = abdomen
    sp, z, lm = ph.ct.spacing_mm, ph.ct.slice_z_mm, ph.landmarks_mm
    w = M.waist_from_landmarks(z, sp[0], lm)
    areas = M.waist_areas(ph.body_composition, sp, z, w)
    # independent: slices whose centre lies inside the waist, muscle voxels (no arms in this abdomen scan
    # with arms up) x voxel volume / (number of those slices x thickness)
    inside = (z <= lm["lowest_rib"]) & (z >= lm["iliac_crest"])
    vox_cm3 = np.prod(sp) / 1000.0
    muscle = (ph.body_composition[inside] == M.ID["muscle"]).sum() * vox_cm3 / (inside.sum() * sp[0] / 10.0)
    fat = np.isin(ph.body_composition[inside], M.FAT).sum() * vox_cm3 / (inside.sum() * sp[0] / 10.0)
    assert areas["sma_cm2"] == pytest.approx(muscle, rel=0.03)
    assert areas["bfa_cm2"] == pytest.approx(fat, rel=0.03)
    assert areas["length_cm"] == pytest.approx((lm["lowest_rib"] - lm["iliac_crest"]) / 10.0)
    assert 50 < areas["sma_cm2"] < 400


def test_bone_anatomy_waist_matches_phantom_landmarks(abdomen):
    ph = abdomen
    w = M.waist_from_bone(ph.body_composition, ph.ct.spacing_mm, ph.ct.slice_z_mm)
    thick = ph.ct.spacing_mm[0]
    assert abs(w.superior_z_mm - ph.landmarks_mm["lowest_rib"]) <= thick
    assert abs(w.inferior_z_mm - ph.landmarks_mm["iliac_crest"]) <= thick


def test_flags_flip_at_cutoffs():
    assert M.flags(39.9, 4.0, "M") == {"low_smi": True, "high_bfi": False}
    assert M.flags(40.1, 4.8, "M") == {"low_smi": False, "high_bfi": True}
    assert M.flags(34.9, 5.8, "F") == {"low_smi": True, "high_bfi": False}
    assert M.flags(35.1, 5.81, "F") == {"low_smi": False, "high_bfi": True}
    assert M.flags(20.0, 9.0, None) == {"low_smi": None, "high_bfi": None}


def test_smi_bfi_from_height_weight_and_flag(abdomen):
    ph = abdomen
    sp, z = ph.ct.spacing_mm, ph.ct.slice_z_mm
    w = M.waist_from_landmarks(z, sp[0], ph.landmarks_mm)
    sma = M.waist_areas(ph.body_composition, sp, z, w)["sma_cm2"]
    h_cut = float(np.sqrt(sma / 40.0))  # height at which SMI equals the male cut-off
    tall = M.compute_metrics(ph.body_composition, sp, z, waist=w, patient=M.Patient("M", h_cut * 1.02, 70))
    short = M.compute_metrics(ph.body_composition, sp, z, waist=w, patient=M.Patient("M", h_cut * 0.98, 70))
    assert tall.flags["low_smi"] is True and short.flags["low_smi"] is False
    assert tall.waist["smi_cm2_m2"] == pytest.approx(sma / (h_cut * 1.02) ** 2, rel=1e-3)
    assert tall.waist["bfi_cm2_kg"] == pytest.approx(tall.waist["bfa_cm2"] / 70, abs=2e-3)
    assert tall.status == "complete" and tall.volumes_cm3["muscle"] > 0


def test_head_scan_not_evaluable_with_reason():
    ph = generate_phantom(PhantomParams(seed=5, region="head", matrix=64))
    meta = CTMetadata(patient_sex="F", patient_size_m=1.6, patient_weight_kg=60)
    vol = CTVolume(ph.ct.hu, ph.ct.affine_lps, meta)
    res = analyse(vol, ph.body_composition)
    assert res.status == "not_evaluable" and "waist" in res.reason
    assert res.waist is None and res.l3 is None and res.flags == {"low_smi": None, "high_bfi": None}
    with pytest.raises(Exception, match="iliac crest"):
        M.waist_from_landmarks(ph.ct.slice_z_mm, 5.0, ph.landmarks_mm)
    assert measurement_groups(res)[0].tracking_id == "status"


def test_partial_waist_not_evaluable(abdomen):
    ph = abdomen
    z = ph.ct.slice_z_mm
    keep = z > ph.landmarks_mm["l3"]  # scan stops at L3: no iliac crest
    res = analyse(CTVolume(ph.ct.hu[keep], ph.ct.affine_lps, CTMetadata()), ph.body_composition[keep])
    assert res.status == "not_evaluable" and res.waist is None


def test_header_height_weight_sources(abdomen):
    ph = abdomen
    vol = CTVolume(ph.ct.hu, ph.ct.affine_lps, CTMetadata(patient_sex="M", patient_size_m=1.8, patient_weight_kg=80))
    res = analyse(vol, ph.body_composition).to_json()
    assert res["height_source"] == "DICOM PatientSize" and res["weight_source"] == "DICOM PatientWeight"
    assert res["status"] == "complete" and res["waist"]["smi_cm2_m2"] > 0 and res["l3"]["sma_cm2"] > 0


def test_model_grid_round_trip_any_orientation():
    rng = np.random.default_rng(0)
    lab = np.zeros((20, 64, 64), np.uint8)
    lab[5:15, 10:40, 20:50] = 3
    aff = axial_affine((-2.5, 0.8, 0.8), (0, 0, 0))  # feet-first stored, thin slices
    g = ModelGrid.of(lab.shape, aff)
    assert g.model_shape == (10, 13, 13)
    logits = np.stack([np.zeros(g.model_shape)] * 8).astype(np.float32)
    m = g.labels_to_model(lab)
    for c in range(8):
        logits[c] = (m == c) * 10.0
    back = g.logits_to_native(logits)
    assert back.shape == lab.shape
    assert ((back == 3) == (lab == 3)).mean() > 0.95
    assert g.to_model(rng.normal(size=lab.shape).astype(np.float32)).shape == g.model_shape
