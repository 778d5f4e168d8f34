"""Range selector: per-slice GrayNet predictions -> body parts per slice, landmarks found in the scan, the
scan's position on the ICRP-110 reference body (AM or AF) and a gating API for other operators.

Mapping (scan z -> reference z) is piecewise linear between landmarks detected in the scan (where a
landmark-bounded body part starts or stops inside the scan, ``labels.BODY_PARTS``) and the same landmarks of
the reference phantom (``reference.py``). With fewer than two consistent landmarks it falls back to GrayNet's
per-slice reference-z regression (robust line fit). Reference z: mm (results: cm) above the phantom's soles.

    sr = select_range(pred)                # pred: inference.SlicePredictions
    sr.covers("liver"), sr.covers("waist", complete=True), sr.slices_of("abdomen"), sr.to_json()
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from operators.common.errors import MissingAnatomyError
from operators.common.labels import BODY_PART_BY_NAME, BODY_PARTS

from .landmark_map import map_z, matched_pairs
from .reference import reference_landmarks, table

PART_NAMES = [bp.name for bp in BODY_PARTS]
REGIONS = {  # region aliases -> body parts
    "head": ("brain", "skull_base", "orbits", "nasal_cavity", "oral_cavity"),
    "neck": ("neck", "thyroid_level"),
    "chest": ("upper_thorax", "heart", "lower_thorax"), "thorax": ("upper_thorax", "heart", "lower_thorax"),
    "abdomen": ("liver_dome", "upper_abdomen", "kidneys", "mid_abdomen", "lower_abdomen"),
    "pelvis": ("pelvis", "hips"), "legs": ("thigh", "knee", "lower_leg", "ankle_foot"),
}
LANDMARK_INTERVALS = {"waist": ("iliac_crest", "lowest_rib")}  # (inferior, superior)
# DICOM BodyPartExamined (CID 4031 defined terms) per region, most specific first
BODY_PART_EXAMINED = (("HEAD", "head"), ("NECK", "neck"), ("CHEST", "chest"), ("ABDOMEN", "abdomen"),
                      ("PELVIS", "pelvis"), ("LEG", "legs"))


@dataclass
class ScanRange:
    slice_z_mm: np.ndarray  # volume order
    part_probabilities: np.ndarray  # (n, 24), smoothed along z, volume order
    body_parts_per_slice: list[list[str]]
    phantom: str
    ref_z_mm: np.ndarray  # mapped reference z per slice, volume order
    start_cm: float  # inferior end of the scan on the reference body
    end_cm: float  # superior end
    uncertainty_cm: float
    method: str
    landmarks_scan_mm: dict[str, float] = field(default_factory=dict)
    sex: str = "M"
    sex_probability: float = 0.5
    age_years: float = float("nan")
    weight_kg: float = float("nan")

    @property
    def covered_body_parts(self) -> list[str]:
        present = {n for names in self.body_parts_per_slice for n in names}
        return [n for n in PART_NAMES if n in present]

    def body_part_examined(self) -> str:
        n = max(len(self.body_parts_per_slice), 1)
        dz = float(np.median(np.abs(np.diff(self.slice_z_mm)))) if n > 1 else 1.0
        # a region counts when it fills 15 % of the scan or at least 5 cm of it (a whole-body scan's head is
        # only ~13 % of its slices); regions merely touched do not count
        hits = [term for term, reg in BODY_PART_EXAMINED
                if len(self.slices_of(reg)) >= max(3, min(0.15 * n, 50.0 / max(dz, 1e-3)))]
        if not hits:  # low confidence everywhere: the region with the most slices, if any
            counts = [(len(self.slices_of(reg)), term) for term, reg in BODY_PART_EXAMINED]
            hits = [max(counts)[1]] if max(counts)[0] > 0 else []
        if len(hits) >= 4 and "LEG" in hits and "HEAD" in hits:
            return "WHOLEBODY"
        if set(hits) == {"CHEST", "ABDOMEN"}:
            return "CHESTABDOMEN"
        if set(hits) >= {"CHEST", "ABDOMEN", "PELVIS"} and len(hits) == 3:
            return "CHESTABDPELVIS"
        if set(hits) == {"ABDOMEN", "PELVIS"}:
            return "ABDOMENPELVIS"
        if set(hits) == {"HEAD", "NECK"}:
            return "HEADNECK"
        return hits[0] if len(hits) == 1 else ("".join(hits[:2]) if hits else "")

    def _ref_interval(self, name: str) -> tuple[float, float] | None:
        t = table()["phantoms"][self.phantom]
        if name in LANDMARK_INTERVALS:
            lo, hi = LANDMARK_INTERVALS[name]
            return t["landmarks_mm"][lo], t["landmarks_mm"][hi]
        if name in t.get("organs_z_mm", {}):
            lo, hi = t["organs_z_mm"][name]
            return float(lo), float(hi)
        return None

    def slices_of(self, name: str) -> np.ndarray:
        """Indices (volume order) of the slices showing a body part, a region (head, neck, chest, abdomen,
        pelvis, legs), an organ of the reference phantom (liver, kidneys, ...) or the waist."""
        if name in BODY_PART_BY_NAME:
            return np.array([k for k, ns in enumerate(self.body_parts_per_slice) if name in ns], int)
        if name in REGIONS:
            parts = set(REGIONS[name])
            return np.array([k for k, ns in enumerate(self.body_parts_per_slice) if parts & set(ns)], int)
        iv = self._ref_interval(name)
        if iv is None:
            raise KeyError(f"unknown anatomy {name!r}: use a body part, a region {sorted(REGIONS)}, an organ or 'waist'")
        return np.nonzero((self.ref_z_mm >= iv[0]) & (self.ref_z_mm <= iv[1]))[0]

    def covers(self, name: str, complete: bool = False) -> bool:
        """Whether the scan shows ``name`` at all, or (``complete``) from its lower to its upper end. For
        organs and the waist, completeness compares the reference interval with the mapped scan range
        (+- the uncertainty); for body parts and regions, the first and last scan slices must not show it."""
        idx = self.slices_of(name)
        if not len(idx):
            return False
        if not complete:
            return True
        iv = self._ref_interval(name)
        if iv is not None:
            tol = 10.0 * self.uncertainty_cm
            return self.start_cm * 10.0 <= iv[0] + tol and self.end_cm * 10.0 >= iv[1] - tol
        return 0 not in idx and (len(self.slice_z_mm) - 1) not in idx

    def require(self, name: str, complete: bool = False) -> np.ndarray:
        """``slices_of(name)``, or ``MissingAnatomyError`` with a message a radiographer understands."""
        if not self.covers(name, complete):
            what = "the whole " + name if complete else name.replace("_", " ")
            raise MissingAnatomyError(f"This scan does not show {what} (it covers: "
                                      f"{', '.join(self.covered_body_parts) or 'no recognised body part'}).")
        return self.slices_of(name)

    def to_json(self) -> dict:
        return {
            "body_parts_per_slice": self.body_parts_per_slice,
            "covered_body_parts": self.covered_body_parts,
            "body_part_examined": self.body_part_examined(),
            "scan_range_icrp110_cm": {"phantom": self.phantom, "start": round(self.start_cm, 1),
                                      "end": round(self.end_cm, 1), "uncertainty": round(self.uncertainty_cm, 1),
                                      "origin": "cm above the soles of the ICRP-110 phantom (superior positive); "
                                                "start = inferior end, end = superior end of the scan",
                                      "method": self.method},
            "landmarks_found_mm": {k: round(v, 1) for k, v in self.landmarks_scan_mm.items()},
            "age_years": round(self.age_years, 1), "sex": self.sex, "sex_probability": round(self.sex_probability, 3),
            "weight_kg": round(self.weight_kg, 1),
            "gating": {n: self.covers(n) for n in ("head", "neck", "chest", "abdomen", "pelvis", "legs", "liver",
                                                    "kidneys", "lungs", "waist")},
            "waist_complete": self.covers("waist", complete=True),
        }


def smooth_probabilities(p: np.ndarray, z_mm: np.ndarray, sigma_mm: float = 6.0) -> np.ndarray:
    """Gaussian smoothing along z (slices in ascending z order expected)."""
    if len(z_mm) < 2:
        return p
    dz = float(np.median(np.abs(np.diff(z_mm))))
    s = sigma_mm / max(dz, 1e-3)
    return ndimage.gaussian_filter1d(p, s, axis=0, mode="nearest") if s > 0.3 else p


def detect_landmarks(prob: np.ndarray, z_mm: np.ndarray, min_run_mm: float = 10.0) -> dict[str, list[float]]:
    """Landmark z estimates where a landmark-bounded body part starts or stops inside the scan.

    ``prob`` (n, 24) and ``z_mm`` in ascending z. A part's 0.5 crossing (interpolated between slices) going up
    at its lower end gives its inferior landmark (minus the offset), at its upper end its superior landmark.
    Crossings at the first or last slice are scan edges, not anatomy, and ignored; only the longest run of a
    part counts, and runs shorter than ``min_run_mm`` are ignored unless they end inside the scan on both sides.
    """
    out: dict[str, list[float]] = {}
    n = len(z_mm)
    for j, bp in enumerate(BODY_PARTS):
        if bp.inferior is None:
            continue
        on = prob[:, j] > 0.5
        if not on.any():
            continue
        lab, nr = ndimage.label(on)
        sizes = ndimage.sum(on, lab, range(1, nr + 1))
        r = int(np.argmax(sizes)) + 1
        ks = np.nonzero(lab == r)[0]
        a, b = int(ks[0]), int(ks[-1])
        if z_mm[b] - z_mm[a] < min_run_mm and (a == 0 or b == n - 1):
            continue
        if a > 0:  # rising crossing between a-1 and a
            p0, p1 = prob[a - 1, j], prob[a, j]
            zc = z_mm[a - 1] + (0.5 - p0) / max(p1 - p0, 1e-6) * (z_mm[a] - z_mm[a - 1])
            out.setdefault(bp.inferior[0], []).append(float(zc - bp.inferior[1]))
        if b < n - 1:
            p0, p1 = prob[b, j], prob[b + 1, j]
            zc = z_mm[b] + (p0 - 0.5) / max(p0 - p1, 1e-6) * (z_mm[b + 1] - z_mm[b])
            out.setdefault(bp.superior[0], []).append(float(zc - bp.superior[1]))
    return out


def _robust_line(x: np.ndarray, y: np.ndarray, slope_prior: float = 1.0) -> tuple[float, float, float]:
    """(slope, intercept, residual MAD) of y ~ x; slope fixed to the prior for short spans."""
    if len(x) >= 2 and (x.max() - x.min()) > 150.0:
        slope = float(np.clip(np.polyfit(x, y, 1)[0], 0.7, 1.4))
        for _ in range(3):
            res = y - slope * x
            keep = np.abs(res - np.median(res)) < 3 * max(1.4826 * np.median(np.abs(res - np.median(res))), 10.0)
            if keep.sum() >= 2 and np.ptp(x[keep]) > 100:
                slope = float(np.clip(np.polyfit(x[keep], y[keep], 1)[0], 0.7, 1.4))
    else:
        slope = slope_prior
    inter = float(np.median(y - slope * x))
    mad = float(1.4826 * np.median(np.abs(y - slope * x - inter)))
    return slope, inter, mad


def select_range(pred, phantom: str | None = None, method: str = "auto") -> ScanRange:
    """Scan range on the ICRP-110 phantom from ``inference.SlicePredictions``.

    ``phantom``: "AM" / "AF" (e.g. from the DICOM header's sex); None: by predicted sex. ``method``: "landmarks"
    (piecewise linear through detected landmarks; needs two), "regression" (GrayNet's reference-z head), or
    "auto" (landmarks when at least two consistent ones are found, else regression).
    """
    z = np.asarray(pred.slice_z_mm, float)
    n = len(z)
    if n == 0:
        raise MissingAnatomyError("The series has no slices to analyse.")
    order = np.argsort(z)
    za = z[order]
    pa = smooth_probabilities(np.asarray(pred.part_probabilities, float)[order], za)
    # body parts per slice (volume order)
    p_vol = np.empty_like(pa)
    p_vol[order] = pa
    parts = [[PART_NAMES[j] for j in np.nonzero(row > 0.5)[0]] for row in p_vol]
    sex_p = float(pred.sex_probability)
    sex = "M" if sex_p >= 0.5 else "F"
    ph = (phantom or ("AM" if sex == "M" else "AF")).upper()
    ref = reference_landmarks(ph)
    thick = float(np.median(np.abs(np.diff(za)))) if n > 1 else 5.0
    # regression fallback: AM reference z per slice -> target phantom
    rz = np.asarray(pred.ref_z_mm, float)[order]
    if ph != "AM":
        rz = map_z(rz, reference_landmarks("AM"), ref)
    slope_r, inter_r, mad_r = _robust_line(za, rz)
    est = detect_landmarks(pa, za)
    lm_scan = {k: float(np.median(v)) for k, v in est.items()}
    # gross outliers: landmarks far from where GrayNet's reference-z regression puts that slice
    tol = max(100.0, 3.0 * mad_r)
    kept = {k: v for k, v in lm_scan.items() if k in ref and abs(ref[k] - (slope_r * v + inter_r)) < tol}
    lm_scan = kept if len(kept) >= 2 else lm_scan  # a useless regression must not veto all landmarks
    s, d = matched_pairs(lm_scan, ref, min_gap_mm=2.0)
    use_lm = method == "landmarks" or (method == "auto" and len(s) >= 2)
    if use_lm and len(s) >= 1:
        mapped = map_z(za, {f"l{i}": v for i, v in enumerate(s)}, {f"l{i}": v for i, v in enumerate(d)},
                       default_scale=slope_r)
        # leave-one-out residuals of the landmarks as the mapping uncertainty
        loo = []
        for i in range(len(s)):
            if len(s) < 3:
                break
            ss, dd = np.delete(s, i), np.delete(d, i)
            pm = map_z(np.array([s[i]]), {f"l{k}": v for k, v in enumerate(ss)},
                       {f"l{k}": v for k, v in enumerate(dd)}, default_scale=slope_r)[0]
            loo.append(pm - d[i])
        spread = float(np.sqrt(np.mean(np.square(loo)))) if loo else 15.0
        used = "landmarks"
    else:
        mapped = slope_r * za + inter_r
        spread = max(mad_r, 10.0)
        used = "regression"
    unc_mm = float(np.sqrt(spread ** 2 + (thick / 2) ** 2))
    ref_vol = np.empty(n)
    ref_vol[order] = mapped
    return ScanRange(slice_z_mm=z, part_probabilities=p_vol, body_parts_per_slice=parts, phantom=ph, ref_z_mm=ref_vol,
                     start_cm=float(mapped.min()) / 10.0, end_cm=float(mapped.max()) / 10.0,
                     uncertainty_cm=max(unc_mm / 10.0, 0.3), method=used,
                     landmarks_scan_mm={k: lm_scan[k] for k in lm_scan}, sex=sex, sex_probability=sex_p if sex == "M" else 1.0 - sex_p,
                     age_years=float(pred.age_years), weight_kg=float(pred.weight_kg))
