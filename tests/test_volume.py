"""Geometry conventions: LPS affine from DICOM tags, NIfTI (RAS) and SDK Image round trips."""

import numpy as np
import pytest

from operators.common.volume import (
    CTMetadata,
    CTVolume,
    affine_from_dicom,
    axial_affine,
    from_sdk_image,
    load_nifti,
    save_nifti,
    to_sdk_image,
)


def _oblique_volume():
    rng = np.random.default_rng(0)
    hu = rng.normal(0, 100, size=(4, 5, 6)).astype(np.float32)
    # rows 0.7 mm apart, columns 0.9 mm apart; slice step 2.5 mm with a small x shift (sheared stack)
    aff = affine_from_dicom(np.array([-100.0, -80.0, 50.0]), np.array([1, 0, 0, 0, 1, 0.0]),
                            np.array([0.7, 0.9]), np.array([0.1, 0.0, -2.5]))
    return CTVolume(hu, aff, CTMetadata(study_instance_uid="1.2.3", series_instance_uid="1.2.3.4"))


def test_affine_maps_indices_as_dicom_defines():
    vol = _oblique_volume()
    # pixel (column i=2, row j=3) of slice k=1: IPP + i*col_spacing*row_cos + j*row_spacing*col_cos + k*step
    p = vol.index_to_lps([2, 3, 1])[0]
    assert p == pytest.approx([-100 + 2 * 0.9 + 0.1, -80 + 3 * 0.7, 50 - 2.5])
    assert vol.spacing_mm == pytest.approx((np.hypot(2.5, 0.1), 0.7, 0.9))


def test_axial_affine_and_slice_z():
    aff = axial_affine((5.0, 0.8, 0.8), (-200.0, -200.0, -300.0))
    vol = CTVolume(np.zeros((3, 2, 2), np.float32), aff)
    assert vol.slice_z_mm == pytest.approx([-300, -295, -290])
    assert vol.spacing_mm == pytest.approx((5.0, 0.8, 0.8))


def test_rejects_non_3d():
    with pytest.raises(ValueError, match="3-D"):
        CTVolume(np.zeros((2, 2), np.float32), np.eye(4))


def test_nifti_round_trip_keeps_lps_geometry(tmp_path):
    vol = _oblique_volume()
    path = save_nifti(vol.hu, vol.affine_lps, tmp_path / "v.nii.gz")
    data, aff = load_nifti(path)
    np.testing.assert_array_equal(data, vol.hu)
    np.testing.assert_allclose(aff, vol.affine_lps, atol=1e-5)
    # and NIfTI itself holds RAS: the first voxel's x is negated
    import nibabel as nib
    ras = nib.load(str(path)).affine
    assert ras[0, 3] == pytest.approx(100.0) and ras[2, 3] == pytest.approx(50.0)


def test_sdk_image_round_trip():
    vol = _oblique_volume()
    img = to_sdk_image(vol)
    assert img.asnumpy().shape == vol.hu.shape
    assert img.metadata()["space"] == "LPS"
    back = from_sdk_image(img)
    np.testing.assert_array_equal(back.hu, vol.hu)
    np.testing.assert_allclose(back.affine_lps, vol.affine_lps)
    assert back.meta.series_instance_uid == "1.2.3.4"


def test_from_sdk_image_converts_ras_metadata():
    from monai.deploy.core.domain import Image
    vol = _oblique_volume()
    ras = np.diag([-1.0, -1, 1, 1]) @ vol.affine_lps
    back = from_sdk_image(Image(vol.hu, {"affine": ras, "space": "RAS"}))
    np.testing.assert_allclose(back.affine_lps, vol.affine_lps)
