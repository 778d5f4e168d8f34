"""DICOM CT series -> ``CTVolume`` (pure: numpy + pydicom, no holoscan import).

Accepts an SDK ``DICOMSeries`` (anything with ``get_sop_instances()`` whose items have
``get_native_sop_instance()``) or a plain sequence of pydicom datasets.

- Slices are sorted by their position along the slice normal (row cosine x column cosine), ascending, as the
  SDK's DICOMSeriesToVolumeOperator does, so both give the same array order.
- HU = stored value x RescaleSlope + RescaleIntercept, per slice, float32; nothing is clipped (padding values
  such as -2048/-3024 stay as they are).
- Affine: ``volume.affine_from_dicom`` with the step from the first to the last slice divided by n - 1.
- Uncompressed little-endian slices are copied straight from their PixelData bytes into one preallocated
  stack (no per-slice decoder overhead); compressed slices (JPEG 2000, JPEG-LS, ...) use pydicom's decoders
  (pylibjpeg / pyjpegls).

The function checks only what it needs to build a correct volume (same size, orientation and pixel spacing;
uniform spacing; no shear; no duplicates) and raises ``BadInputError`` otherwise; the series selector does the
full, explained QC before this is called.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from .errors import BadInputError
from .volume import CTMetadata, CTVolume, affine_from_dicom


def series_datasets(series) -> list[pydicom.Dataset]:
    """pydicom datasets of an SDK ``DICOMSeries`` or of a sequence of datasets / SOP-instance wrappers."""
    items = series.get_sop_instances() if hasattr(series, "get_sop_instances") else list(series)
    return [s.get_native_sop_instance() if hasattr(s, "get_native_sop_instance") else s for s in items]


# --- geometry -----------------------------------------------------------------------------------------

def _floats(value, n: int) -> np.ndarray | None:
    try:
        arr = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return arr if arr.size == n else None


@dataclass
class SeriesGeometry:
    """Per-slice geometry of a series, sorted along the slice normal (ascending)."""

    order: np.ndarray  # indices into the input list, sorted along the normal
    ipp: np.ndarray  # (n, 3) ImagePositionPatient, sorted
    distance_mm: np.ndarray  # (n,) position along the normal, sorted
    orientation: np.ndarray  # (6,) ImageOrientationPatient of the first sorted slice
    normal: np.ndarray  # (3,) unit slice normal
    pixel_spacing: np.ndarray  # (2,) PixelSpacing (row spacing, column spacing)
    rows: int
    columns: int

    @property
    def n(self) -> int:
        return int(self.order.size)

    @property
    def z_mm(self) -> np.ndarray:
        """Patient z (LPS, superior +) of each sorted slice."""
        return self.ipp[:, 2]

    @property
    def steps_mm(self) -> np.ndarray:
        return np.diff(self.distance_mm)

    @property
    def slice_step(self) -> np.ndarray:
        """Mean vector from one slice to the next (first to last / (n - 1))."""
        if self.n < 2:
            return self.normal.copy()
        return (self.ipp[-1] - self.ipp[0]) / (self.n - 1)

    @property
    def coverage_mm(self) -> float:
        return float(self.distance_mm[-1] - self.distance_mm[0]) if self.n > 1 else 0.0

    def shear_angle_deg(self) -> float:
        """Angle between the slice-to-slice step and the slice normal (0 for an orthogonal grid; the gantry
        tilt for a tilted acquisition stored with axial orientation)."""
        if self.n < 2:
            return 0.0
        step = self.ipp[-1] - self.ipp[0]
        norm = np.linalg.norm(step)
        if norm < 1e-6:
            return 0.0
        c = abs(float(np.dot(step / norm, self.normal)))
        return float(np.degrees(np.arccos(min(1.0, c))))

    def normal_angle_to_z_deg(self) -> float:
        return float(np.degrees(np.arccos(min(1.0, abs(float(self.normal[2]))))))


def orientation_normal(iop: np.ndarray) -> np.ndarray:
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:6], float)
    n = np.cross(row, col)
    norm = np.linalg.norm(n)
    if norm < 1e-6:
        raise BadInputError("ImageOrientationPatient row and column directions are parallel (corrupt header).")
    return n / norm


def series_geometry(datasets) -> SeriesGeometry:
    """Geometry sorted along the normal of the first slice. Raises ``BadInputError`` if a slice lacks
    ImagePositionPatient / ImageOrientationPatient / PixelSpacing."""
    if not datasets:
        raise BadInputError("The series holds no images.")
    ipp, iops, spacings = [], [], []
    for ds in datasets:
        p = _floats(ds.get("ImagePositionPatient", None) or [], 3)
        o = _floats(ds.get("ImageOrientationPatient", None) or [], 6)
        s = _floats(ds.get("PixelSpacing", None) or [], 2)
        if p is None or o is None or s is None:
            missing = [k for k, v in (("ImagePositionPatient", p), ("ImageOrientationPatient", o),
                                      ("PixelSpacing", s)) if v is None]
            raise BadInputError(f"Image {Path(str(ds.get('filename', '') or '')).name or '?'} lacks "
                                f"{', '.join(missing)}: the slice cannot be placed in space.")
        ipp.append(p)
        iops.append(o)
        spacings.append(s)
    ipp_arr = np.asarray(ipp)
    normal = orientation_normal(iops[0])
    dist = ipp_arr @ normal
    order = np.argsort(dist, kind="stable")
    first = int(order[0])
    return SeriesGeometry(order=order, ipp=ipp_arr[order], distance_mm=dist[order], orientation=iops[first],
                          normal=normal, pixel_spacing=spacings[first], rows=int(datasets[first].Rows),
                          columns=int(datasets[first].Columns))


# --- metadata -----------------------------------------------------------------------------------------

_AGE_RE = re.compile(r"^\s*(\d{1,3})\s*([DWMY]?)\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0, "": 1.0}


def parse_age(value) -> float | None:
    """DICOM AS ("045Y", "006M", "010W", "003D") -> years; None when absent or malformed."""
    if value is None:
        return None
    m = _AGE_RE.match(str(value))
    if not m:
        return None
    return round(int(m.group(1)) * _AGE_UNIT_YEARS[m.group(2).upper()], 4)


def _float_or_none(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
            value = value[0]
        v = float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return v if np.isfinite(v) else None


def _str(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)


def _per_slice(datasets, keyword: str, alt_keyword: str | None = None, alt_scale: float = 1.0):
    vals = []
    for ds in datasets:
        v = _float_or_none(ds.get(keyword, None))
        if v is None and alt_keyword:
            a = _float_or_none(ds.get(alt_keyword, None))
            v = None if a is None else a * alt_scale
        vals.append(np.nan if v is None else v)
    arr = np.asarray(vals, dtype=float)
    return None if np.all(np.isnan(arr)) else arr


def _series_ctdivol(per_slice: np.ndarray | None) -> float | None:
    """Series CTDIvol: the mean of the per-image values. Siemens writes a per-image CTDIvol that follows the
    tube current modulation (e.g. 6.5 to 21.5 mGy in one series); others repeat the series value."""
    return None if per_slice is None else float(np.nanmean(per_slice))


def ct_metadata(sorted_datasets) -> CTMetadata:
    """CTMetadata of a series whose datasets are already in volume order. No patient identifiers."""
    ds0 = sorted_datasets[0]
    ctdivol = _per_slice(sorted_datasets, "CTDIvol")
    sex = _str(ds0.get("PatientSex", "")).strip().upper() or None
    return CTMetadata(
        study_instance_uid=_str(ds0.get("StudyInstanceUID", "")),
        series_instance_uid=_str(ds0.get("SeriesInstanceUID", "")),
        frame_of_reference_uid=_str(ds0.get("FrameOfReferenceUID", "")),
        sop_instance_uids=[_str(ds.get("SOPInstanceUID", "")) for ds in sorted_datasets],
        sop_class_uid=_str(ds0.get("SOPClassUID", "")),
        series_description=_str(ds0.get("SeriesDescription", "")),
        modality=_str(ds0.get("Modality", "")),
        manufacturer=_str(ds0.get("Manufacturer", "")),
        manufacturer_model_name=_str(ds0.get("ManufacturerModelName", "")),
        convolution_kernel=_str(ds0.get("ConvolutionKernel", "")),
        kvp=_float_or_none(ds0.get("KVP", None)),
        ctdivol_mgy=_series_ctdivol(ctdivol),
        ctdivol_per_slice_mgy=ctdivol,
        slice_thickness_mm=_float_or_none(ds0.get("SliceThickness", None)),
        tube_current_ma=_per_slice(sorted_datasets, "XRayTubeCurrent", "XRayTubeCurrentInuA", 1e-3),
        exposure_mas=_per_slice(sorted_datasets, "Exposure", "ExposureInuAs", 1e-3),
        patient_age_years=parse_age(ds0.get("PatientAge", None)),
        patient_sex=sex if sex in ("F", "M", "O") else None,
        patient_weight_kg=_float_or_none(ds0.get("PatientWeight", None)) or None,
        patient_size_m=_float_or_none(ds0.get("PatientSize", None)) or None,
        body_part_examined=_str(ds0.get("BodyPartExamined", "")),
        gantry_tilt_deg=_float_or_none(ds0.get("GantryDetectorTilt", None)) or 0.0,
        source_files=[str(getattr(ds, "filename", "") or "") for ds in sorted_datasets],
    )


# --- pixels -------------------------------------------------------------------------------------------

def _is_native_le(ds) -> bool:
    ts = ds.file_meta.TransferSyntaxUID
    return (not ts.is_compressed) and ts.is_little_endian and "PixelData" in ds


def _stored_dtype(ds) -> np.dtype:
    bits = int(ds.BitsAllocated)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    if bits == 16:
        return np.dtype("<i2" if signed else "<u2")
    if bits == 8:
        return np.dtype("i1" if signed else "u1")
    if bits == 32:
        return np.dtype("<i4" if signed else "<u4")
    raise BadInputError(f"Unsupported BitsAllocated {bits} for a CT image.")


def _fix_stored_bits(stack: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Mask unused high bits (unsigned) or sign-extend from BitsStored (signed), in place where possible."""
    nbits = stack.dtype.itemsize * 8
    if bits_stored >= nbits:
        return stack
    if signed:
        shift = nbits - bits_stored
        np.left_shift(stack, shift, out=stack)
        np.right_shift(stack, shift, out=stack)  # arithmetic shift on signed ints: sign extension
    else:
        np.bitwise_and(stack, (1 << bits_stored) - 1, out=stack)
    return stack


def decode_stack(sorted_datasets, rows: int, cols: int) -> np.ndarray:
    """(n, rows, cols) stored values. Native little-endian slices sharing one pixel format are copied from
    their bytes into one buffer; anything else goes through pydicom's decoders slice by slice."""
    n = len(sorted_datasets)
    ds0 = sorted_datasets[0]
    fmt = lambda ds: (int(ds.BitsAllocated), int(ds.get("BitsStored", ds.BitsAllocated)),  # noqa: E731
                      int(ds.get("PixelRepresentation", 0)), int(ds.get("SamplesPerPixel", 1)))
    f0 = fmt(ds0)
    fast = f0[3] == 1 and all(_is_native_le(ds) and fmt(ds) == f0 for ds in sorted_datasets)
    if fast:
        dtype = _stored_dtype(ds0)
        npx = rows * cols
        stack = np.empty((n, rows, cols), dtype=dtype)
        flat = stack.reshape(n, npx)
        for k, ds in enumerate(sorted_datasets):
            buf = ds.PixelData
            if len(buf) < npx * dtype.itemsize:
                raise BadInputError(f"Image {Path(str(ds.filename)).name}: truncated pixel data.")
            flat[k] = np.frombuffer(buf, dtype=dtype, count=npx)
        return _fix_stored_bits(stack, f0[1], f0[2] == 1)
    first = np.asarray(ds0.pixel_array)
    stack = np.empty((n, rows, cols), dtype=first.dtype if first.dtype.kind in "iu" else np.float32)
    for k, ds in enumerate(sorted_datasets):
        try:
            arr = first if k == 0 else ds.pixel_array
        except Exception as ex:  # noqa: BLE001
            raise BadInputError(f"Image {Path(str(getattr(ds, 'filename', '?'))).name}: pixel data cannot "
                                f"be decoded ({type(ex).__name__}).") from None
        if arr.shape != (rows, cols):
            raise BadInputError(f"Image {Path(str(getattr(ds, 'filename', '?'))).name}: pixel array "
                                f"{arr.shape} is not {rows}x{cols} (multi-frame or colour images are not CT slices).")
        stack[k] = arr
    return stack


def rescale_to_hu(stack: np.ndarray, sorted_datasets) -> np.ndarray:
    """float32 HU = stored x slope + intercept (per slice when they differ). Missing tags -> BadInputError."""
    slopes, intercepts = [], []
    for ds in sorted_datasets:
        s, i = _float_or_none(ds.get("RescaleSlope", None)), _float_or_none(ds.get("RescaleIntercept", None))
        if s is None or i is None:
            raise BadInputError(f"Image {Path(str(getattr(ds, 'filename', '?'))).name} lacks RescaleSlope/"
                                "RescaleIntercept: Hounsfield units cannot be computed.")
        slopes.append(s)
        intercepts.append(i)
    slopes_a, inter_a = np.asarray(slopes, np.float32), np.asarray(intercepts, np.float32)
    hu = stack.astype(np.float32)
    if np.all(slopes_a == slopes_a[0]) and np.all(inter_a == inter_a[0]):
        if slopes_a[0] != 1.0:
            hu *= slopes_a[0]
        if inter_a[0] != 0.0:
            hu += inter_a[0]
    else:
        hu *= slopes_a[:, None, None]
        hu += inter_a[:, None, None]
    return hu


# --- series -> volume ---------------------------------------------------------------------------------

def check_volume_geometry(datasets, geom: SeriesGeometry, spacing_tol: float = 0.05,
                          shear_tol_deg: float = 0.5) -> None:
    """Minimal checks that the slices form one regular grid; ``BadInputError`` otherwise."""
    shapes = {(int(ds.Rows), int(ds.Columns)) for ds in datasets}
    if len(shapes) > 1:
        raise BadInputError(f"Slices differ in size ({sorted(shapes)}): not one volume.")
    iops = np.asarray([_floats(ds.ImageOrientationPatient, 6) for ds in datasets])
    if np.abs(iops - iops[0]).max() > 1e-3:
        raise BadInputError("Slices differ in ImageOrientationPatient: not one volume.")
    pss = np.asarray([_floats(ds.PixelSpacing, 2) for ds in datasets])
    if np.abs(pss - pss[0]).max() > 1e-3:
        raise BadInputError("Slices differ in PixelSpacing: not one volume.")
    if geom.n > 1:
        steps = geom.steps_mm
        med = float(np.median(steps))
        if np.any(steps < 1e-3 * max(med, 1.0)):
            raise BadInputError("Two or more slices share one position: not one volume.")
        if np.any(np.abs(steps - med) > max(spacing_tol * med, 0.01)):
            raise BadInputError(f"Slice spacing is not uniform (steps {steps.min():.3f} to {steps.max():.3f} mm).")
        if geom.shear_angle_deg() > shear_tol_deg:
            raise BadInputError(f"Slices are sheared by {geom.shear_angle_deg():.1f} deg (gantry tilt): "
                                "not supported.")


def series_to_volume(series, check: bool = True) -> CTVolume:
    """SDK ``DICOMSeries`` or sequence of pydicom datasets -> ``CTVolume`` (z, y, x) float32 HU, LPS affine."""
    datasets = series_datasets(series)
    geom = series_geometry(datasets)
    if check:
        check_volume_geometry(datasets, geom)
    sorted_ds = [datasets[i] for i in geom.order]
    stack = decode_stack(sorted_ds, geom.rows, geom.columns)
    hu = rescale_to_hu(stack, sorted_ds)
    del stack
    if geom.n > 1:
        step = geom.slice_step
    else:
        thick = _float_or_none(sorted_ds[0].get("SpacingBetweenSlices", None)) or \
            _float_or_none(sorted_ds[0].get("SliceThickness", None)) or 1.0
        step = geom.normal * thick
    affine = affine_from_dicom(geom.ipp[0], geom.orientation, geom.pixel_spacing, step)
    return CTVolume(hu=hu, affine_lps=affine, meta=ct_metadata(sorted_ds))
