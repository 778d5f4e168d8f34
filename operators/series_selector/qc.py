"""Content checks of one DICOM series as a CT volume source (pure: headers only, no pixel decoding).

Each failed check adds a human-readable reason starting with "rejected: ". Checks:
modality CT; single-frame CT images; ORIGINAL and PRIMARY, not LOCALIZER; at least ``min_slices`` images;
position/orientation/pixel spacing present on every image; one Rows x Columns, one orientation and one
pixel spacing; slice normal within ``max_axial_angle_deg`` of the patient z axis; no two images at one
position; uniform spacing (a gap names the z between which slices are missing); no gantry tilt (tag or
sheared positions: rejected, not resampled); RescaleSlope and RescaleIntercept present.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from operators.common.dicom_series import orientation_normal

CT_IMAGE_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.2"}  # CT Image Storage (single-frame)
ENHANCED_CT_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2"}


@dataclass
class QCConfig:
    min_slices: int = 10
    max_axial_angle_deg: float = 10.0  # slice normal within this angle of patient z
    max_tilt_deg: float = 0.5  # |GantryDetectorTilt| or shear above this: rejected
    spacing_rel_tol: float = 0.05  # step may differ from the median step by this fraction (or 0.01 mm)
    gap_factor: float = 1.5  # a step this many times the median step is a gap (missing slices)
    max_listed: int = 5  # gaps/duplicates named in a reason

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SeriesFacts:
    """What the checks measured; used for ranking and reported."""

    modality: str = ""
    image_type: list[str] = field(default_factory=list)
    manufacturer: str = ""
    convolution_kernel: str = ""
    slice_thickness_mm: float | None = None
    slice_spacing_mm: float | None = None
    z_coverage_mm: float = 0.0
    z_range_mm: tuple[float, float] | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    rows_columns: tuple[int, int] | None = None
    normal_angle_deg: float | None = None
    gantry_tilt_deg: float | None = None

    def to_json(self) -> dict:
        out = {}
        for k, v in self.__dict__.items():
            if isinstance(v, float):
                v = round(v, 3)
            elif isinstance(v, tuple):
                v = [round(x, 3) if isinstance(x, float) else x for x in v]
            out[k] = v
        return out


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def _floats(value, n):
    try:
        a = [float(x) for x in value]
    except (TypeError, ValueError):
        return None
    return tuple(a) if len(a) == n else None


def _num(value):
    try:
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = value[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _distinct(values, ndigits=3):
    return Counter(tuple(round(x, ndigits) for x in v) if isinstance(v, tuple) else v for v in values)


def check_series(datasets, cfg: QCConfig | None = None) -> tuple[list[str], SeriesFacts]:
    """(reasons, facts) for one series given its pydicom datasets; empty reasons means it passed."""
    cfg = cfg or QCConfig()
    reasons: list[str] = []
    facts = SeriesFacts()
    if not datasets:
        return ["rejected: series holds no images"], facts
    ds0 = datasets[0]
    facts.modality = str(ds0.get("Modality", "") or "")
    facts.manufacturer = str(ds0.get("Manufacturer", "") or "")
    kern = ds0.get("ConvolutionKernel", None)
    if kern is not None and (isinstance(kern, (list, tuple)) or type(kern).__name__ == "MultiValue"):
        kern = "\\".join(str(k) for k in kern)
    facts.convolution_kernel = str(kern or "")
    facts.slice_thickness_mm = _num(ds0.get("SliceThickness", None))
    image_types = [tuple(str(x).upper() for x in (ds.get("ImageType", None) or [])) for ds in datasets]
    facts.image_type = list(image_types[0])

    # --- what kind of object
    modalities = {str(ds.get("Modality", "") or "?") for ds in datasets}
    if modalities != {"CT"}:
        reasons.append(f"rejected: modality {'/'.join(sorted(modalities))}, not CT")
    is_image = all("Rows" in ds and "Columns" in ds for ds in datasets)
    if not is_image:
        reasons.append("rejected: not an image series (no pixel data)")
        return reasons, facts
    sop_classes = {str(ds.get("SOPClassUID", "")) for ds in datasets}
    frames = max(int(ds.get("NumberOfFrames", 1) or 1) for ds in datasets)
    if sop_classes & ENHANCED_CT_SOP_CLASSES or frames > 1:
        reasons.append("rejected: multi-frame (enhanced) CT is not supported; send the single-frame CT series")
    elif modalities == {"CT"} and not sop_classes <= CT_IMAGE_SOP_CLASSES:
        reasons.append("rejected: not CT Image Storage (secondary capture or derived object, e.g. a dose screen)")
    if any("LOCALIZER" in it for it in image_types):
        reasons.append("rejected: LOCALIZER image type (scout / topogram)")
    if not all("ORIGINAL" in it and "PRIMARY" in it for it in image_types):
        bad = sorted({"\\".join(it) or "(none)" for it in image_types if not ("ORIGINAL" in it and "PRIMARY" in it)})
        reasons.append(f"rejected: image type {bad[0]} is not ORIGINAL\\PRIMARY (derived or secondary images)")
    if len(datasets) < cfg.min_slices:
        reasons.append(f"rejected: only {len(datasets)} image(s), at least {cfg.min_slices} slices needed")

    # --- rescale
    n_no_rescale = sum(1 for ds in datasets
                       if _num(ds.get("RescaleSlope", None)) is None or _num(ds.get("RescaleIntercept", None)) is None)
    if n_no_rescale:
        reasons.append(f"rejected: RescaleSlope/RescaleIntercept missing on {n_no_rescale} image(s): "
                       "Hounsfield units cannot be computed")

    # --- geometry present and consistent
    ipps = [_floats(ds.get("ImagePositionPatient", None) or [], 3) for ds in datasets]
    iops = [_floats(ds.get("ImageOrientationPatient", None) or [], 6) for ds in datasets]
    pss = [_floats(ds.get("PixelSpacing", None) or [], 2) for ds in datasets]
    missing = [name for name, vals in (("ImagePositionPatient", ipps), ("ImageOrientationPatient", iops),
                                       ("PixelSpacing", pss)) if any(v is None for v in vals)]
    if missing:
        reasons.append(f"rejected: {', '.join(missing)} missing on some images: slices cannot be placed in space")
        return reasons, facts
    shapes = _distinct([(int(ds.Rows), int(ds.Columns)) for ds in datasets])
    facts.rows_columns = shapes.most_common(1)[0][0]
    if len(shapes) > 1:
        reasons.append("rejected: images differ in size (" + ", ".join(f"{r}x{c} ({n})" for (r, c), n in
                                                                      shapes.most_common()) + ")")
    ors = _distinct(iops, 3)
    if len(ors) > 1:
        reasons.append(f"rejected: mixed orientations within the series ({len(ors)} distinct "
                       f"ImageOrientationPatient values, e.g. {list(ors)[0]} and {list(ors)[1]})")
    spac = _distinct(pss, 3)
    facts.pixel_spacing_mm = spac.most_common(1)[0][0]
    if len(spac) > 1:
        reasons.append("rejected: images differ in pixel spacing (" + ", ".join(
            f"{a:g}x{b:g} mm ({n})" for (a, b), n in spac.most_common()) + ")")

    iop0 = np.asarray(iops[0])
    try:
        normal = orientation_normal(iop0)
    except Exception:  # noqa: BLE001
        reasons.append("rejected: ImageOrientationPatient is degenerate (row and column directions parallel)")
        return reasons, facts
    facts.normal_angle_deg = float(np.degrees(np.arccos(min(1.0, abs(float(normal[2]))))))
    if facts.normal_angle_deg > cfg.max_axial_angle_deg:
        plane = ["sagittal", "coronal", "axial"][int(np.argmax(np.abs(normal)))]
        reasons.append(f"rejected: not axial (slice normal {facts.normal_angle_deg:.0f} deg from the patient z "
                       f"axis, limit {cfg.max_axial_angle_deg:g} deg; looks {plane})")

    tilt = _num(ds0.get("GantryDetectorTilt", None))
    facts.gantry_tilt_deg = tilt
    if tilt is not None and abs(tilt) > cfg.max_tilt_deg:
        reasons.append(f"rejected: gantry tilt {tilt:g} deg (GantryDetectorTilt): tilted acquisitions are not "
                       "resampled; reconstruct the series without tilt")

    # --- positions along the normal
    ipp = np.asarray(ipps)
    dist = ipp @ normal
    order = np.argsort(dist, kind="stable")
    d, zs = dist[order], ipp[order, 2]
    n = len(d)
    if n >= 2:
        facts.z_range_mm = (float(zs.min()), float(zs.max()))
        facts.z_coverage_mm = float(d[-1] - d[0])
        steps = np.diff(d)
        dup = steps < 1e-3
        positive = steps[~dup]
        if dup.any():
            groups: dict[float, int] = {}
            for k in np.nonzero(dup)[0]:
                key = round(float(zs[k]), 2)
                groups[key] = groups.get(key, 1) + 1
            listed = ", ".join(f"z={_fmt(z)} mm ({c} images)" for z, c in list(groups.items())[: cfg.max_listed])
            more = " ..." if len(groups) > cfg.max_listed else ""
            reasons.append(f"rejected: duplicate slice positions at {len(groups)} location(s): {listed}{more} "
                           "(overlapping acquisitions or phases mixed in one series)")
        if positive.size:
            med = float(np.median(positive))
            facts.slice_spacing_mm = med
            idx = np.nonzero(~dup)[0]
            gaps = [(k, steps[k]) for k in idx if steps[k] > cfg.gap_factor * med]
            for k, step in gaps[: cfg.max_listed]:
                n_missing = max(1, int(round(step / med)) - 1)
                reasons.append(f"rejected: missing slice{'s' if n_missing > 1 else ''} between z={_fmt(zs[k])} and "
                               f"z={_fmt(zs[k + 1])} mm (expected spacing {med:.1f} mm, gap {step:.1f} mm, about "
                               f"{n_missing} slice{'s' if n_missing > 1 else ''} missing)")
            if len(gaps) > cfg.max_listed:
                reasons.append(f"rejected: {len(gaps) - cfg.max_listed} further gap(s) not listed")
            tol = max(cfg.spacing_rel_tol * med, 0.01)
            irregular = [steps[k] for k in idx if abs(steps[k] - med) > tol and steps[k] <= cfg.gap_factor * med]
            if irregular:
                reasons.append(f"rejected: non-uniform slice spacing ({len(irregular)} step(s) differ from "
                               f"{med:.2f} mm, range {min(irregular):.2f} to {max(irregular):.2f} mm)")
            # shear: positions progress along a direction other than the slice normal
            step_vec = ipp[order[-1]] - ipp[order[0]]
            norm = float(np.linalg.norm(step_vec))
            if norm > 1e-6:
                shear = float(np.degrees(np.arccos(min(1.0, abs(float(step_vec @ normal)) / norm))))
                if shear > cfg.max_tilt_deg and not (tilt is not None and abs(tilt) > cfg.max_tilt_deg):
                    reasons.append(f"rejected: slice positions are sheared by {shear:.1f} deg from the slice normal "
                                   "(gantry tilt): tilted acquisitions are not resampled")
    return reasons, facts
