"""HU refinement of the body-composition network (operators/body_composition/refine.py) on a hand-built
phantom slab: coarse, deliberately wrong network regions on the 4 mm / 5 mm model grid, exact tissue HU at
1 mm. The refined labels must follow the native HU (fat never muscle, muscle-HU never fat), the skin rim must
be SKIN_MM thick, marrow enclosed by bone must be bone, and the table must be outside the body."""

import numpy as np
import pytest

from operators.body_composition.preprocess import ModelGrid
from operators.body_composition.refine import (
    HU_TYPES,
    SKIN_MM,
    hu_type,
    refine_to_native,
)
from operators.common.morphology import fill_holes_per_slice
from operators.common.volume import axial_affine

SKIN, BONE, MUSCLE, AVF, SF, IO, CNS = range(1, 8)
NZ, N = 20, 160  # 2 mm slices, 1 mm pixels


def _slab():
    """(hu, truth regions, radius map): concentric body (r < 60 mm): SF 48-60, muscle 36-48, abdominal fat
    inside, an organ disc (r < 14) and a vertebra (cortical ring 700 HU around 150 HU cancellous bone) behind
    it; a table (300 HU plate) 4 mm below the body."""
    yy, xx = np.mgrid[0:N, 0:N] - N / 2 + 0.5
    r = np.hypot(yy, xx)
    hu = np.full((N, N), -1000.0, np.float32)
    hu[r < 60] = -100.0  # SF
    hu[r < 48] = 50.0  # muscle ring
    hu[r < 36] = -90.0  # visceral fat
    hu[r < 14] = 40.0  # organ
    rv = np.hypot(yy - 25, xx)  # vertebra, posterior (rows run anterior -> posterior)
    hu[rv < 8] = 700.0
    hu[rv < 5] = 150.0
    vessel = np.hypot(yy + 42, xx) < 2.5  # a contrast-filled vessel (200 HU) inside the anterior muscle ring
    hu[vessel] = 200.0
    hu[(yy > 64) & (yy < 67) & (np.abs(xx) < 70)] = 300.0  # table
    truth = np.zeros((N, N), np.uint8)
    truth[r < 60] = SF
    truth[r < 48] = MUSCLE
    truth[r < 36] = AVF
    truth[r < 14] = IO
    truth[rv < 8] = BONE
    truth[vessel] = IO
    return np.repeat(hu[None], NZ, 0), truth, r


def _coarse_logits(grid: ModelGrid, truth2d: np.ndarray, shift_mm: float = 4.0) -> np.ndarray:
    """Confident logits on the model grid from the truth regions with the muscle ring grown outwards by
    ``shift_mm`` (the network's 4 mm boundary drift) and no skin at all."""
    mz, my, mx = grid.model_shape
    yy, xx = (np.mgrid[0:my, 0:mx] + 0.5) * (N / my) - N / 2
    r = np.hypot(yy, xx)
    rv = np.hypot(yy - 25, xx)
    lab = np.zeros((my, mx), np.int64)
    lab[r < 61] = SF
    lab[r < 48 + shift_mm] = MUSCLE
    lab[r < 36] = AVF
    lab[r < 14] = IO
    lab[rv < 9] = BONE
    lg = np.full((8, mz, my, mx), -5.0, np.float32)
    for c in range(8):
        lg[c][:, lab == c] = 5.0
    return lg


@pytest.fixture(scope="module")
def refined():
    hu, truth, r = _slab()
    aff = axial_affine((2.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    grid = ModelGrid.of(hu.shape, aff)
    lab = refine_to_native(grid, _coarse_logits(grid, truth), hu)
    return hu, truth, r, lab


def test_hu_types_follow_the_paper_thresholds():
    hu = np.array([-1000, -191, -190, -30, -29, 150, 151, 250, 251], np.float32)
    names = [HU_TYPES[t] for t in hu_type(hu)]
    assert names == ["air_gas", "air_gas", "fat", "fat", "soft", "soft", "dense", "dense", "bone"]


def test_fill_holes_per_slice_fills_only_enclosed_holes():
    m = np.zeros((2, 9, 9), bool)
    m[0, 2:7, 2:7] = True
    m[0, 4, 4] = False  # enclosed hole
    m[1, 2:7, 2:7] = True
    m[1, 4, 2:5] = False  # notch open to the outside
    f = fill_holes_per_slice(m)
    assert f[0, 4, 4] and not f[1, 4, 2] and not f[1, 4, 3]
    # the one-pass version equals scipy's per-slice binary_fill_holes on random masks
    from scipy import ndimage

    r = np.random.default_rng(3).random((6, 40, 40)) > 0.45
    assert np.array_equal(fill_holes_per_slice(r), np.stack([ndimage.binary_fill_holes(s) for s in r]))


def test_tissue_follows_native_hu(refined):
    hu, truth, r, lab = refined
    mid = lab[NZ // 2]
    t = hu_type(hu[NZ // 2])
    assert not ((mid == MUSCLE) & (t == 1)).any(), "fat-HU voxels labelled muscle"
    assert not (np.isin(mid, [SF, AVF]) & (t == 2)).any(), "muscle-HU voxels labelled fat"
    # muscle is -29..150 HU (the paper's threshold, the usual SMA definition): the enhanced vessel that the
    # network's muscle ring covers is IO
    assert not ((mid == MUSCLE) & (t >= 3)).any(), "voxels above 150 HU labelled muscle"
    assert (mid[truth == IO] == IO).all()
    # the network's muscle ring reaches 4 mm into the subcutaneous fat: the HU gives it back to SF
    band = (r > 49) & (r < 51)
    assert (mid[band] == SF).mean() > 0.98
    ring = (r > 37) & (r < 47)
    assert (mid[ring] == MUSCLE).mean() > 0.98
    assert (mid[(r > 16) & (r < 34) & (truth == AVF)] == AVF).mean() > 0.98


def test_skin_rim_thickness_and_table(refined):
    hu, truth, r, lab = refined
    mid = lab[NZ // 2]
    row = mid[N // 2, : N // 2]  # from the right edge to the centre
    n_skin = int((row == SKIN).sum())
    assert n_skin == round(SKIN_MM / 1.0)
    assert (mid[r >= 61] == 0).all(), "table or air labelled as body"
    assert (mid[(r > 52) & (r < 57)] == SF).all()


def test_marrow_enclosed_by_bone_is_bone(refined):
    hu, truth, r, lab = refined
    mid = lab[NZ // 2]
    yy, xx = np.mgrid[0:N, 0:N] - N / 2 + 0.5
    rv = np.hypot(yy - 25, xx)
    assert (mid[rv < 4.5] == BONE).all()  # 150 HU "dense" inside the cortical ring
    assert (mid[(rv > 5.5) & (rv < 7.5)] == BONE).all()
    assert not (mid[(rv > 10) & (rv < 12)] == BONE).any()  # the coarse bone region does not leak


def test_no_visceral_fat_from_the_large_lungs_upwards():
    from operators.body_composition.refine import no_visceral_fat_in_chest

    lab = np.full((5, 40, 40), AVF, np.uint8)  # canonical: slice 0 most inferior
    hu = np.full((5, 40, 40), -90.0, np.float32)
    lung_px = (0, 200, 1200, 500, 0)  # voxels of lung per slice (3 mm pixels: 0.09 cm2 each)
    for k, n in enumerate(lung_px):
        flat_l, flat_h = lab[k].reshape(-1), hu[k].reshape(-1)
        flat_l[:n] = IO
        flat_h[:n] = -850.0
    no_visceral_fat_in_chest(lab, hu, (3.0, 3.0))  # lung areas 0, 18, 108, 45, 0 cm2
    assert (lab[0] == AVF).all()  # abdomen below the lungs
    assert (lab[1] == AVF).sum() == 1600 - 200  # lung bases (18 cm2 < half of 108) beside the upper abdomen
    assert not (lab[2:] == AVF).any()  # thorax, apices (45 cm2) and the neck above them: no AVF
    assert (lab[2:] == IO).all()
    lab2 = np.full((2, 10, 10), AVF, np.uint8)
    no_visceral_fat_in_chest(lab2, np.full((2, 10, 10), -90.0, np.float32), (3.0, 3.0))
    assert (lab2 == AVF).all()  # no lungs in the scan: nothing changes
