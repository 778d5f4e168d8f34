"""Small synthetic CT series for the loader / selector / series-to-volume tests (no ../shared needed).

Volumes are tiny (a few 10 KB per slice) and written with the phantom package's ``write_ct_series``, so every
file is a valid CT Image Storage instance; the bad-input cases are made by changing or damaging those files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.phantoms.dicom_export import IMAGE_TYPE_AXIAL, StudyInfo, write_ct_series
from operators.common.volume import CTMetadata, CTVolume, affine_from_dicom

AXIAL = np.array([1.0, 0, 0, 0, 1, 0])


def make_volume(nz: int = 12, ny: int = 24, nx: int = 32, *, dz: float = 5.0, pixel: tuple = (0.8, 0.9),
                origin=(-14.0, -10.0, -100.0), orientation=AXIAL, step=None, kernel: str = "B30f",
                thickness: float | None = None, tilt_deg: float = 0.0, seed: int = 0) -> CTVolume:
    """Air (-1000) around a water cylinder with a bone rod; each slice carries its index in one corner so
    the slice order can be checked; per-slice tube current rises with the slice index (TCM)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx]
    r = np.hypot((yy - ny / 2) / (ny / 2.5), (xx - nx / 2) / (nx / 2.5))
    base = np.where(r < 1.0, 0.0, -1000.0).astype(np.float32)
    base[(np.abs(yy - ny * 0.6) < 2) & (np.abs(xx - nx / 2) < 2)] = 700.0
    hu = np.repeat(base[None], nz, axis=0) + rng.integers(-20, 21, size=(nz, ny, nx)).astype(np.float32)
    hu[:, 0, 0] = np.arange(nz) * 10.0  # slice index marker
    if step is None:
        n = np.cross(orientation[:3], orientation[3:])
        step = n * dz
    aff = affine_from_dicom(np.asarray(origin, float), np.asarray(orientation, float), np.asarray(pixel, float),
                            np.asarray(step, float))
    meta = CTMetadata(convolution_kernel=kernel, kvp=120.0, ctdivol_mgy=10.0,
                      slice_thickness_mm=thickness or abs(dz), tube_current_ma=100.0 + 10.0 * np.arange(nz),
                      gantry_tilt_deg=tilt_deg)
    return CTVolume(hu, aff, meta)


def study_info(seed: int = 1, **kw) -> StudyInfo:
    return StudyInfo.from_seed(seed, patient_age_years=45, patient_sex="F", patient_weight_kg=70.0,
                               patient_size_m=1.65, **kw)


def write_series(folder: Path, vol: CTVolume, series_number: int = 2, description: str = "AXIAL SOFT",
                 *, study: StudyInfo | None = None, image_type=IMAGE_TYPE_AXIAL, **kw) -> list[Path]:
    return write_ct_series(vol, Path(folder), series_number, description, study=study or study_info(),
                           image_type=image_type, **kw)
