"""Bad input: every case ends in a skipped file with a named reason, a rejected series with a named reason, or a
``BadInputError`` (exit code 2) whose message says what is wrong. Fixtures are small series written with the
phantom package's ``write_ct_series`` (no ../shared needed)."""

import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from _ct_fixtures import make_volume, study_info, write_series
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import JPEG2000Lossless, generate_uid

from models.phantoms.dicom_export import IMAGE_TYPE_LOCALIZER
from operators.common.dicom_files import scan_folder
from operators.common.dicom_series import series_to_volume
from operators.common.errors import BadInputError

LOADER_LOG = "operators.study_loader.operator"


def _select(folder, **kw):
    """Loader + selector operators as the app runs them; returns (chosen series datasets, report)."""
    from monai.deploy.core import Fragment

    from operators.series_selector.operator import CTSeriesSelectorOperator
    from operators.study_loader.operator import CTStudyLoaderOperator

    frag = Fragment()
    studies = CTStudyLoaderOperator(frag, name="loader").load_data_to_studies(Path(folder))
    selected, report = CTSeriesSelectorOperator(frag, name="selector", **kw).select(studies)
    return selected[0].selected_series[0].series, report


def _reasons(report, number):
    return " | ".join(next(s for s in report.series if s.series_number == number).reasons)


@pytest.fixture
def good(tmp_path):
    """One clean 12-slice axial CT series (series 2) in tmp/study."""
    d = tmp_path / "study"
    paths = write_series(d, make_volume())
    return d, paths


# --- folders -------------------------------------------------------------------------------------------

def test_empty_folder(tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(BadInputError, match=r"Input folder .*in is empty"):
        _select(tmp_path / "in")


def test_missing_folder(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        scan_folder(tmp_path / "nope")


def test_folder_without_dicom(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.dcm").write_bytes(b"\0" * 50)
    with pytest.raises(BadInputError, match=r"holds no usable DICOM instance \(2 file\(s\) examined.*not a DICOM"):
        _select(tmp_path)


# --- files ---------------------------------------------------------------------------------------------

def test_non_dicom_file_is_skipped_with_warning(good, caplog):
    d, paths = good
    (d / "notes.txt").write_text("scanner export notes")
    (d / "deeper").mkdir()
    shutil.move(paths[5], d / "deeper" / paths[5].name)  # recursive
    with caplog.at_level(logging.WARNING, logger=LOADER_LOG):
        series, report = _select(d)
    assert len(series.get_sop_instances()) == 12
    assert "Skipped file notes.txt: not a DICOM file" in caplog.text
    assert report.to_json()["skipped_files"] == [{"file": "notes.txt",
                                                  "reason": "not a DICOM file (no 'DICM' prefix / file meta information)"}]


def test_truncated_file_is_skipped_and_rest_usable(good, caplog):
    d, paths = good
    last = paths[-1]  # the top slice: the series stays contiguous
    last.write_bytes(last.read_bytes()[: last.stat().st_size - 1000])
    hdr = paths[0]  # the bottom slice, cut inside its header
    hdr.write_bytes(hdr.read_bytes()[:600])
    with caplog.at_level(logging.WARNING, logger=LOADER_LOG):
        series, report = _select(d)
    assert f"Skipped file {last.name}: truncated pixel data" in caplog.text
    assert f"Skipped file {hdr.name}: " in caplog.text
    vol = series_to_volume(series)
    assert vol.shape[0] == 10 and np.isfinite(vol.hu).all()


def test_truncated_file_in_the_middle_leaves_a_named_gap(good):
    d, paths = good
    mid = paths[6]
    mid.write_bytes(mid.read_bytes()[:-500])
    with pytest.raises(BadInputError) as ei:
        _select(d)
    msg = str(ei.value)
    assert "missing slice between z=-75.0 and z=-65.0 mm (expected spacing 5.0 mm" in msg
    assert "1 unreadable file(s) were skipped" in msg


def test_corrupt_native_pixel_data_is_skipped(good, caplog):
    d, paths = good
    ds = pydicom.dcmread(paths[-1])
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]  # a well-formed file whose pixel data is short
    ds.save_as(paths[-1])
    with caplog.at_level(logging.WARNING, logger=LOADER_LOG):
        series, _ = _select(d)
    assert f"Skipped file {paths[-1].name}: truncated pixel data (512 of 1536 bytes)" in caplog.text
    assert series_to_volume(series).shape == (11, 24, 32)


def test_undecodable_compressed_pixel_data_is_skipped(tmp_path, caplog):
    d = tmp_path
    ref = make_volume(ny=48, nx=64)  # big enough for the JPEG 2000 encoder's default resolutions
    paths = write_series(d, ref)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(JPEG2000Lossless)
        ds.save_as(p)
    ds = pydicom.dcmread(paths[-1])
    frag = bytearray(ds.PixelData)
    frag[40:] = b"\xff" * (len(frag) - 40)  # keep the item header, garble the codestream
    ds.PixelData = bytes(frag)
    ds.save_as(paths[-1])
    with caplog.at_level(logging.WARNING, logger=LOADER_LOG):
        series, _ = _select(d)
    assert f"Skipped file {paths[-1].name}: compressed pixel data (JPEG 2000 Image Compression (Lossless Only)) " \
           "cannot be decoded" in caplog.text
    vol = series_to_volume(series)
    np.testing.assert_array_equal(vol.hu, ref.hu[:11])


def test_second_copy_of_an_instance_is_skipped(good, caplog):
    d, paths = good
    shutil.copy(paths[3], d / "copy_of_slice.dcm")
    with caplog.at_level(logging.WARNING, logger=LOADER_LOG):
        series, _ = _select(d)
    assert "Skipped file copy_of_slice.dcm: second copy of an instance already read" in caplog.text
    assert len(series.get_sop_instances()) == 12


# --- studies without a usable CT -----------------------------------------------------------------------

def _write_sr(folder: Path, study_uid: str) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.Modality, ds.SeriesNumber, ds.SeriesDescription = "SR", 99, "Dose report"
    ds.save_as(folder / "sr.dcm", enforce_file_format=True)


def test_study_without_ct(tmp_path):
    st = study_info()
    write_series(tmp_path, make_volume(), 5, "T1 AXIAL", study=st,
                 overrides={"Modality": "MR", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.4"})
    _write_sr(tmp_path, st.study_instance_uid)
    with pytest.raises(BadInputError) as ei:
        _select(tmp_path)
    msg = str(ei.value)
    assert msg.startswith("No usable CT series in the input (2 series examined):")
    assert "series 5 'T1 AXIAL' (12 images): does not match rule 'CT axial original primary': Modality 'MR'" in msg
    assert "modality MR, not CT" in msg
    assert "series 99 'Dose report' (1 images)" in msg and "modality SR, not CT" in msg
    assert BadInputError.exit_code == 2


def test_dose_screen_and_reformat_rejected(tmp_path):
    st = study_info()
    write_series(tmp_path, make_volume(nz=1, ny=48, nx=64), 999, "Dose Report", study=st,
                 image_type=("DERIVED", "SECONDARY", "SCREEN SAVE"),
                 overrides={"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"})
    with pytest.raises(BadInputError) as ei:
        _select(tmp_path)
    msg = str(ei.value)
    assert "series 999 'Dose Report' (1 images)" in msg
    assert "not CT Image Storage (secondary capture or derived object, e.g. a dose screen)" in msg
    assert "image type DERIVED\\SECONDARY\\SCREEN SAVE is not ORIGINAL\\PRIMARY" in msg


def test_missing_slice_is_named_and_other_series_chosen(tmp_path):
    st = study_info()
    paths = write_series(tmp_path, make_volume(), 2, "with gap", study=st)
    paths[4].unlink()  # z = -80
    write_series(tmp_path, make_volume(kernel="B70f"), 3, "sharp complete", study=st)
    series, report = _select(tmp_path)
    assert series.SeriesNumber == 3
    assert ("rejected: missing slice between z=-85.0 and z=-75.0 mm (expected spacing 5.0 mm, gap 10.0 mm, about "
            "1 slice missing)") in _reasons(report, 2)


def test_only_ct_with_missing_slices_is_bad_input(tmp_path):
    paths = write_series(tmp_path, make_volume(nz=20))
    for k in (5, 6, 7):
        paths[k].unlink()
    with pytest.raises(BadInputError, match=r"missing slices between z=-80.0 and z=-60.0 mm \(expected spacing "
                                            r"5.0 mm, gap 20.0 mm, about 3 slices missing\)"):
        _select(tmp_path)


def test_mixed_orientations_within_a_series(tmp_path):
    def tilt_some(ds, k):
        if k % 4 == 0:
            ds.ImageOrientationPatient = ["1", "0", "0", "0", "0.9848078", "-0.1736482"]

    write_series(tmp_path, make_volume(), per_slice=tilt_some)
    with pytest.raises(BadInputError, match=r"mixed orientations within the series \(2 distinct "
                                            r"ImageOrientationPatient values"):
        _select(tmp_path)


def test_duplicate_positions(tmp_path):
    st = study_info()
    vol = make_volume()
    paths = write_series(tmp_path, vol, study=st)
    uid = str(pydicom.dcmread(paths[0]).SeriesInstanceUID)
    again = make_volume(nz=3, origin=(-14.0, -10.0, -90.0), seed=1)  # re-acquired z = -90, -85, -80
    write_series(tmp_path, again, study=st, series_instance_uid=uid, file_prefix="REPEAT",
                 sop_instance_uids=[generate_uid() for _ in range(3)], acquisition_number=2)
    with pytest.raises(BadInputError) as ei:
        _select(tmp_path)
    assert ("duplicate slice positions at 3 location(s): z=-90.0 mm (2 images), z=-85.0 mm (2 images), "
            "z=-80.0 mm (2 images)") in str(ei.value)
    assert "(15 images)" in str(ei.value)  # all instances kept by our loader (the SDK's would drop some)


def test_gantry_tilt_tag_rejected(tmp_path):
    tilt = np.radians(15.0)
    step = np.array([0.0, 5.0 * np.tan(tilt), 5.0])  # positions sheared along y, as scanners store tilt
    write_series(tmp_path, make_volume(step=step, tilt_deg=15.0))
    with pytest.raises(BadInputError, match=r"gantry tilt 15 deg \(GantryDetectorTilt\): tilted acquisitions are "
                                            r"not resampled"):
        _select(tmp_path)


def test_sheared_positions_without_tilt_tag_rejected(tmp_path):
    step = np.array([0.0, 5.0 * np.tan(np.radians(12.0)), 5.0])
    write_series(tmp_path, make_volume(step=step, tilt_deg=0.0))
    with pytest.raises(BadInputError, match=r"slice positions are sheared by 12.0 deg from the slice normal"):
        _select(tmp_path)


def test_scout_only_study(tmp_path):
    scout = make_volume(nz=1, ny=40, nx=32, orientation=np.array([1.0, 0, 0, 0, 0, -1]), dz=1.0)
    write_series(tmp_path, scout, 1, "Topogram", image_type=IMAGE_TYPE_LOCALIZER)
    with pytest.raises(BadInputError) as ei:
        _select(tmp_path)
    msg = str(ei.value)
    assert "series 1 'Topogram' (1 images)" in msg and "LOCALIZER image type (scout / topogram)" in msg
    assert "not axial" in msg


def test_missing_rescale_and_too_few_slices(tmp_path):
    st = study_info()
    write_series(tmp_path / "a", make_volume(), 2, "no rescale", study=st,
                 overrides={"RescaleSlope": None, "RescaleIntercept": None})
    write_series(tmp_path / "b", make_volume(nz=4), 3, "short", study=st)
    with pytest.raises(BadInputError) as ei:
        _select(tmp_path)
    msg = str(ei.value)
    assert "RescaleSlope/RescaleIntercept missing on 12 image(s): Hounsfield units cannot be computed" in msg
    assert "only 4 image(s), at least 10 slices needed" in msg


def test_logs_carry_no_patient_identifiers(tmp_path, caplog):
    st = study_info(seed=77)
    write_series(tmp_path, make_volume(), study=st)
    (tmp_path / "junk.bin").write_bytes(b"junk")
    with caplog.at_level(logging.DEBUG):
        _, report = _select(tmp_path)
        series_to_volume(_select(tmp_path)[0])
    import json
    text = caplog.text + json.dumps(report.to_json())
    for secret in (st.patient_name, st.patient_id, "PHANTOM^"):
        assert secret not in text


# --- whole app: exit code and message -------------------------------------------------------------------

def _app_factory():
    from holoscan.conditions import CountCondition
    from monai.deploy.core import Application

    from operators.series_selector.operator import CTSeriesSelectorOperator
    from operators.series_to_volume.operator import SeriesToVolumeOperator
    from operators.study_loader.operator import CTStudyLoaderOperator

    class _App(Application):
        def __init__(self, input_dir, output_dir, models_dir):
            self.input_dir = input_dir
            super().__init__()

        def compose(self):
            loader = CTStudyLoaderOperator(self, CountCondition(self, 1), input_folder=self.input_dir, name="loader")
            selector = CTSeriesSelectorOperator(self, name="selector")
            to_vol = SeriesToVolumeOperator(self, name="to_volume")
            self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
            self.add_flow(selector, to_vol, {("study_selected_series_list", "study_selected_series_list")})

    return _App


@pytest.mark.parametrize("case", ["empty", "no_ct"])
def test_app_exits_with_bad_input_code(tmp_path, capsys, case):
    from apps.launcher import run_app

    inp = tmp_path / "in"
    inp.mkdir()
    if case == "no_ct":
        write_series(inp, make_volume(), 5, "T1", overrides={"Modality": "MR"})
    rc = run_app(_app_factory(), "t", ["-i", str(inp), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == BadInputError.exit_code
    assert ("is empty: no DICOM files" if case == "empty" else "No usable CT series in the input") in err
    assert list((tmp_path / "out").iterdir()) == []
