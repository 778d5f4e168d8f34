"""Properties of the range selector's profile fit (operators/graynet_range/range_selector.py): crops of a body
of another size map onto their true place on the reference body, the mapped range never leaves the phantom,
corrupted slices do not drag the range, and the stated uncertainty grows when the scan shows few body-part
transitions. Per-slice predictions are built from landmark geometry here (no network), except the last test,
which runs the real GrayNet bundle on the session's demo phantom."""

import numpy as np
import pytest

from operators.common.labels import BODY_PARTS, body_parts_per_slice
from operators.graynet_range.inference import GrayNetModel, SlicePredictions
from operators.graynet_range.landmark_map import map_z
from operators.graynet_range.range_selector import select_range
from operators.graynet_range.reference import reference_landmarks

NAMES = [bp.name for bp in BODY_PARTS]


def _body(phantom: str, scale: float, shift: float) -> dict[str, float]:
    """Landmarks of a body ``scale`` times the reference's height, standing ``shift`` mm higher in the scanner."""
    return {k: scale * v + shift for k, v in reference_landmarks(phantom).items()}


def _predictions(lm, z, rng, p_male=0.9, ref_noise_mm=40.0, soft=0.9):
    """Slice predictions of a decent network: probability ``soft`` for the true parts, noisy reference z."""
    parts = body_parts_per_slice(z, lm)
    prob = np.array([[soft if n in ns else 1 - soft for n in NAMES] for ns in parts])
    prob = np.clip(prob + rng.normal(0, 0.05, prob.shape), 0.01, 0.99)
    n = len(z)
    ref_am = map_z(z, lm, reference_landmarks("AM")) + rng.normal(0, ref_noise_mm, n)
    return SlicePredictions(slice_z_mm=z, part_probabilities=prob, sex_logit=np.full(n, np.log(p_male / (1 - p_male))),
                            age_years_per_slice=np.full(n, 50.0), weight_kg_per_slice=np.full(n, 80.0),
                            ref_z_mm=ref_am, seconds={})


def _true_ends(z, lm, phantom):
    return map_z(np.array([z.min(), z.max()]), lm, reference_landmarks(phantom))


@pytest.mark.parametrize("phantom", ["AM", "AF"])
def test_random_crops_map_to_their_true_place(phantom):
    """20 random crops (15-60 cm, anywhere from feet to head) of bodies 0.88-1.15 x the reference height:
    ends within 2.5 cm of the truth, mean within 0.8 cm."""
    rng = np.random.default_rng(3)
    errs = []
    for _ in range(20):
        scale = rng.uniform(0.88, 1.15)
        lm = _body(phantom, scale, rng.uniform(-200, 200))
        length = rng.uniform(150, 600)
        lo = rng.uniform(lm["sole"], lm["vertex"] - length)
        dz = float(rng.choice([2.0, 3.0, 5.0]))
        z = np.arange(lo, lo + length, dz)[::-1]  # head first
        sr = select_range(_predictions(lm, z, rng, 0.9 if phantom == "AM" else 0.1), phantom=phantom)
        errs.extend(np.abs(np.array([sr.start_cm, sr.end_cm]) * 10 - _true_ends(z, lm, phantom)))
    errs = np.array(errs)
    assert errs.max() < 25.0, errs.max()
    assert errs.mean() < 8.0, errs.mean()


def test_never_maps_outside_the_phantom():
    """Nonsense input (every slice 'brain', random probabilities, a scan longer than the phantom at the
    reference scale) still gives a range inside 0 .. vertex."""
    rng = np.random.default_rng(0)
    top = reference_landmarks("AM")["vertex"]
    for z, prob in [
        (np.arange(0.0, 600.0, 5.0), np.tile(np.eye(24)[NAMES.index("brain")] * 0.98 + 0.01, (120, 1))),
        (np.arange(0.0, 1500.0, 5.0), rng.random((300, 24))),
        (np.arange(0.0, 2100.0, 5.0), rng.random((420, 24))),
    ]:
        n = len(z)
        pred = SlicePredictions(z, prob, np.zeros(n), np.full(n, 40.0), np.full(n, 70.0),
                                rng.uniform(-3000, 3000, n), {})
        sr = select_range(pred, phantom="AM")
        assert 0.0 <= sr.start_cm * 10 <= sr.end_cm * 10 <= top
        assert np.all((sr.ref_z_mm >= 0) & (sr.ref_z_mm <= top))


def test_corrupted_slices_do_not_drag_the_range():
    """A chest-abdomen scan where 15 % of the slices (a contiguous block) claim to be the knee and their
    reference z says 50 cm: the range stays within 2 cm of the truth."""
    rng = np.random.default_rng(5)
    lm = _body("AM", 1.04, 60.0)
    z = np.arange(lm["iliac_crest"] - 50.0, lm["lung_apex"] + 30.0, 3.0)
    pred = _predictions(lm, z, rng)
    k0, k1 = int(0.4 * len(z)), int(0.55 * len(z))
    pred.part_probabilities[k0:k1] = 0.02
    pred.part_probabilities[k0:k1, NAMES.index("knee")] = 0.98
    pred.ref_z_mm[k0:k1] = 500.0
    sr = select_range(pred, phantom="AM")
    err = np.abs(np.array([sr.start_cm, sr.end_cm]) * 10 - _true_ends(z, lm, "AM"))
    assert err.max() < 20.0, err


def test_uncertainty_grows_when_transitions_are_few():
    """Same length (20 cm), same predictions quality: the mid-thigh crop (one body part throughout, no
    transition) states a larger uncertainty than the thoraco-abdominal crop (many transitions), and its
    stated uncertainty covers its actual error."""
    rng = np.random.default_rng(11)
    lm = _body("AM", 1.0, 0.0)
    thigh = np.arange(lm["knees"] + 90.0, lm["knees"] + 290.0, 5.0)
    trunk = np.arange(lm["lowest_rib"] - 50.0, lm["lowest_rib"] + 150.0, 5.0)
    u, e = {}, {}
    for name, z in (("thigh", thigh), ("trunk", trunk)):
        sr = select_range(_predictions(lm, z, rng, ref_noise_mm=60.0), phantom="AM")
        u[name] = sr.uncertainty_cm * 10
        e[name] = np.abs(np.array([sr.start_cm, sr.end_cm]) * 10 - _true_ends(z, lm, "AM")).max()
    assert u["thigh"] > 1.5 * u["trunk"], u
    assert e["thigh"] <= 2.5 * u["thigh"], (e, u)


def test_real_network_on_demo_phantom(demo_study):
    """The bundle's network on the session's demo phantom (abdomen, never seen in training): the mapped
    range lies within 2.5 cm of the phantom's true range on the reference body (measured: 0.5 cm)."""
    from operators.common.paths import REPO_ROOT

    ph = demo_study.phantom
    model = GrayNetModel.from_bundle(REPO_ROOT / "models" / "graynet")
    pred = model.predict(ph.ct)
    phantom = "AF" if ph.params.sex == "F" else "AM"
    sr = select_range(pred, phantom=phantom)
    true = _true_ends(pred.slice_z_mm, ph.landmarks_mm, phantom)
    got = np.array([sr.start_cm, sr.end_cm]) * 10
    assert np.abs(got - true).max() < 25.0, (got, true)


def test_chest_scan_is_never_called_pelvis():
    """A chest scan whose network output calls 'pelvis' / 'hips' on a block of 12 slices (as on an unusual real
    slice): the body parts per slice follow the fitted position on the reference body, so no slice is called
    pelvis and the DICOM body part examined is CHEST (the network's own calls would say pelvis)."""
    rng = np.random.default_rng(2)
    lm = _body("AF", 0.95, -40.0)
    z = np.arange(lm["diaphragm_dome"] - 10.0, lm["lung_apex"] + 25.0, 2.0)[::-1]
    pred = _predictions(lm, z, rng, p_male=0.2)
    pred.part_probabilities[40:52, NAMES.index("pelvis")] = 0.95
    pred.part_probabilities[40:52, NAMES.index("hips")] = 0.95
    assert select_range(pred, phantom="AF", method="landmarks").covers("pelvis")  # the raw calls
    sr = select_range(pred, phantom="AF")
    assert not sr.covers("pelvis") and not sr.covers("legs") and not sr.covers("head")
    assert sr.covers("chest") and sr.body_part_examined() == "CHEST"
