"""Display orientation does not depend on how a volume is stored (slice order, coronal slices)."""

import numpy as np

from operators.common.render import canonical_lps, render_overview
from operators.common.volume import affine_from_dicom, axial_affine


def _asymmetric_volume():
    rng = np.random.default_rng(1)
    hu = rng.normal(0, 50, size=(12, 20, 16)).astype(np.float32)
    hu[8:, :5, :4] = 800  # superior, anterior, patient-right corner
    return hu, axial_affine((2.0, 1.0, 1.5), (-12.0, -10.0, 100.0))


def _head_first(hu, aff):
    flipped = hu[::-1]
    a = aff.copy()
    a[:3, 3] = aff[:3, :3] @ [0, 0, hu.shape[0] - 1] + aff[:3, 3]
    a[:3, 2] = -aff[:3, 2]
    return flipped, a


def _coronal_stored(hu, aff):
    # slices along +y (posterior), rows along -z (head at row 0), columns along +x: IOP [1,0,0, 0,0,-1]
    arr = np.transpose(hu, (1, 0, 2))[:, ::-1, :]  # (y, z reversed, x)
    nz = hu.shape[0]
    top_first = aff[:3, :3] @ [0, 0, nz - 1] + aff[:3, 3]
    a = affine_from_dicom(top_first, np.array([1, 0, 0, 0, 0, -1.0]), np.array([aff[2, 2], aff[0, 0]]),
                          aff[:3, 1])
    return np.ascontiguousarray(arr), a


def test_canonical_lps_undoes_storage_order():
    hu, aff = _asymmetric_volume()
    for arr, a in (_head_first(hu, aff), _coronal_stored(hu, aff)):
        can, can_aff = canonical_lps(arr, a)
        np.testing.assert_array_equal(can, hu)
        np.testing.assert_allclose(can_aff, aff, atol=1e-9)


def test_overview_png_identical_for_all_storage_orders(tmp_path):
    import matplotlib.image as mpimg

    hu, aff = _asymmetric_volume()
    pngs = [render_overview(arr, a, tmp_path / f"{n}.png")
            for n, (arr, a) in enumerate([(hu, aff), _head_first(hu, aff), _coronal_stored(hu, aff)])]
    imgs = [mpimg.imread(p) for p in pngs]
    assert imgs[0][..., :3].std() > 0.05
    for img in imgs[1:]:
        np.testing.assert_array_equal(img, imgs[0])
