"""DICOM series -> CTVolume: order, HU, affine, metadata, compressed transfer syntaxes, SDK interoperability."""

import random
import shutil

import numpy as np
import pydicom
import pytest
from _ct_fixtures import make_volume, write_series
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

from operators.common.dicom_files import scan_folder
from operators.common.dicom_series import decode_stack, parse_age, series_geometry, series_to_volume
from operators.common.errors import BadInputError
from operators.common.volume import from_sdk_image, to_sdk_image


def _same_lps_samples(a, b):
    """Both volumes give the same HU at the same LPS points (whatever their index order)."""
    ijk = np.array([[i, j, k] for k in range(a.shape[0]) for j in (0, 3, a.shape[1] - 1) for i in (0, 5)])
    pts = a.index_to_lps(ijk)
    inv = np.linalg.inv(b.affine_lps)
    ijk_b = np.rint(pts @ inv[:3, :3].T + inv[:3, 3]).astype(int)
    np.testing.assert_array_equal(a.hu[ijk[:, 2], ijk[:, 1], ijk[:, 0]], b.hu[ijk_b[:, 2], ijk_b[:, 1], ijk_b[:, 0]])


def test_round_trip_hu_affine_and_metadata(tmp_path):
    ref = make_volume()
    write_series(tmp_path, ref)
    vol = series_to_volume(scan_folder(tmp_path).datasets)
    assert vol.hu.dtype == np.float32 and vol.shape == ref.shape
    np.testing.assert_array_equal(vol.hu, ref.hu)
    np.testing.assert_allclose(vol.affine_lps, ref.affine_lps, atol=1e-6)
    assert vol.spacing_mm == pytest.approx((5.0, 0.8, 0.9))
    m = vol.meta
    assert m.tube_current_ma.shape == (12,) and list(m.tube_current_ma) == pytest.approx(100 + 10 * np.arange(12))
    assert m.exposure_mas is not None and m.exposure_mas.shape == (12,)
    assert (m.kvp, m.ctdivol_mgy, m.convolution_kernel, m.slice_thickness_mm) == (120.0, 10.0, "B30f", 5.0)
    assert (m.patient_age_years, m.patient_sex, m.patient_weight_kg, m.patient_size_m) == (45.0, "F", 70.0, 1.65)
    assert m.manufacturer and m.manufacturer_model_name and m.series_instance_uid and m.study_instance_uid
    assert len(m.sop_instance_uids) == len(m.source_files) == 12
    assert m.source_files[0].endswith("_0001.dcm") and m.gantry_tilt_deg == 0.0


def test_slices_sorted_along_normal_whatever_the_file_order(tmp_path):
    ref = make_volume(nz=10)
    write_series(tmp_path, ref)
    ds = scan_folder(tmp_path).datasets
    random.Random(3).shuffle(ds)
    vol = series_to_volume(ds)
    np.testing.assert_array_equal(vol.hu[:, 0, 0], np.arange(10) * 10.0)
    np.testing.assert_array_equal(vol.meta.tube_current_ma, 100 + 10 * np.arange(10))


def test_head_to_feet_stack_is_reordered_along_the_normal(tmp_path):
    ref = make_volume(nz=8, dz=-2.5, origin=(-10, -10, 50.0))  # slice index runs towards the feet
    write_series(tmp_path, ref)
    vol = series_to_volume(scan_folder(tmp_path).datasets)
    assert vol.affine_lps[2, 2] == pytest.approx(2.5) and vol.affine_lps[2, 3] == pytest.approx(50 - 7 * 2.5)
    np.testing.assert_array_equal(vol.hu, ref.hu[::-1])
    np.testing.assert_array_equal(vol.meta.tube_current_ma, ref.meta.tube_current_ma[::-1])
    _same_lps_samples(ref, vol)


def test_oblique_orientation_affine(tmp_path):
    c, s = np.cos(np.radians(5)), np.sin(np.radians(5))
    ref = make_volume(nz=6, orientation=np.array([c, s, 0, -s, c, 0]))
    write_series(tmp_path, ref)
    vol = series_to_volume(scan_folder(tmp_path).datasets)
    np.testing.assert_allclose(vol.affine_lps, ref.affine_lps, atol=1e-5)
    np.testing.assert_array_equal(vol.hu, ref.hu)


def test_rescale_slope_intercept_applied_per_slice(tmp_path):
    ref = make_volume(nz=4)
    write_series(tmp_path, ref, rescale=(0.5, -1100.0))
    ds = scan_folder(tmp_path).datasets
    vol = series_to_volume(ds)
    np.testing.assert_allclose(vol.hu, ref.hu, atol=0.25)
    # one slice stored with its own intercept
    d2 = ds[2]
    raw = np.frombuffer(d2.PixelData, "<u2").astype(np.int64) + 24
    d2.PixelData = raw.astype("<u2").tobytes()
    d2.RescaleIntercept = "-1112"
    vol2 = series_to_volume(ds)
    np.testing.assert_allclose(vol2.hu, vol.hu, atol=1e-4)


def test_signed_storage_and_bits_stored_match_pydicom(tmp_path):
    ref = make_volume(nz=3)
    write_series(tmp_path, ref, signed=True)
    ds = scan_folder(tmp_path).datasets
    for d in ds:  # 12 bits stored, garbage in the unused high bits: must be sign-extended like pydicom
        a = np.frombuffer(d.PixelData, "<i2").copy()
        a = ((a.astype(np.int32) & 0x0FFF) | 0x5000).astype(np.uint16).view(np.int16)
        d.PixelData = a.tobytes()
        d.BitsStored, d.HighBit = 12, 11
    geom = series_geometry(ds)
    fast = decode_stack([ds[i] for i in geom.order], geom.rows, geom.columns)
    slow = np.stack([ds[i].pixel_array for i in geom.order])
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLSLossless], ids=["jpeg2000", "jpegls"])
def test_compressed_series_give_identical_hu(tmp_path, syntax):
    ref_dir, comp_dir = tmp_path / "ref", tmp_path / "comp"
    ref = make_volume(nz=5, ny=40, nx=48)
    write_series(ref_dir, ref)
    comp_dir.mkdir()
    for p in sorted(ref_dir.iterdir()):
        d = pydicom.dcmread(p)
        d.compress(syntax)
        d.save_as(comp_dir / p.name)
    comp_ds = scan_folder(comp_dir).datasets
    assert all(d.file_meta.TransferSyntaxUID == syntax for d in comp_ds)
    vol_c = series_to_volume(comp_ds)
    vol_r = series_to_volume(scan_folder(ref_dir).datasets)
    np.testing.assert_array_equal(vol_c.hu, vol_r.hu)
    np.testing.assert_array_equal(vol_c.affine_lps, vol_r.affine_lps)


def test_sdk_image_round_trip_and_sdk_operator_agree(tmp_path):
    from monai.deploy.core import Fragment
    from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator

    from operators.series_selector.operator import CTSeriesSelectorOperator
    from operators.series_to_volume.operator import SeriesToVolumeOperator
    from operators.study_loader.operator import CTStudyLoaderOperator

    ref = make_volume(nz=12, pixel=(0.8, 0.8))  # the SDK affine uses PixelSpacing[0] for both in-plane axes
    write_series(tmp_path, ref)
    frag = Fragment()
    studies = CTStudyLoaderOperator(frag, name="loader").load_data_to_studies(tmp_path)
    selected, _ = CTSeriesSelectorOperator(frag, name="selector").select(studies)
    vol, image = SeriesToVolumeOperator(frag, name="to_volume").convert(selected)
    assert selected[0].selected_series[0].image is image
    back = from_sdk_image(to_sdk_image(vol))
    np.testing.assert_array_equal(back.hu, vol.hu)
    np.testing.assert_array_equal(back.affine_lps, vol.affine_lps)
    assert back.meta is vol.meta
    sdk_img = DICOMSeriesToVolumeOperator(frag, name="sdk", affine_lps_to_ras=False).convert_to_image(selected)
    sdk = from_sdk_image(sdk_img)
    np.testing.assert_allclose(sdk.affine_lps, vol.affine_lps, atol=1e-6)
    np.testing.assert_array_equal(sdk.hu, vol.hu)


def test_inconsistent_series_refused(tmp_path):
    ref = make_volume(nz=6)
    write_series(tmp_path, ref)
    ds = scan_folder(tmp_path).datasets
    ds[3].ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    with pytest.raises(BadInputError, match="ImageOrientationPatient"):
        series_to_volume(ds)
    ds = scan_folder(tmp_path).datasets
    del ds[2]
    with pytest.raises(BadInputError, match="not uniform"):
        series_to_volume(ds)
    ds = scan_folder(tmp_path).datasets
    ds[1].RescaleSlope = None
    del ds[1].RescaleSlope
    with pytest.raises(BadInputError, match="RescaleSlope"):
        series_to_volume(ds)


@pytest.mark.parametrize("value, years", [("045Y", 45.0), ("006M", 0.5), ("026W", 26 * 7 / 365.25),
                                          ("010D", 10 / 365.25), ("45", 45.0), ("", None), (None, None),
                                          ("abc", None)])
def test_parse_age(value, years):
    got = parse_age(value)
    assert got == (None if years is None else pytest.approx(years, abs=1e-4))


def test_single_slice_volume_uses_thickness(tmp_path):
    ref = make_volume(nz=1, thickness=2.0)
    write_series(tmp_path, ref)
    vol = series_to_volume(scan_folder(tmp_path).datasets)
    assert vol.shape[0] == 1 and vol.affine_lps[2, 2] == pytest.approx(2.0)
    shutil.rmtree(tmp_path)
