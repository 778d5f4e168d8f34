"""RT Dose for a dose grid (Monte Carlo CT dose), built with pydicom directly: highdicom has no RT Dose class.

    result = write_rt_dose(dose_gy, dose_affine_lps, ct_volume, out_dir / "dose_rtdose.dcm",
                           n_histories=10**8, uncertainty_percent=1.2, model_versions={"mc_dose": "0.1"})

* Grid: any (z, y, x) array with an LPS affine whose slices are parallel planes (e.g. the CT grid itself, or a
  coarser axial grid). Frames are written in increasing position along the slice normal (row x column
  direction), so GridFrameOffsetVector starts at 0 and increases (the form every planning system reads);
  ImagePositionPatient is that of the first frame. FrameIncrementPointer -> GridFrameOffsetVector.
* Values: unsigned integers x DoseGridScaling = dose in Gy (DoseUnits GY, DoseType PHYSICAL). The scaling is
  chosen so the maximum dose uses the full integer range; it is written as a decimal string first and the
  integers are computed with exactly that written value. 16 bits by default (quantisation step = max / 65535,
  far below the Monte Carlo uncertainty): the ``dciodvfy`` of Debian 12 (dicom3tools 2022) aborts on 32-bit
  pixel data, so 32-bit grids (``bits=32``, valid DICOM) cannot be checked here.
* DoseSummationType: ``PLAN_OVERVIEW`` by default (no RT Plan exists for an imaging exposure, and the other
  plan-related values require a Referenced RT Plan Sequence); ``RECORD`` is the alternative.
* FrameOfReferenceUID is the CT's; patient and study from the CT; new series; Manufacturer "CorpusCT";
  SoftwareVersions with code and model versions; the DoseComment states the number of histories and the
  statistical uncertainty (DESIGN.md: Monte Carlo results state them) and "not for clinical use".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import RTDoseStorage

from operators.common.volume import CTVolume

from .common import (
    OutputIdentity,
    SourceSeries,
    WrittenObject,
    as_source,
    save_dataset,
)

log = logging.getLogger(__name__)


@dataclass
class DoseGrid:
    """A dose grid as the dose operators emit it: (z, y, x) Gy with its LPS affine, and its statistics."""

    dose_gy: np.ndarray
    affine_lps: np.ndarray
    n_histories: int | None = None
    uncertainty_percent: float | None = None  # 1 sigma, e.g. mean over the voxels above 50 % of the maximum
    comment: str = ""



def _ds(v: float, digits: int = 10) -> str:
    """Decimal String (16 characters at most)."""
    for d in range(digits, 2, -1):
        s = f"{float(v):.{d}g}"
        if len(s) <= 16:
            return s
    raise ValueError(f"cannot format {v} as DS")


def dose_grid_scaling(max_dose_gy: float, bits: int = 16) -> tuple[str, float]:
    """(DoseGridScaling as written, its value): the maximum dose maps to just under 2**bits - 1."""
    if max_dose_gy <= 0 or not np.isfinite(max_dose_gy):
        return "1", 1.0
    top = 2**bits - 1
    s = _ds(max_dose_gy / (top - top // 4096), 8)
    return s, float(s)


def _frames_ascending(dose: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dose, affine) with frames ordered by increasing position along the row x column normal."""
    row = affine[:3, 0] / np.linalg.norm(affine[:3, 0])
    col = affine[:3, 1] / np.linalg.norm(affine[:3, 1])
    normal = np.cross(row, col)
    step = affine[:3, 2]
    if float(np.dot(step, normal)) < 0:
        a = affine.copy()
        a[:3, 3] = affine[:3, 3] + step * (dose.shape[0] - 1)
        a[:3, 2] = -step
        return dose[::-1], a
    return dose, affine


def build_rt_dose(dose_gy: np.ndarray, dose_affine_lps: np.ndarray, source: SourceSeries | CTVolume, *,
                  model_versions: Mapping[str, str] | None = None, n_histories: int | None = None,
                  uncertainty_percent: float | None = None, comment: str = "",
                  summation_type: str = "PLAN_OVERVIEW", description: str = "CorpusCT MC dose RTDOSE",
                  series_number: int = 921, bits: int = 16) -> Dataset:
    """RT Dose dataset (not yet written). dose_gy: (z, y, x) float array, Gy, >= 0."""
    src = as_source(source)
    dose = np.asarray(dose_gy, dtype=np.float64)
    if dose.ndim != 3:
        raise ValueError(f"dose grid must be 3-D (z, y, x), got {dose.shape}")
    if not np.all(np.isfinite(dose)) or dose.min() < 0:
        raise ValueError("dose grid must be finite and non-negative")
    aff = np.asarray(dose_affine_lps, dtype=float)
    row_sp, col_sp = float(np.linalg.norm(aff[:3, 1])), float(np.linalg.norm(aff[:3, 0]))
    row_cos, col_cos = aff[:3, 0] / col_sp, aff[:3, 1] / row_sp
    if abs(float(np.dot(row_cos, col_cos))) > 1e-4:
        raise ValueError("dose grid rows and columns are not orthogonal")
    normal = np.cross(row_cos, col_cos)
    step = aff[:3, 2]
    if np.linalg.norm(np.cross(step / np.linalg.norm(step), normal)) > 1e-3:
        raise ValueError("dose grid slices are sheared (slice step not along the normal): not representable")
    dose, aff = _frames_ascending(dose, aff)
    nz, ny, nx = dose.shape
    offsets = np.arange(nz) * float(np.linalg.norm(aff[:3, 2]))
    if bits not in (16, 32):
        raise ValueError("bits must be 16 or 32")
    scaling_str, scaling = dose_grid_scaling(float(dose.max()), bits)
    stored = np.clip(np.rint(dose / scaling), 0, 2**bits - 1).astype("<u2" if bits == 16 else "<u4")

    ident = OutputIdentity(description, series_number, dict(model_versions or {}))
    ref = src.first
    # SOP Common, Patient, Study, RT Series, General Equipment
    ds, date, time = ident.new_dataset(RTDoseStorage, "RTDOSE", ref)
    ds.OperatorsName = ""
    # Frame of Reference
    ds.FrameOfReferenceUID = src.frame_of_reference_uid
    ds.PositionReferenceIndicator = ref.get("PositionReferenceIndicator", "")
    # General Image
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = date, time
    ds.ImageType = ["DERIVED", "SECONDARY"]
    # Image Plane
    ds.PixelSpacing = [_ds(row_sp), _ds(col_sp)]
    ds.ImageOrientationPatient = [_ds(round(v, 8) + 0.0) for v in (*row_cos, *col_cos)]
    ds.ImagePositionPatient = [_ds(round(v, 6) + 0.0) for v in aff[:3, 3]]
    ds.SliceThickness = _ds(float(np.linalg.norm(aff[:3, 2])))
    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    # Multi-frame
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = (0x3004, 0x000C)
    # RT Dose
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = summation_type
    ds.GridFrameOffsetVector = [_ds(o) for o in offsets]
    ds.DoseGridScaling = scaling_str
    ds.TissueHeterogeneityCorrection = ["IMAGE"]
    ds.DoseComment = "CT imaging dose - not for clinical use"  # LO: 64 characters at most
    parts = ["CT imaging dose" + (", Monte Carlo" if n_histories else "")]
    if n_histories:
        parts.append(f"{int(n_histories):.3g} histories")
    if uncertainty_percent is not None:
        parts.append(f"statistical uncertainty {uncertainty_percent:.2g}% (1 sigma)")
    if comment:
        parts.append(comment)
    parts.append("research use only, not for clinical use")
    ds.ImageComments = "; ".join(parts)[:10240]
    # The CT images the dose was computed on: General Image SourceImageSequence, listed by series in the
    # Common Instance Reference module (required once an instance references others)
    series_item = Dataset()
    series_item.SeriesInstanceUID = src.series_instance_uid
    series_item.ReferencedInstanceSequence = []
    ds.SourceImageSequence = []
    for d in src.datasets:
        it = Dataset()
        it.ReferencedSOPClassUID = d.SOPClassUID
        it.ReferencedSOPInstanceUID = d.SOPInstanceUID
        series_item.ReferencedInstanceSequence.append(it)
        ds.SourceImageSequence.append(it)
    ds.ReferencedSeriesSequence = [series_item]
    ds.PixelData = stored.tobytes()
    return ds


def write_rt_dose(dose_gy: np.ndarray, dose_affine_lps: np.ndarray, source: SourceSeries | CTVolume,
                  out_path: str | Path, **kwargs) -> WrittenObject:
    ds = build_rt_dose(dose_gy, dose_affine_lps, source, **kwargs)
    path = save_dataset(ds, out_path)
    return WrittenObject.of(ds, path, "RTDOSE")


def read_rt_dose(path_or_ds) -> tuple[np.ndarray, np.ndarray]:
    """(dose_gy (z, y, x) float64, affine_lps) from an RT Dose (our own or any with a relative offset vector)."""
    import pydicom

    ds = path_or_ds if isinstance(path_or_ds, Dataset) else pydicom.dcmread(str(path_or_ds))
    arr = np.asarray(ds.pixel_array, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    dose = arr * float(ds.DoseGridScaling)
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    row_cos, col_cos = iop[:3], iop[3:]
    normal = np.cross(row_cos, col_cos)
    offs = np.asarray([float(v) for v in ds.GridFrameOffsetVector])
    ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
    if offs[0] != 0:  # absolute offsets (the other allowed form): relative to the first frame
        offs = offs - offs[0]
    step = (offs[1] - offs[0]) if len(offs) > 1 else float(ds.get("SliceThickness", 1.0) or 1.0)
    ps = [float(v) for v in ds.PixelSpacing]
    a = np.eye(4)
    a[:3, 0] = row_cos * ps[1]
    a[:3, 1] = col_cos * ps[0]
    a[:3, 2] = normal * step
    a[:3, 3] = ipp
    return dose, a
