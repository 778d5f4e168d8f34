"""Body-composition metrics from a 7-class label map (BODY_COMPOSITION ids) on a CT grid.

Definitions (papers/body-composition-3d-unet.txt):

* waist: from the lower margin of the lowest rib (superior bound) to the upper margin of the iliac crest
  (inferior bound); ``Waist`` holds the two z (mm, LPS, superior positive) and where they came from;
* average skeletal muscle area SMA (cm2) = muscle volume in the waist / craniocaudal waist length; body fat
  area BFA (cm2) = (subcutaneous + abdominal visceral fat) volume in the waist / waist length; slices that
  straddle a waist bound count with the fraction of their thickness inside it;
* SMI = SMA / height^2 (cm2/m2), BFI = BFA / weight (cm2/kg); flags: low SMI < 40 (men) / 35 (women) cm2/m2,
  high BFI > 4.7 (men) / 5.8 (women) cm2/kg; no flag (None) when sex is unknown;
* L3: single-slice areas on the slice nearest the L3 z; waist and L3 areas count the trunk only (body
  components smaller than 25 % of the largest one in a slice, i.e. arms beside the body, are left out);
* volumes (cm3) per class over the trunk: per slice, body components smaller than 25 % of the largest one
  (arms beside the body) are left out; legs count where scanned (stated in the results).

A scan that does not contain the whole waist is "not evaluable": waist, L3, indices and flags are None and
``reason`` says why; nothing is computed on the wrong anatomy.

    w = waist_from_landmarks(z_mm, thickness, {"lowest_rib": ..., "iliac_crest": ...})   # or waist_from_bone(...)
    res = compute_metrics(labels, spacing_zyx_mm, slice_z_mm, waist=w, l3_z_mm=..., patient=Patient(...))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from operators.common.errors import MissingAnatomyError
from operators.common.labels import BODY_COMPOSITION

ID = {lab.name: lab.id for lab in BODY_COMPOSITION}
SMI_CUTOFF_CM2_M2 = {"M": 40.0, "F": 35.0}  # below: low skeletal muscle index (sarcopenia)
BFI_CUTOFF_CM2_KG = {"M": 4.7, "F": 5.8}  # above: high body fat index
FAT = (ID["subcutaneous_fat"], ID["abdominal_visceral_fat"])


@dataclass
class Waist:
    superior_z_mm: float  # lower margin of the lowest rib
    inferior_z_mm: float  # upper margin of the iliac crest
    source: str

    @property
    def length_mm(self) -> float:
        return self.superior_z_mm - self.inferior_z_mm


@dataclass
class Patient:
    sex: str | None = None  # "M" | "F" | None
    height_m: float | None = None
    weight_kg: float | None = None
    sex_source: str = "unknown"
    height_source: str = "unknown"
    weight_source: str = "unknown"


@dataclass
class BodyCompositionResult:
    status: str  # "complete" | "not_evaluable"
    reason: str = ""
    volumes_cm3: dict = field(default_factory=dict)
    waist: dict | None = None
    l3: dict | None = None
    flags: dict = field(default_factory=lambda: {"low_smi": None, "high_bfi": None})
    patient: Patient = field(default_factory=Patient)
    waist_source: str = ""
    l3_source: str = ""

    def to_json(self) -> dict:
        p = self.patient
        return {"status": self.status, "reason": self.reason, "volumes_cm3": self.volumes_cm3,
                "volumes_note": "per class over the trunk in the scanned range (arms beside the body excluded, "
                                "legs included where scanned)",
                "waist": self.waist, "waist_source": self.waist_source, "l3": self.l3, "l3_source": self.l3_source,
                "flags": self.flags,
                "cutoffs": {"smi_cm2_m2": SMI_CUTOFF_CM2_M2, "bfi_cm2_kg": BFI_CUTOFF_CM2_KG},
                "sex": p.sex, "sex_source": p.sex_source,
                "height_m": None if p.height_m is None else round(p.height_m, 3), "height_source": p.height_source,
                "weight_kg": None if p.weight_kg is None else round(p.weight_kg, 1), "weight_source": p.weight_source}


def slice_bounds(slice_z_mm: np.ndarray, thickness_mm: float) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(slice_z_mm, float)
    return z - thickness_mm / 2, z + thickness_mm / 2


def waist_from_landmarks(slice_z_mm, thickness_mm: float, landmarks: dict, source: str = "landmarks") -> Waist:
    """Waist from given lowest_rib / iliac_crest z; MissingAnatomyError when the scan does not contain it."""
    lr, ic = landmarks.get("lowest_rib"), landmarks.get("iliac_crest")
    if lr is None or ic is None:
        raise MissingAnatomyError("The lowest rib or the iliac crest was not found, so the waist is unknown.")
    lo, hi = slice_bounds(slice_z_mm, thickness_mm)
    zmin, zmax = float(lo.min()), float(hi.max())
    tol = 0.25 * thickness_mm
    if float(lr) > zmax + tol:
        raise MissingAnatomyError(f"The scan starts below the lowest rib (scan top {zmax:.0f} mm, lowest rib "
                                  f"{lr:.0f} mm): the waist is not fully covered.")
    if float(ic) < zmin - tol:
        raise MissingAnatomyError(f"The scan ends above the iliac crest (scan bottom {zmin:.0f} mm, iliac crest "
                                  f"{ic:.0f} mm): the waist is not fully covered.")
    if float(lr) - float(ic) < 10.0:
        raise MissingAnatomyError("The lowest rib is not above the iliac crest: implausible waist.")
    return Waist(float(lr), float(ic), source)


def _trunk_mask_slice(body: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(body)
    if n <= 1:
        return body
    sizes = ndimage.sum(body, lab, range(1, n + 1))
    keep = np.nonzero(sizes >= 0.25 * sizes.max())[0] + 1
    return np.isin(lab, keep)


def lateral_bone_per_slice(labels: np.ndarray, spacing_zyx_mm, min_offset_mm: float = 60.0,
                           min_area_mm2: float = 100.0, bone_mask: np.ndarray | None = None) -> np.ndarray:
    """Per slice: bone area (mm2) in the largest body component farther than ``min_offset_mm`` left or right of
    the vertebral column (ribs, iliac wings, scapulae, skull; not the spine and its processes).
    ``labels`` must be in canonical in-plane layout or any axial layout (left-right = array axis 2)."""
    dz, dy, dx = spacing_zyx_mm
    out = np.zeros(labels.shape[0])
    for k in range(labels.shape[0]):
        sl = labels[k]
        body = sl > 0
        if not body.any():
            continue
        lab, n = ndimage.label(body)
        if n > 1:
            sizes = ndimage.sum(body, lab, range(1, n + 1))
            body = lab == (int(np.argmax(sizes)) + 1)
        bone = ((sl == ID["bone"]) if bone_mask is None else bone_mask[k]) & body
        if not bone.any():
            continue
        cols = np.nonzero(body.any(axis=0))[0]
        cx = 0.5 * (cols[0] + cols[-1])
        xs = np.nonzero(bone)[1]
        far = np.abs(xs - cx) * dx > min_offset_mm
        a = far.sum() * dx * dy
        out[k] = a if a >= min_area_mm2 else 0.0
    return out


def waist_from_bone(labels: np.ndarray, spacing_zyx_mm, slice_z_mm, bone_mask: np.ndarray | None = None,
                    source: str = "bone anatomy in the predicted mask") -> Waist:
    """Waist from bone anatomy in a label map: the run of slices without lateral bone (ribs above, iliac
    wings below) that shows the abdominal cavity (visceral fat). Lowest rib = lower margin of the last slice
    with rib bone lateral to the spine; iliac crest = upper margin of the first slice with iliac bone."""
    z = np.asarray(slice_z_mm, float)
    order = np.argsort(-z)  # superior -> inferior
    lab_s = labels[order]
    thick = float(spacing_zyx_mm[0])
    bm = None if bone_mask is None else bone_mask[order]
    lateral = lateral_bone_per_slice(lab_s, spacing_zyx_mm, bone_mask=bm) > 0
    px = spacing_zyx_mm[1] * spacing_zyx_mm[2] / 100.0
    avf = (lab_s == ID["abdominal_visceral_fat"]).sum(axis=(1, 2)) * px  # cm2
    gaps, k, n = [], 0, len(z)
    while k < n:
        if lateral[k]:
            k += 1
            continue
        j = k
        while j < n and not lateral[j]:
            j += 1
        gaps.append((k, j - 1))
        k = j
    cands = [(a, b) for a, b in gaps if np.median(avf[a:b + 1]) >= 5.0 and (b - a + 1) * thick >= 20.0]
    if not cands:
        raise MissingAnatomyError("No abdomen between the ribs and the pelvis was found in this scan, so the waist "
                                  "(lowest rib to iliac crest) cannot be measured.")
    a, b = max(cands, key=lambda ab: float(avf[ab[0]:ab[1] + 1].sum()))
    if a == 0:
        raise MissingAnatomyError("The scan starts below the lowest rib: the waist is not fully covered.")
    if b == n - 1:
        raise MissingAnatomyError("The scan ends above the iliac crest: the waist is not fully covered.")
    zs = z[order]
    return Waist(float(zs[a - 1] - thick / 2), float(zs[b + 1] + thick / 2), source)


def class_areas_cm2(labels_slice: np.ndarray, pixel_area_cm2: float) -> dict[str, float]:
    counts = np.bincount(labels_slice.ravel(), minlength=8)
    return {lab.name: float(counts[lab.id]) * pixel_area_cm2 for lab in BODY_COMPOSITION}


def trunk_volumes_cm3(labels: np.ndarray, spacing_zyx_mm) -> dict[str, float]:
    vox = float(np.prod(spacing_zyx_mm)) / 1000.0
    counts = np.zeros(8)
    for k in range(labels.shape[0]):
        sl = labels[k]
        trunk = _trunk_mask_slice(sl > 0)
        counts += np.bincount(sl[trunk].ravel(), minlength=8)[:8]
    return {lab.name: round(float(counts[lab.id]) * vox, 1) for lab in BODY_COMPOSITION}


def waist_areas(labels: np.ndarray, spacing_zyx_mm, slice_z_mm, waist: Waist) -> dict:
    """Average areas (cm2) over the waist: tissue volume in the waist / waist length."""
    thick = float(spacing_zyx_mm[0])
    lo, hi = slice_bounds(slice_z_mm, thick)
    frac = np.clip((np.minimum(hi, waist.superior_z_mm) - np.maximum(lo, waist.inferior_z_mm)) / thick, 0, 1)
    px = spacing_zyx_mm[1] * spacing_zyx_mm[2] / 100.0
    vol = np.zeros(8)
    for k in np.nonzero(frac > 0)[0]:
        sl = labels[k][_trunk_mask_slice(labels[k] > 0)]  # arms beside the body do not count
        vol += np.bincount(sl.ravel(), minlength=8)[:8] * px * thick / 10.0 * frac[k]  # cm3
    length_cm = waist.length_mm / 10.0
    return {"sma_cm2": vol[ID["muscle"]] / length_cm, "bfa_cm2": (vol[FAT[0]] + vol[FAT[1]]) / length_cm,
            "sfa_cm2": vol[FAT[0]] / length_cm, "avfa_cm2": vol[FAT[1]] / length_cm, "length_cm": length_cm,
            "muscle_volume_cm3": vol[ID["muscle"]], "fat_volume_cm3": vol[FAT[0]] + vol[FAT[1]],
            "superior_z_mm": waist.superior_z_mm, "inferior_z_mm": waist.inferior_z_mm}


def flags(smi, bfi, sex) -> dict:
    if sex not in ("M", "F"):
        return {"low_smi": None, "high_bfi": None}
    return {"low_smi": None if smi is None else bool(smi < SMI_CUTOFF_CM2_M2[sex]),
            "high_bfi": None if bfi is None else bool(bfi > BFI_CUTOFF_CM2_KG[sex])}


def _r(v, nd=2):
    return None if v is None else round(float(v), nd)


def compute_metrics(labels: np.ndarray, spacing_zyx_mm, slice_z_mm, *, waist: Waist | None,
                    l3_z_mm: float | None = None, l3_source: str = "", patient: Patient | None = None,
                    reason: str = "") -> BodyCompositionResult:
    """All metrics of one label map. ``waist`` None: not evaluable (``reason`` says why); volumes still given."""
    patient = patient or Patient()
    res = BodyCompositionResult(status="not_evaluable", reason=reason, patient=patient,
                                volumes_cm3=trunk_volumes_cm3(labels, spacing_zyx_mm))
    if waist is None:
        res.reason = reason or "The waist (lowest rib to iliac crest) is not covered by this scan."
        return res
    w = waist_areas(labels, spacing_zyx_mm, slice_z_mm, waist)
    h, wt = patient.height_m, patient.weight_kg
    smi = w["sma_cm2"] / h ** 2 if h else None
    bfi = w["bfa_cm2"] / wt if wt else None
    res.waist = {"sma_cm2": _r(w["sma_cm2"]), "bfa_cm2": _r(w["bfa_cm2"]), "smi_cm2_m2": _r(smi),
                 "bfi_cm2_kg": _r(bfi, 3), "length_cm": _r(w["length_cm"]), "sfa_cm2": _r(w["sfa_cm2"]),
                 "avfa_cm2": _r(w["avfa_cm2"]), "superior_z_mm": _r(waist.superior_z_mm, 1),
                 "inferior_z_mm": _r(waist.inferior_z_mm, 1)}
    res.waist_source = waist.source
    res.flags = flags(smi, bfi, patient.sex)
    res.status = "complete"
    res.reason = ""
    if l3_z_mm is not None:
        z = np.asarray(slice_z_mm, float)
        k = int(np.argmin(np.abs(z - l3_z_mm)))
        px = spacing_zyx_mm[1] * spacing_zyx_mm[2] / 100.0
        a = class_areas_cm2(labels[k][_trunk_mask_slice(labels[k] > 0)], px)
        sma = a["muscle"]
        bfa = a["subcutaneous_fat"] + a["abdominal_visceral_fat"]
        res.l3 = {"slice_index": k, "z_mm": round(float(z[k]), 1), "sma_cm2": _r(sma), "bfa_cm2": _r(bfa),
                  "sfa_cm2": _r(a["subcutaneous_fat"]), "avfa_cm2": _r(a["abdominal_visceral_fat"]),
                  "smi_cm2_m2": _r(sma / h ** 2) if h else None, "bfi_cm2_kg": _r(bfa / wt, 3) if wt else None}
        res.l3_source = l3_source
    return res
