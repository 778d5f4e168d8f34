"""Range selector (operators/graynet_range): exact piecewise-linear landmark mapping, range and gating on
synthetic landmark sets (no network involved)."""

import numpy as np
import pytest

from operators.common.errors import MissingAnatomyError
from operators.common.labels import BODY_PARTS, body_parts_per_slice
from operators.graynet_range.inference import SlicePredictions
from operators.graynet_range.landmark_map import map_z, matched_pairs
from operators.graynet_range.range_selector import select_range
from operators.graynet_range.reference import reference_landmarks

NAMES = [bp.name for bp in BODY_PARTS]


def test_map_z_exact_piecewise_linear():
    src = {"a": 0.0, "b": 100.0, "c": 300.0}
    dst = {"a": 10.0, "b": 60.0, "c": 460.0}
    z = np.array([0.0, 50.0, 100.0, 200.0, 300.0])
    np.testing.assert_allclose(map_z(z, src, dst), [10.0, 35.0, 60.0, 260.0, 460.0])
    # beyond the outer landmarks: the mean slope of the matched span (450 / 300)
    np.testing.assert_allclose(map_z(np.array([-100.0, 400.0]), src, dst), [-140.0, 610.0])


def test_matched_pairs_drops_folds():
    src = {"a": 0.0, "b": 100.0, "c": 150.0, "d": 300.0}
    dst = {"a": 0.0, "b": 120.0, "c": 110.0, "d": 330.0}  # c folds back
    s, d = matched_pairs(src, dst)
    assert len(s) == 3 and np.all(np.diff(s) > 0) and np.all(np.diff(d) > 0)


def _predictions(lm_scan, z, p_male=0.9, ref_z=None):
    parts = body_parts_per_slice(z, lm_scan)
    prob = np.array([[0.98 if n in ns else 0.02 for n in NAMES] for ns in parts])
    n = len(z)
    return SlicePredictions(slice_z_mm=z, part_probabilities=prob, sex_logit=np.full(n, np.log(p_male / (1 - p_male))),
                            age_years_per_slice=np.full(n, 50.0), weight_kg_per_slice=np.full(n, 80.0),
                            ref_z_mm=np.zeros(n) if ref_z is None else ref_z, seconds={})


@pytest.mark.parametrize("phantom", ["AM", "AF"])
def test_range_on_scaled_reference_body(phantom):
    """A body 5 % taller than the reference, shifted: the mapped range is the true crop on the reference."""
    ref = reference_landmarks(phantom)
    lm = {k: 1.05 * v + 37.0 for k, v in ref.items()}
    z = np.arange(lm["iliac_crest"] - 120.0, lm["lung_apex"] + 20.0, 3.0)[::-1]  # head-first chest-abdomen-pelvis
    ref_am = map_z(z, lm, reference_landmarks("AM"))  # a perfect reference-z regression
    sr = select_range(_predictions(lm, z, 0.9 if phantom == "AM" else 0.1, ref_am))
    assert sr.phantom == phantom and sr.method == "profile"
    true_lo, true_hi = (z.min() - 37.0) / 1.05, (z.max() - 37.0) / 1.05
    assert sr.start_cm * 10 == pytest.approx(true_lo, abs=8.0)
    assert sr.end_cm * 10 == pytest.approx(true_hi, abs=8.0)
    assert 0.3 <= sr.uncertainty_cm < 3.0
    assert "lower_thorax" in sr.covered_body_parts and "brain" not in sr.covered_body_parts
    out = sr.to_json()
    assert out["scan_range_icrp110_cm"]["phantom"] == phantom
    assert len(out["body_parts_per_slice"]) == len(z)


def test_gating_api():
    ref = reference_landmarks("AM")
    z = np.arange(ref["iliac_crest"] - 60.0, ref["lung_apex"] + 20.0, 5.0)[::-1]
    sr = select_range(_predictions(ref, z), phantom="AM")
    assert sr.covers("liver") and sr.covers("waist") and sr.covers("waist", complete=True)
    assert sr.covers("abdomen") and sr.covers("chest") and not sr.covers("head") and not sr.covers("legs")
    abd = sr.slices_of("abdomen")
    assert len(abd) and np.all(z[abd] <= ref["diaphragm_dome"] + 5) and np.all(z[abd] >= ref["femoral_head_top"] - 5)
    liver = sr.slices_of("liver")
    assert len(liver) and abs(z[liver].max() - 1312.0) <= 10
    with pytest.raises(MissingAnatomyError, match="head"):
        sr.require("head")
    with pytest.raises(KeyError):
        sr.slices_of("tail")
    # a chest-only scan does not contain the whole waist
    zc = np.arange(ref["diaphragm_dome"] - 20.0, ref["lung_apex"] + 20.0, 5.0)[::-1]
    src = select_range(_predictions(ref, zc), phantom="AM")
    assert not src.covers("waist", complete=True) and not src.covers("pelvis")
    assert src.body_part_examined() in ("CHEST", "CHESTABDOMEN")


@pytest.mark.parametrize("lo, hi, expected", [
    ("sole", "vertex", "WHOLEBODY"),               # head to feet: the head is only ~13 % of the slices
    ("iliac_crest", "lung_apex", "CHESTABDOMEN"),
    ("ischial_tuberosity", "diaphragm_dome", "ABDOMENPELVIS"),
])
def test_body_part_examined_of_ideal_predictions(lo, hi, expected):
    ref = reference_landmarks("AM")
    z = np.arange(ref[lo] + 10.0, ref[hi] - 10.0, 5.0)[::-1]
    sr = select_range(_predictions(ref, z), phantom="AM")
    assert sr.body_part_examined() == expected


@pytest.mark.parametrize("phantom, lo, hi, expected", [
    ("AF", ("femoral_heads", -15.0), ("heart_bottom", 30.0), "ABDOMENPELVIS"),  # lung bases at the top
    ("AM", ("kidney_top", -50.0), ("lung_apex", 20.0), "CHEST"),  # chest CT down to the upper kidneys
])
def test_body_part_examined_ignores_neighbouring_margins(phantom, lo, hi, expected):
    """As on the two real series (headers OVARY / CHEST): the lung bases at the top of an abdomen-pelvis scan
    and the upper abdomen at the bottom of a chest CT do not add CHEST / ABDOMEN."""
    ref = reference_landmarks(phantom)
    z = np.arange(ref[lo[0]] + lo[1], ref[hi[0]] + hi[1], 3.0)[::-1]
    sr = select_range(_predictions(ref, z, 0.9 if phantom == "AM" else 0.1), phantom=phantom)
    assert sr.body_part_examined() == expected
