"""DICOM CT Image Storage writer for synthetic volumes (the procedural phantom, test series).

No higher-level library synthesises CT image objects (highdicom writes derived objects such as SEG and SR,
the SDK writes SEG / SR / encapsulated PDF), so CT images are built attribute by attribute with pydicom
following the CT Image IOD (PS3.3 A.3): Patient, General Study, Patient Study, General Series, Frame of
Reference, General Equipment, General Acquisition, General Image, Image Plane, Image Pixel, CT Image,
VOI LUT and SOP Common modules. Every object written here passes ``dciodvfy`` without errors
(tests/test_phantom.py checks it).

Geometry comes from the volume's LPS affine only (``operators/common/volume.py``): image orientation
= normalised affine columns 0 and 1, pixel spacing = their lengths, image position of slice k =
affine @ (0, 0, k, 1). Any orientation (axial, coronal, oblique) and either slice order can therefore be
written, which is what the series-selector's bad-input tests need.

Public API::

    StudyInfo                                  patient / study level attributes shared by all series
    write_ct_series(vol, out_dir, series_number, description, *, study, image_type=..., ...)
    uid_from(*parts)                           deterministic UID (2.25 form) from any hashable parts
    projection_wet_mm(hu, spacing)             per-slice water-equivalent thickness of the thicker projection
    tube_current_modulation(dw_mm, ...)        per-slice mA from Dw (operators.common.dosimetry, AAPM TG-220)
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from operators.common.volume import CTVolume

MANUFACTURER = "CorpusCT procedural phantom"
MODEL_NAME = "CorpusCT phantom v1"
IMPLEMENTATION_VERSION = "CORPUSCT_010"
# Not a registered root: UIDs use the ISO "2.25" UUID-derived form, which needs no root.
IMPLEMENTATION_CLASS_UID = "2.25.258230375126367262545302412344346785312"

IMAGE_TYPE_AXIAL = ("ORIGINAL", "PRIMARY", "AXIAL")
IMAGE_TYPE_LOCALIZER = ("ORIGINAL", "PRIMARY", "LOCALIZER")
IMAGE_TYPE_REFORMAT = ("DERIVED", "SECONDARY", "REFORMATTED")


_UID_NAMESPACE = uuid.UUID("6f1d3c52-4b7e-5e0a-9a57-2f0c8d1e4b61")


def uid_from(*parts: Any) -> str:
    """Deterministic DICOM UID (``2.25.<int>``, ISO/IEC 9834-8) from ``parts`` (seed, role, index, ...):
    a name-based (SHA-1, version 5) UUID. (pydicom's ``generate_uid(prefix=None, entropy_srcs=...)`` ignores
    the entropy sources and returns a random UUID, so it cannot be used for reproducible UIDs.)"""
    return "2.25." + str(uuid.uuid5(_UID_NAMESPACE, "\\".join(str(p) for p in parts)).int)


@dataclass
class StudyInfo:
    """Patient and study level attributes shared by all series of one study (synthetic, de-identified)."""

    study_instance_uid: str
    frame_of_reference_uid: str
    patient_name: str = "PHANTOM^CORPUSCT"
    patient_id: str = "PHANTOM-0"
    patient_birth_date: str = ""  # empty: not known (type 2)
    patient_sex: str = "O"  # "F" | "M" | "O"
    patient_age_years: float | None = None
    patient_weight_kg: float | None = None
    patient_size_m: float | None = None
    study_date: str = "20240101"
    study_time: str = "120000"
    study_id: str = "1"
    accession_number: str = ""
    study_description: str = "CT WHOLE BODY (SYNTHETIC PHANTOM)"
    referring_physician: str = ""
    institution_name: str = "CorpusCT synthetic data"
    station_name: str = "PHANTOM"

    @classmethod
    def from_seed(cls, seed: int, **kw) -> StudyInfo:
        """Study with UIDs, patient ID and date derived deterministically from ``seed``."""
        rng = np.random.default_rng([int(seed), 7919])
        day = _dt.date(2020, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 1461)))
        t = int(rng.integers(7 * 3600, 19 * 3600))
        defaults = dict(
            study_instance_uid=uid_from(seed, "study"),
            frame_of_reference_uid=uid_from(seed, "frame-of-reference"),
            patient_name=f"PHANTOM^SEED{int(seed)}",
            patient_id=f"PHANTOM-{int(seed):06d}",
            study_date=day.strftime("%Y%m%d"),
            study_time=f"{t // 3600:02d}{t // 60 % 60:02d}{t % 60:02d}",
            study_id=str(int(seed) % 100000),
            accession_number=f"SYN{int(seed):08d}",
        )
        defaults.update(kw)
        return cls(**defaults)


def _ds_str(v: float, digits: int = 6) -> str:
    """Decimal String value (max 16 characters)."""
    s = f"{float(v):.{digits}g}"
    if s in ("-0",):
        s = "0"
    return s[:16]


def _age_string(age_years: float | None) -> str:
    if age_years is None:
        return ""
    if age_years >= 2:
        return f"{min(int(age_years), 999):03d}Y"
    months = int(round(age_years * 12))
    return f"{max(months, 0):03d}M"


def projection_wet_mm(hu: np.ndarray, spacing_zyx_mm: Sequence[float],
                      body_mask: np.ndarray | None = None) -> np.ndarray:
    """Per slice, the water-equivalent thickness (mm) of the more attenuating of the lateral and AP
    projections, averaged over the central half of the patient (what a scout-based AEC sees: high at the
    shoulders and hips, lower through the lungs)."""
    dy, dx = float(spacing_zyx_mm[1]), float(spacing_zyx_mm[2])
    att = np.clip(np.asarray(hu, np.float32) / 1000.0 + 1.0, 0.0, None)
    if body_mask is not None:
        att = att * np.asarray(body_mask, bool)
    out = np.zeros(att.shape[0])
    for proj, _d in ((att.sum(axis=2) * dx, dy), (att.sum(axis=1) * dy, dx)):  # lateral (rows), AP (columns)
        inside = proj > 1.0
        n = proj.shape[1]
        idx = np.arange(n)[None, :]
        lo = np.where(inside.any(1), np.argmax(inside, axis=1), 0)[:, None]
        hi = np.where(inside.any(1), n - 1 - np.argmax(inside[:, ::-1], axis=1), -1)[:, None]
        q = (hi - lo) // 4
        band = (idx >= lo + q) & (idx <= hi - q)
        mean = (proj * band).sum(1) / np.maximum(band.sum(1), 1)
        out = np.maximum(out, mean)
    return out


def tube_current_modulation(dw_mm: np.ndarray, *, reference_ma: float = 200.0, reference_dw_mm: float = 300.0,
                            strength_per_cm: float = 0.08, min_ma: float = 20.0, max_ma: float = 650.0,
                            smooth_slices: float = 1.0) -> np.ndarray:
    """Longitudinal tube current modulation: mA = reference_ma * exp(k (D - Dref)), clipped to the tube's
    range; D is a per-slice attenuation diameter (Dw, or the phantom's sqrt(Dw x thickest projection)). With k ~ mu_water/2.4 ~ 0.08 /cm the noise still rises somewhat with size, as in real AEC
    (CARE Dose, SmartmA) which do not fully compensate attenuation. Slices with no patient get min_ma."""
    from scipy.ndimage import gaussian_filter1d

    dw = np.asarray(dw_mm, dtype=float)
    ma = reference_ma * np.exp(strength_per_cm * (dw - reference_dw_mm) / 10.0)
    ma = np.where(dw > 10.0, ma, min_ma)
    if smooth_slices > 0 and ma.size > 2:
        ma = gaussian_filter1d(ma, smooth_slices, mode="nearest")
    return np.clip(ma, min_ma, max_ma)


def _geometry(vol: CTVolume):
    a = vol.affine_lps
    di, dj, dk = a[:3, 0], a[:3, 1], a[:3, 2]
    col_spacing, row_spacing = float(np.linalg.norm(di)), float(np.linalg.norm(dj))
    row_cos, col_cos = di / col_spacing, dj / row_spacing
    normal = np.cross(row_cos, col_cos)
    return row_cos, col_cos, normal, row_spacing, col_spacing, dk


def write_ct_series(vol: CTVolume, out_dir: str | Path, series_number: int, description: str, *,
                    study: StudyInfo | None = None,
                    image_type: Sequence[str] = IMAGE_TYPE_AXIAL,
                    series_instance_uid: str | None = None,
                    sop_instance_uids: Sequence[str] | None = None,
                    kvp: float | None = None,
                    convolution_kernel: str | None = None,
                    tube_current_ma: Sequence[float] | None = None,
                    exposure_time_ms: float = 500.0,
                    ctdivol_mgy: float | None = None,
                    ctdi_phantom: str = "body",
                    slice_thickness_mm: float | None = None,
                    body_part_examined: str = "",
                    patient_position: str = "HFS",
                    window: tuple[float, float] | None = (40.0, 400.0),
                    acquisition_number: int = 1,
                    signed: bool = False,
                    rescale: tuple[float, float] | None = None,
                    derivation_description: str | None = None,
                    source_sop_instance_uids: Sequence[str] | None = None,
                    file_prefix: str | None = None,
                    overrides: dict[str, Any] | None = None,
                    per_slice: Callable[[Dataset, int], None] | None = None) -> list[Path]:
    """Write ``vol`` as one CT Image Storage series (one file per slice) into ``out_dir``.

    vol: HU (z, y, x) with LPS affine; slice k of the array becomes instance k+1. Geometry comes only from
        the affine, so oblique / coronal / reversed stacks are written faithfully.
    study: patient and study attributes (default: ``StudyInfo.from_seed(0)``). Study and frame of reference
        UIDs are shared by all series of one study.
    image_type: ImageType values, e.g. ORIGINAL\\PRIMARY\\AXIAL, ORIGINAL\\PRIMARY\\LOCALIZER,
        DERIVED\\SECONDARY\\REFORMATTED.
    series_instance_uid / sop_instance_uids: default deterministic from the study UID, series number and
        slice index. Meta fields of ``vol`` (kernel, kVp, CTDIvol, tube current, thickness, body part) are
        used when the corresponding argument is None (kVp then defaults to 120, the kernel to STANDARD).
    tube_current_ma: per-slice XRayTubeCurrent (mA); Exposure (mAs) = mA * exposure time.
    source_sop_instance_uids: for DERIVED images, the CT instances they were made from (SourceImageSequence).
    rescale: (slope, intercept) of the stored values; default (1, -1024) unsigned or (1, 0) signed.
    overrides: {keyword: value} set on every dataset after everything else (value None deletes the
        attribute): the hook for making deliberately odd series in tests.
    per_slice: optional callback ``f(ds, k)`` run on each dataset before it is saved.
    Returns the written paths, in slice order. File names: ``<prefix>_<instance:04d>.dcm``.
    """
    study = study or StudyInfo.from_seed(0)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = vol.meta
    nz, ny, nx = vol.shape
    row_cos, col_cos, normal, row_spacing, col_spacing, dk = _geometry(vol)

    series_uid = series_instance_uid or meta.series_instance_uid or uid_from(study.study_instance_uid, "series",
                                                                             series_number, description)
    if sop_instance_uids is None:
        sop_instance_uids = [uid_from(series_uid, "instance", k) for k in range(nz)]
    if len(sop_instance_uids) != nz:
        raise ValueError(f"{len(sop_instance_uids)} SOP instance UIDs for {nz} slices")
    body_part = (body_part_examined or meta.body_part_examined or "").upper()
    kernel = convolution_kernel if convolution_kernel is not None else (meta.convolution_kernel or "STANDARD")
    kvp = kvp if kvp is not None else (meta.kvp if meta.kvp is not None else 120.0)
    ctdivol = ctdivol_mgy if ctdivol_mgy is not None else meta.ctdivol_mgy
    thickness = slice_thickness_mm or meta.slice_thickness_mm or float(np.linalg.norm(dk))
    ma = tube_current_ma if tube_current_ma is not None else meta.tube_current_ma
    ma = None if ma is None else np.broadcast_to(np.asarray(ma, dtype=float), (nz,))
    if rescale is None:
        rescale = (1.0, 0.0) if signed else (1.0, -1024.0)
    slope, intercept = float(rescale[0]), float(rescale[1])
    stored = np.rint((np.asarray(vol.hu, dtype=np.float64) - intercept) / slope)
    if signed:
        stored = np.clip(stored, -32768, 32767).astype(np.int16)
    else:
        stored = np.clip(stored, 0, 65535).astype(np.uint16)
    prefix = file_prefix or f"S{int(series_number):03d}"
    now_date, now_time = study.study_date, study.study_time
    orientation = [float(round(v, 6)) + 0.0 for v in (*row_cos, *col_cos)]
    is_localizer = len(image_type) > 2 and str(image_type[2]).upper() == "LOCALIZER"

    paths = []
    for k in range(nz):
        ds = Dataset()
        fm = FileMetaDataset()
        fm.MediaStorageSOPClassUID = CTImageStorage
        fm.MediaStorageSOPInstanceUID = sop_instance_uids[k]
        fm.TransferSyntaxUID = ExplicitVRLittleEndian
        fm.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        fm.ImplementationVersionName = IMPLEMENTATION_VERSION
        ds.file_meta = fm

        # SOP Common
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_instance_uids[k]
        ds.InstanceCreationDate = now_date
        ds.InstanceCreationTime = now_time
        # Patient
        ds.PatientName = study.patient_name
        ds.PatientID = study.patient_id
        ds.PatientBirthDate = study.patient_birth_date
        ds.PatientSex = study.patient_sex
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "Synthetic data: procedural phantom, no patient information"
        # General Study
        ds.StudyInstanceUID = study.study_instance_uid
        ds.StudyDate = study.study_date
        ds.StudyTime = study.study_time
        ds.ReferringPhysicianName = study.referring_physician
        ds.StudyID = study.study_id
        ds.AccessionNumber = study.accession_number
        ds.StudyDescription = study.study_description
        # Patient Study
        if study.patient_age_years is not None:
            ds.PatientAge = _age_string(study.patient_age_years)
        if study.patient_weight_kg is not None:
            ds.PatientWeight = _ds_str(study.patient_weight_kg, 4)
        if study.patient_size_m is not None:
            ds.PatientSize = _ds_str(study.patient_size_m, 3)
        # General Series
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = int(series_number)
        ds.SeriesDate = now_date
        ds.SeriesTime = now_time
        ds.SeriesDescription = description
        ds.PatientPosition = patient_position
        if body_part:
            ds.BodyPartExamined = body_part
        else:  # Laterality is type 2C for paired body parts: empty = unknown (a dciodvfy warning, no error)
            ds.Laterality = ""
        # Frame of Reference
        ds.FrameOfReferenceUID = study.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        # General Equipment
        ds.Manufacturer = MANUFACTURER
        ds.ManufacturerModelName = MODEL_NAME
        ds.InstitutionName = study.institution_name
        ds.StationName = study.station_name
        ds.SoftwareVersions = "corpusct 0.1.0"
        # General Acquisition
        ds.AcquisitionNumber = int(acquisition_number)
        ds.AcquisitionDate = now_date
        ds.AcquisitionTime = now_time
        # General Image
        ds.InstanceNumber = k + 1
        ds.ContentDate = now_date
        ds.ContentTime = now_time
        ds.ImageType = [str(v) for v in image_type]
        if str(image_type[0]).upper() == "DERIVED":
            ds.DerivationDescription = derivation_description or "Multiplanar reformat of the axial series"
            if source_sop_instance_uids:
                items = []
                for uid in source_sop_instance_uids:
                    ref = Dataset()
                    ref.ReferencedSOPClassUID = CTImageStorage
                    ref.ReferencedSOPInstanceUID = uid
                    items.append(ref)
                ds.SourceImageSequence = items
        ds.BurnedInAnnotation = "NO"
        ds.LossyImageCompression = "00"
        # Image Plane
        pos = vol.affine_lps[:3, :3] @ np.array([0.0, 0.0, float(k)]) + vol.affine_lps[:3, 3]
        ds.ImagePositionPatient = [_ds_str(v, 8) for v in pos]
        ds.ImageOrientationPatient = [_ds_str(v, 8) for v in orientation]
        ds.PixelSpacing = [_ds_str(row_spacing, 8), _ds_str(col_spacing, 8)]
        ds.SliceThickness = _ds_str(thickness, 6)
        ds.SliceLocation = _ds_str(float(np.dot(pos, normal)), 8)
        # Image Pixel
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ny
        ds.Columns = nx
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if signed else 0
        sl = stored[k]
        ds.SmallestImagePixelValue = int(sl.min())
        ds.LargestImagePixelValue = int(sl.max())
        ds.PixelData = np.ascontiguousarray(sl).tobytes()
        # CT Image
        ds.RescaleIntercept = _ds_str(intercept)
        ds.RescaleSlope = _ds_str(slope)
        if not is_localizer:
            ds.RescaleType = "HU"
        ds.KVP = _ds_str(kvp)
        ds.DataCollectionDiameter = _ds_str(500.0)
        ds.ReconstructionDiameter = _ds_str(max(nx * col_spacing, ny * row_spacing), 6)
        ds.DistanceSourceToDetector = "1085.6"
        ds.DistanceSourceToPatient = "595"
        ds.GantryDetectorTilt = _ds_str(meta.gantry_tilt_deg or 0.0)
        ds.TableHeight = "150"
        ds.RotationDirection = "CW"
        ds.ExposureTime = str(int(round(exposure_time_ms)))
        if ma is not None:
            ds.XRayTubeCurrent = int(round(ma[k]))
            mas = ma[k] * exposure_time_ms / 1000.0
            ds.Exposure = int(round(mas))
            ds.ExposureInuAs = int(round(mas * 1000.0))
        ds.FilterType = "BODY" if ctdi_phantom == "body" else "HEAD"
        ds.FocalSpots = "1.2"
        ds.ConvolutionKernel = kernel
        if not is_localizer:
            ds.RevolutionTime = float(exposure_time_ms) / 1000.0
            ds.SingleCollimationWidth = 0.6
            ds.TotalCollimationWidth = 38.4
            ds.SpiralPitchFactor = 1.0
            ds.ScanOptions = "HELICAL MODE"
        else:
            ds.ScanOptions = "SURVIEW"
        if ctdivol is not None:
            ds.CTDIvol = float(round(float(ctdivol), 4))
            code = Dataset()
            if ctdi_phantom == "head":
                code.CodeValue, code.CodeMeaning = "113690", "IEC Head Dosimetry Phantom"
            else:
                code.CodeValue, code.CodeMeaning = "113691", "IEC Body Dosimetry Phantom"
            code.CodingSchemeDesignator = "DCM"
            ds.CTDIPhantomTypeCodeSequence = [code]
        # VOI LUT
        if window is not None:
            ds.WindowCenter = _ds_str(window[0])
            ds.WindowWidth = _ds_str(window[1])
        if overrides:
            for key, value in overrides.items():
                if value is None:
                    if key in ds:
                        delattr(ds, key)
                else:
                    setattr(ds, key, value)
        if per_slice is not None:
            per_slice(ds, k)
        path = out_dir / f"{prefix}_{k + 1:04d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths
