"""ICRP-110 CT synthesis (models/phantoms/icrp110.py): HU from media physics, landmarks, orientation.
Needs ../shared/data/icrp110 (marked realdata; skipped with the reason when absent)."""

import numpy as np
import pytest

from models.phantoms import icrp110
from operators.common.labels import LANDMARKS

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
