"""CT volume and its geometry: the one module that owns coordinate conventions and conversions.

Convention (DESIGN.md): voxel data are numpy arrays in (z, y, x) order, i.e. ``array[k, j, i]`` with
k = slice index, j = row index, i = column index. ``affine_lps`` is a 4x4 matrix mapping the index vector
``(i, j, k, 1)`` (column, row, slice) to patient LPS coordinates in mm, exactly as DICOM defines them
(ImagePositionPatient of the first slice, ImageOrientationPatient row/column cosines, PixelSpacing,
slice step). HU are float32. Conversions to the SDK ``Image`` (LPS), NIfTI (RAS) and back live here and
nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class CTMetadata:
    """Acquisition, dose and patient metadata of a CT series. Units in names; None when absent."""

    study_instance_uid: str = ""
    series_instance_uid: str = ""
    frame_of_reference_uid: str = ""
    sop_instance_uids: list[str] = field(default_factory=list)  # one per slice, in volume order
    sop_class_uid: str = ""
    series_description: str = ""
    modality: str = "CT"
    manufacturer: str = ""
    manufacturer_model_name: str = ""
    convolution_kernel: str = ""
    kvp: float | None = None
    ctdivol_mgy: float | None = None  # series value (mean of the per-image values)
    ctdivol_per_slice_mgy: np.ndarray | None = None  # per image where the scanner writes it (Siemens: follows TCM)
    slice_thickness_mm: float | None = None
    tube_current_ma: np.ndarray | None = None  # per slice, volume order
    exposure_mas: np.ndarray | None = None  # per slice, volume order
    patient_age_years: float | None = None
    patient_sex: str | None = None  # "F" | "M" | "O" | None
    patient_weight_kg: float | None = None
    patient_size_m: float | None = None
    body_part_examined: str = ""
    gantry_tilt_deg: float = 0.0
    source_files: list[str] = field(default_factory=list)  # one per slice, volume order

    def to_json(self) -> dict:
        """JSON-serialisable summary (no patient identifiers)."""
        out = {}
        for k, v in self.__dict__.items():
            if k in ("sop_instance_uids", "source_files"):
                out[f"n_{k}"] = len(v)
            elif isinstance(v, np.ndarray):
                out[k] = [round(float(x), 3) for x in v]
            else:
                out[k] = v
        return out


@dataclass
class CTVolume:
    """HU volume (z, y, x) float32 with its LPS affine and series metadata."""

    hu: np.ndarray
    affine_lps: np.ndarray
    meta: CTMetadata = field(default_factory=CTMetadata)

    def __post_init__(self):
        if self.hu.ndim != 3:
            raise ValueError(f"CT volume must be 3-D (z, y, x), got shape {self.hu.shape}")
        self.affine_lps = np.asarray(self.affine_lps, dtype=float)
        if self.affine_lps.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine_lps.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.hu.shape  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel spacing in (z, y, x) order, mm."""
        cols = np.linalg.norm(self.affine_lps[:3, :3], axis=0)  # |di|, |dj|, |dk|
        return float(cols[2]), float(cols[1]), float(cols[0])

    @property
    def slice_z_mm(self) -> np.ndarray:
        """Patient z (LPS, superior positive) of every slice centre, volume order."""
        k = np.arange(self.shape[0])
        return self.affine_lps[2, 2] * k + self.affine_lps[2, 3]

    def index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Map (N, 3) index vectors (i, j, k) = (column, row, slice) to LPS mm."""
        ijk = np.atleast_2d(np.asarray(ijk, dtype=float))
        return ijk @ self.affine_lps[:3, :3].T + self.affine_lps[:3, 3]

    def with_hu(self, hu: np.ndarray) -> CTVolume:
        return replace(self, hu=hu)


def affine_from_dicom(position_first: np.ndarray, orientation: np.ndarray, pixel_spacing: np.ndarray,
                      slice_step: np.ndarray) -> np.ndarray:
    """LPS affine from DICOM geometry.

    position_first: ImagePositionPatient of slice k=0; orientation: ImageOrientationPatient (row cosines,
    then column cosines); pixel_spacing: PixelSpacing (row spacing = between rows, column spacing = between
    columns); slice_step: vector from slice k to slice k+1 in mm.
    """
    row_cos = np.asarray(orientation[:3], dtype=float)  # direction of increasing column index i
    col_cos = np.asarray(orientation[3:6], dtype=float)  # direction of increasing row index j
    row_spacing, col_spacing = float(pixel_spacing[0]), float(pixel_spacing[1])
    a = np.eye(4)
    a[:3, 0] = row_cos * col_spacing
    a[:3, 1] = col_cos * row_spacing
    a[:3, 2] = np.asarray(slice_step, dtype=float)
    a[:3, 3] = np.asarray(position_first, dtype=float)
    return a


def axial_affine(spacing_zyx_mm, origin_lps_mm) -> np.ndarray:
    """Affine of a standard axial series (rows anterior->posterior, columns right->left) whose slice index
    increases towards the head when spacing z > 0 (feet->head) or towards the feet when negative."""
    dz, dy, dx = (float(s) for s in spacing_zyx_mm)
    return affine_from_dicom(np.asarray(origin_lps_mm, float), np.array([1, 0, 0, 0, 1, 0.0]),
                             np.array([dy, dx]), np.array([0.0, 0.0, dz]))


# --- SDK Image ---------------------------------------------------------------------------------------

def to_sdk_image(vol: CTVolume):
    """SDK ``Image`` with (D, H, W) data and LPS affine metadata, as DICOMSeriesToVolumeOperator emits with
    ``affine_lps_to_ras=False`` (so the SDK writers accept it)."""
    from monai.deploy.core.domain import Image

    meta = {
        "affine": vol.affine_lps.copy(),
        "space": "LPS",
        "spacing": list(vol.spacing_mm),
        "StudyInstanceUID": vol.meta.study_instance_uid,
        "SeriesInstanceUID": vol.meta.series_instance_uid,
        "corpusct_meta": vol.meta,
    }
    return Image(vol.hu, meta)


def from_sdk_image(image) -> CTVolume:
    """CTVolume from an SDK ``Image`` (ours, or the SDK's DICOMSeriesToVolumeOperator output)."""
    data = np.asarray(image.asnumpy(), dtype=np.float32)
    md = image.metadata()
    affine = np.asarray(md.get("affine"), dtype=float)
    space = str(md.get("space", "LPS")).upper()
    if space == "RAS":
        affine = LPS_TO_RAS @ affine
    meta = md.get("corpusct_meta")
    if not isinstance(meta, CTMetadata):
        meta = CTMetadata(study_instance_uid=str(md.get("StudyInstanceUID", "")),
                          series_instance_uid=str(md.get("SeriesInstanceUID", "")))
    return CTVolume(data, affine, meta)


# --- NIfTI (RAS) --------------------------------------------------------------------------------------

def save_nifti(array_zyx: np.ndarray, affine_lps: np.ndarray, path: str | Path) -> Path:
    """Write a (z, y, x) array as NIfTI. NIfTI stores (i, j, k) = (x, y, z) array order with a RAS affine."""
    import nibabel as nib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.ascontiguousarray(np.transpose(array_zyx, (2, 1, 0))), LPS_TO_RAS @ affine_lps)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
    return path


def load_nifti(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(array (z, y, x), affine_lps) from a NIfTI file written by ``save_nifti`` (or any RAS NIfTI)."""
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    return np.transpose(data, (2, 1, 0)), LPS_TO_RAS @ img.affine
