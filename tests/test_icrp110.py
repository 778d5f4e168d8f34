"""ICRP-110 CT synthesis (models/phantoms/icrp110.py): HU from media physics, landmarks, orientation.
Needs ../shared/data/icrp110 (marked realdata; skipped with the reason when absent)."""

import numpy as np
import pytest
from scipy import ndimage

from models.phantoms import icrp110
from operators.common.labels import ALL_ORGANS, LANDMARKS, organ_mask
from operators.common.labels import ORGAN_BY_NAME as O

pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not icrp110.available(),
                                 reason="ICRP-110 phantom data not found (../shared/data/icrp110 or $CORPUSCT_DATA); "
                                        "see ../shared/data/README.md")]


@pytest.mark.parametrize("phantom", ["AM", "AF"])
def test_media_hu_plausible(phantom):
    lut = icrp110.organ_hu_table(phantom)
    assert -120 <= lut[117] <= -60  # residual tissue (adipose), fat -100 +- 20
    assert 30 <= lut[95] <= 75  # liver unenhanced 55 +- 8 (ICRP density 1.05 gives ~45)
    assert 30 <= lut[107] <= 70  # muscle 45 +- 10
    assert lut[41] > 1000  # cortical bone 700-1500+
    assert 100 <= lut[42] <= 400  # pelvis spongiosa, cancellous 150-350
    assert -700 <= lut[97] <= -550  # ICRP's compressed-lung medium (0.382 g/cm3)
    assert lut[0] == -1000
    # the synthesis replaces it by inflated lung (ct-realism: -850 +- 50)
    p = icrp110.SynthesisParams()
    assert icrp110.realistic_hu_table(phantom, p, np.random.default_rng(0))[97] == pytest.approx(-820, abs=30)


def test_water_reference():
    assert icrp110.hu_of(1.0, icrp110.WATER_FRACTIONS) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("phantom", ["AM", "AF"])
def test_landmarks_head_to_feet(phantom):
    lm = icrp110.landmarks_mm(phantom)
    assert list(lm) == list(LANDMARKS)
    z = [lm[n] for n in LANDMARKS]
    assert all(a >= b for a, b in zip(z, z[1:], strict=False))
    assert lm["sole"] == 0.0 and 1600 < lm["vertex"] < 1800
    assert lm["diaphragm_dome"] > lm["l3"] > lm["femoral_heads"] > lm["knees"]
    # the committed run-time table matches what the phantom data give
    from operators.graynet_range.reference import reference_landmarks
    assert reference_landmarks(phantom) == pytest.approx(lm, abs=0.01)


@pytest.mark.parametrize("phantom", ["AM", "AF"])
def test_orientation_lps(phantom):
    """Columns run patient right -> left (+x), rows anterior -> posterior (+y), slices feet -> head (+z)."""
    ids, aff = icrp110.load_organ_ids(phantom)
    assert aff[0, 0] > 0 and aff[1, 1] > 0 and aff[2, 2] > 0

    def centroid(group):
        return np.argwhere(np.isin(ids, group)).mean(axis=0)  # (k, j, i)

    liver, spleen = centroid((95,)), centroid((127,))
    assert liver[2] < spleen[2]  # liver on the patient's right: smaller x
    sternum, spine = centroid((55, 56)), centroid((49, 50))
    assert sternum[1] < spine[1]  # sternum anterior
    assert centroid((61,))[0] > liver[0] > centroid((137, 138))[0]  # brain above liver above bladder


def test_synthesize_partial_scan():
    p = icrp110.SynthesisParams(seed=1, z_range_mm=(1100.0, 1300.0), matrix=96, pixel_mm=5.0, scale_lr=1.2,
                                scale_ap=1.1, deform_mm=3.0, contrast="portal")
    s = icrp110.synthesize_ct("AM", p)
    assert s.ct.hu.shape[1:] == (96, 96)
    assert s.ct.affine_lps[2, 2] < 0  # head-first
    assert s.weight_kg == pytest.approx(73.0 * 1.2 * 1.1, rel=1e-3)
    covered = {n for names in s.body_parts for n in names}
    assert {"upper_abdomen", "kidneys"} <= covered and "brain" not in covered
    body = s.ct.hu[s.ct.hu > -500]
    assert -200 < np.median(body) < 150


# --- organ labels ---------------------------------------------------------------------------------------

def _ml_per_voxel(phantom):
    _, aff = icrp110.load_organ_ids(phantom)
    return abs(np.linalg.det(aff[:3, :3])) / 1000.0


@pytest.mark.parametrize("phantom, liver_g, spleen_g", [("AM", 1800.0, 150.0), ("AF", 1400.0, 130.0)])
def test_organ_volumes_match_icrp89_reference_masses(phantom, liver_g, spleen_g):
    """ICRP 89 reference organ masses / ICRP-110 densities (1.05 liver, 1.04 spleen), within 10 %."""
    lab = icrp110.organ_labels(phantom)
    v = _ml_per_voxel(phantom)
    assert (lab == O["liver"].id).sum() * v == pytest.approx(liver_g / 1.05, rel=0.10)
    assert (lab == O["spleen"].id).sum() * v == pytest.approx(spleen_g / 1.04, rel=0.10)
    present = set(np.unique(lab).tolist())
    # no duodenum and no separable aorta / IVC in ICRP-110: absent rather than wrong
    assert {O["aorta"].id, O["inferior_vena_cava"].id, O["gi_tract"].id}.isdisjoint(present)
    assert {o.id for o in ALL_ORGANS} - present == {O["aorta"].id, O["inferior_vena_cava"].id, O["gi_tract"].id}


@pytest.mark.parametrize("phantom", ["AM", "AF"])
def test_femoral_heads_two_plausible_spheres_at_the_hip(phantom):
    lab = icrp110.organ_labels(phantom)
    ids, aff = icrp110.load_organ_ids(phantom)
    fh = lab == O["femoral_heads"].id
    comps, n = ndimage.label(fh)
    assert n == 2
    v = _ml_per_voxel(phantom)
    vols = ndimage.sum(fh, comps, [1, 2]) * v
    assert all(25.0 < x < 90.0 for x in vols), vols  # heads of 36-55 mm diameter
    cents = np.array(ndimage.center_of_mass(fh, comps, [1, 2]))
    dz, dx = aff[2, 2], aff[0, 0]
    assert abs(cents[0, 2] - cents[1, 2]) * dx > 120.0  # one per side, 15-20 cm apart
    lm = icrp110.landmarks_raw_mm(phantom)
    for c in cents:
        assert lm["ischial_tuberosity"] < c[0] * dz < lm["iliac_crest"]
    # carved out of the upper femora only, and no longer labelled bone there
    assert np.isin(ids[fh], (28, 29, 30)).all()
    assert (lab[np.isin(ids, (28, 29, 30))] == O["bones"].id).any()


@pytest.mark.parametrize("phantom", ["AM", "AF"])
def test_eyes_contain_lenses_and_optic_nerves_run_to_the_pituitary(phantom):
    lab = icrp110.organ_labels(phantom)
    ids, aff = icrp110.load_organ_ids(phantom)
    lenses = lab == O["lenses"].id
    assert lenses.sum() > 0 and np.isin(ids[lenses], (66, 68)).all()
    eyes = organ_mask(lab, "eyes")
    assert (eyes & lenses).sum() == lenses.sum() and eyes.sum() > (lab == O["eyes"].id).sum()
    nerve = np.argwhere(lab == O["optic_nerves"].id)
    pit = np.argwhere(lab == O["pituitary_gland"].id).mean(axis=0)
    bulbs = np.argwhere(np.isin(ids, (67, 69)))
    assert len(nerve) > 0
    # behind the eyes and in front of (or at) the pituitary, on both sides of the midline
    assert (nerve[:, 1] >= bulbs[:, 1].mean()).all() and (nerve[:, 1] <= pit[1] + 3).all()
    assert (nerve[:, 2] < pit[2]).any() and (nerve[:, 2] > pit[2]).any()
    assert not np.isin(ids[lab == O["optic_nerves"].id], icrp110.BONE_IDS + (61,)).any()


def _aligned_params(**kw):
    """No noise, blur, texture or HU jitter: every labelled voxel away from an edge shows its organ's HU."""
    base = dict(seed=3, z_range_mm=(1150.0, 1350.0), matrix=128, pixel_mm=3.5, noise_hu=0.0, psf_fwhm_mm=0.0,
                texture_hu=0.0, hu_jitter=0.0, table=False, slice_thickness_mm=5.0)
    base.update(kw)
    return icrp110.SynthesisParams(**base)


@pytest.mark.parametrize("deform", [0.0, 6.0])
def test_synthetic_labels_align_with_hu(deform):
    """The label grid follows the HU through scaling and deformation: inside the liver label (eroded by one
    pixel against partial volume) the HU is the liver's; the lungs are air-dense, the bones bone-dense."""
    p = _aligned_params(deform_mm=deform, scale_lr=1.15, scale_ap=0.95, scale_z=1.05)
    s = icrp110.synthesize_ct("AM", p)
    assert s.organs is not None and s.organs.shape == s.ct.hu.shape and s.organs.dtype == np.uint8
    hu = s.ct.hu
    liver_hu = icrp110.realistic_hu_table("AM", p, np.random.default_rng(p.seed))[95]
    core = ndimage.binary_erosion(s.organs == O["liver"].id, np.ones((1, 3, 3), bool))
    assert core.sum() > 2000
    assert np.mean(np.abs(hu[core] - liver_hu) < 5.0) > 0.95
    assert np.median(hu[organ_mask(s.organs, "lungs")]) < -600
    assert np.median(hu[organ_mask(s.organs, "bones")]) > 150
    # and a label shifted by a few pixels would not align: the test can fail
    shifted = np.roll(core, 4, axis=2)
    assert np.mean(np.abs(hu[shifted] - liver_hu) < 5.0) < np.mean(np.abs(hu[core] - liver_hu) < 5.0)


def test_synthesis_without_organs_and_deformation_changes_labels():
    a = icrp110.synthesize_ct("AF", _aligned_params(matrix=64, pixel_mm=7.0), with_organs=False)
    assert a.organs is None
    b = icrp110.synthesize_ct("AF", _aligned_params(matrix=64, pixel_mm=7.0))
    c = icrp110.synthesize_ct("AF", _aligned_params(matrix=64, pixel_mm=7.0, deform_mm=6.0))
    np.testing.assert_array_equal(a.ct.hu, b.ct.hu)  # labels do not change the image
    assert (b.organs != c.organs).mean() > 0.005
