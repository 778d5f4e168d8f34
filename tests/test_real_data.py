"""Real CT (../shared/data/ct, TCIA): selection among real series plus a scout, geometry, HU, tube current.

Marked ``realdata``: skipped with the reason when the shared data folder is absent (a fresh clone elsewhere).
The two TCIA series are copied into a temporary folder together with the demo study (procedural phantom:
its scout and axial series) and the operators run on that folder as an app would.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from operators.common.paths import shared_data_dir

CT_DIR = shared_data_dir() / "ct"
CHEST, ABDOMEN = "tcia-chest-siemens", "tcia-abdomen-pelvis-toshiba"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not (CT_DIR / CHEST).is_dir() or not (CT_DIR / ABDOMEN).is_dir(),
                       reason=f"shared real CT data not found at {CT_DIR} (set CORPUSCT_DATA or provide "
                              "../shared/data; see ../shared/data/README.md)"),
]


def _demo_series(request, tmp_path_factory) -> list[Path]:
    """Folders/files of the demo study (scout + axial) from the shared ``demo_study`` fixture; without it,
    a scout written with the phantom package's writer."""
    try:
        demo = request.getfixturevalue("demo_study")
        demo = Path(getattr(demo, "dicom_dir", demo))
        return [demo]
    except pytest.FixtureLookupError:
        from _ct_fixtures import make_volume, write_series

        from models.phantoms.dicom_export import IMAGE_TYPE_LOCALIZER

        d = tmp_path_factory.mktemp("scout")
        scout = make_volume(nz=1, ny=200, nx=128, orientation=np.array([1.0, 0, 0, 0, 0, -1]), dz=1.0,
                            pixel=(2.0, 2.0))
        write_series(d, scout, 1, "Topogram 0.6 T20s", image_type=IMAGE_TYPE_LOCALIZER)
        return [d]


@pytest.fixture(scope="module")
def real_folder(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("real_study")
    for name in (CHEST, ABDOMEN):
        shutil.copytree(CT_DIR / name, d / name)
    for i, src in enumerate(_demo_series(request, tmp_path_factory)):
        shutil.copytree(src, d / f"demo{i}") if src.is_dir() else shutil.copy(src, d)
    return d


@pytest.fixture(scope="module")
def selection(real_folder):
    from monai.deploy.core import Fragment

    from operators.series_selector.operator import CTSeriesSelectorOperator
    from operators.study_loader.operator import CTStudyLoaderOperator

    frag = Fragment()
    studies = CTStudyLoaderOperator(frag, name="loader").load_data_to_studies(real_folder)
    selected, report = CTSeriesSelectorOperator(frag, name="selector").select(studies)
    series = {str(s.SeriesInstanceUID): (s, st) for st in studies for s in st.get_all_series()}
    return selected, report.to_json(), series


def _uid(folder: Path) -> str:
    return str(pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID)


def _volume(series_dict, folder):
    from operators.common.dicom_series import series_to_volume

    return series_to_volume(series_dict[_uid(folder)][0])


def test_selector_picks_and_explains(selection, real_folder):
    selected, rep, _ = selection
    json.dumps(rep)
    by_uid = {s["SeriesInstanceUID"]: s for s in rep["series"]}
    chest, abdomen = by_uid[_uid(real_folder / CHEST)], by_uid[_uid(real_folder / ABDOMEN)]
    # both TCIA series are usable soft-tissue 3 mm axial series; the scout is rejected as such
    for s in (chest, abdomen):
        assert s["status"] in ("chosen", "candidate") and s["score"]["kernel_class"] == "soft"
        assert s["facts"]["slice_thickness_mm"] == 3.0 and s["facts"]["slice_spacing_mm"] == pytest.approx(3.0)
    assert abdomen["score"]["total"] > chest["score"]["total"]  # same kernel class and thickness, 477 vs 303 mm
    assert "303 mm z coverage" in chest["reasons"][0] and "B40f" in chest["reasons"][0]
    scouts = [s for s in rep["series"] if "LOCALIZER" in s["facts"]["image_type"]]
    assert scouts and all(s["status"] == "rejected" for s in scouts)
    assert all(any(r.startswith("rejected: LOCALIZER image type") for r in s["reasons"]) for s in scouts)
    # the chosen one has the best score of all usable series, and is what the operator emitted
    usable = [s for s in rep["series"] if s["status"] != "rejected"]
    best = max(usable, key=lambda s: s["score"]["total"])
    assert rep["chosen"]["SeriesInstanceUID"] == best["SeriesInstanceUID"] == \
        str(selected[0].selected_series[0].series.SeriesInstanceUID)
    assert best["reasons"][0].startswith("chosen: best score")
    if best is not abdomen:  # a demo axial series can outrank it (longer coverage): it must say so
        assert abdomen["status"] == "candidate" and "< " in abdomen["reasons"][0]
    assert {"file": "LICENSE.txt", "reason": "not a DICOM file (no 'DICM' prefix / file meta information)"} \
        in rep["skipped_files"]


@pytest.mark.parametrize("name, shape, pixel, n_unique_ma", [(CHEST, (102, 512, 512), 0.8828125, 20),
                                                            (ABDOMEN, (160, 512, 512), 1.03, 10)])
def test_volume_geometry_hu_and_tube_current(selection, real_folder, name, shape, pixel, n_unique_ma):
    _, _, series = selection
    vol = _volume(series, real_folder / name)
    assert vol.shape == shape and vol.hu.dtype == np.float32
    assert vol.spacing_mm == pytest.approx((3.0, pixel, pixel))
    # affine consistent with the positions of the first and last slice (lowest and highest z)
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((real_folder / name).glob("*.dcm"))]
    ipp = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
    lo, hi = ipp[np.argmin(ipp[:, 2])], ipp[np.argmax(ipp[:, 2])]
    np.testing.assert_allclose(vol.index_to_lps([0, 0, 0])[0], lo, atol=1e-4)
    np.testing.assert_allclose(vol.index_to_lps([0, 0, shape[0] - 1])[0], hi, atol=1e-4)
    np.testing.assert_allclose(vol.affine_lps[:3, :2], np.diag([pixel, pixel, 0])[:, :2], atol=1e-6)
    # air in front of the patient (inside the reconstruction circle) is about -1000 HU
    air = float(np.median(vol.hu[:, 12:40, 236:276]))
    assert -1050 < air < -950
    # nothing clipped: Toshiba pads outside the reconstruction circle with -2048
    if name == ABDOMEN:
        assert vol.hu.min() == -2048
    m = vol.meta
    assert m.tube_current_ma.shape == (shape[0],) and np.isfinite(m.tube_current_ma).all()
    assert len(np.unique(m.tube_current_ma)) >= n_unique_ma and m.tube_current_ma.std() > 10  # TCM
    assert m.exposure_mas.shape == (shape[0],)
    # CTDIvol: Siemens writes a per-image value following the TCM (6.5-21.5 mGy here), kept per slice in
    # volume order; the series value is their mean. Toshiba repeats the series value (33.4 mGy, data README).
    order = np.argsort(ipp[:, 2])
    header_ctdi = np.array([float(headers[i].CTDIvol) for i in order])
    np.testing.assert_allclose(m.ctdivol_per_slice_mgy, header_ctdi)
    assert m.kvp == 120 and m.ctdivol_mgy == pytest.approx(header_ctdi.mean())
    if name == CHEST:
        assert header_ctdi.min() < 8 and header_ctdi.max() > 20
    else:
        assert m.ctdivol_mgy == pytest.approx(33.4, abs=0.01)
    assert m.convolution_kernel == ("B40f" if name == CHEST else "FC13")
    assert (m.patient_age_years, m.patient_sex) == ((71.0, "M") if name == CHEST else (69.0, "F"))
    # tube current in volume order: slice k of the volume is the file at that z
    np.testing.assert_array_equal(m.tube_current_ma, [float(headers[i].XRayTubeCurrent) for i in order])


@pytest.mark.parametrize("name", [CHEST, ABDOMEN])
def test_affine_matches_sdk_series_to_volume(selection, real_folder, name):
    """On each real series: our affine equals the SDK DICOMSeriesToVolumeOperator's LPS affine, the HU arrays
    are identical, and the SDK Image round trip keeps data and affine."""
    from monai.deploy.core import Fragment
    from monai.deploy.core.domain import SelectedSeries, StudySelectedSeries
    from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator

    from operators.common.volume import from_sdk_image
    from operators.series_to_volume.operator import SeriesToVolumeOperator

    _, _, series = selection
    dicom_series, study = series[_uid(real_folder / name)]
    sss = StudySelectedSeries(study)
    sss.add_selected_series(SelectedSeries("real", dicom_series, None))
    frag = Fragment()
    vol, image = SeriesToVolumeOperator(frag, name="ours").convert([sss])
    sdk = from_sdk_image(DICOMSeriesToVolumeOperator(frag, name="sdk", affine_lps_to_ras=False)
                         .convert_to_image([sss]))
    np.testing.assert_allclose(sdk.affine_lps, vol.affine_lps, atol=1e-6)
    np.testing.assert_array_equal(sdk.hu, vol.hu)
    back = from_sdk_image(image)
    np.testing.assert_array_equal(back.hu, vol.hu)
    np.testing.assert_array_equal(back.affine_lps, vol.affine_lps)
