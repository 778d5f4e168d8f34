"""Range selector: per-slice GrayNet predictions -> the scan's position on the ICRP-110 reference body (AM or AF),
body parts per slice and a gating API for other operators.

Mapping (scan z -> reference z): a near-rigid fit ``ref = a * z + b`` (``profile_fit``) that best explains the
body-part probabilities of *all* slices by the reference body's landmark-defined body parts, helped by GrayNet's
per-slice reference-z regression; the scale ``a`` is bounded by plausible body-height ratios (SLOPE_MIN..MAX,
log-normal prior around 1), the offset keeps the scan on the phantom, and the uncertainty is the posterior spread
of the scan's ends. The first version's mappings (piecewise linear through detected landmarks; regression line)
remain as ``method="landmarks"`` / ``"regression"`` for comparison (benchmarks/eval_graynet.py). Reference z:
mm (results: cm) above the phantom's soles.

    sr = select_range(pred)                # pred: inference.SlicePredictions
    sr.covers("liver"), sr.covers("waist", complete=True), sr.slices_of("abdomen"), sr.to_json()
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from operators.common.errors import MissingAnatomyError
from operators.common.labels import BODY_PART_BY_NAME, BODY_PARTS, body_part_interval_mm, body_parts_per_slice

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

    def region_coverage(self, region: str) -> float:
        """Share (0-1) of the region's extent on the reference body that the scan's slices of it span."""
        t = table()["phantoms"][self.phantom]["landmarks_mm"]
        ivs = [body_part_interval_mm(BODY_PART_BY_NAME[n], t) for n in REGIONS[region]]
        lo, hi = min(iv[0] for iv in ivs if iv), max(iv[1] for iv in ivs if iv)
        idx = self.slices_of(region)
        if not len(idx) or hi <= lo:
            return 0.0
        dz = float(np.median(np.abs(np.diff(self.slice_z_mm)))) if len(self.slice_z_mm) > 1 else 5.0
        r = self.ref_z_mm[idx]
        return float(min(1.0, (r.max() - r.min() + dz) / (hi - lo)))

    def body_part_examined(self) -> str:
        n = max(len(self.body_parts_per_slice), 1)
        # a region counts when the scan spans at least half of it on the reference body, or when it fills
        # half of the scan: the lung bases at the top of an abdomen scan or the upper abdomen at the bottom of
        # a chest CT do not make it CHESTABDOMEN
        hits = [term for term, reg in BODY_PART_EXAMINED
                if len(self.slices_of(reg)) >= 3 and (self.region_coverage(reg) >= 0.5
                                                      or len(self.slices_of(reg)) >= 0.5 * n)]
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
        slope = float(np.clip(np.polyfit(x, y, 1)[0], SLOPE_MIN, SLOPE_MAX))
        for _ in range(3):
            res = y - slope * x
            keep = np.abs(res - np.median(res)) < 3 * max(1.4826 * np.median(np.abs(res - np.median(res))), 10.0)
            if keep.sum() >= 2 and np.ptp(x[keep]) > 100:
                slope = float(np.clip(np.polyfit(x[keep], y[keep], 1)[0], SLOPE_MIN, SLOPE_MAX))
    else:
        slope = slope_prior
    inter = float(np.median(y - slope * x))
    mad = float(1.4826 * np.median(np.abs(y - slope * x - inter)))
    return slope, inter, mad


# Scan-to-reference scale (reference mm per scan mm): the ICRP-110 adults are 163-176 cm tall; patients from
# 100 cm (children) to 205 cm give 0.8-1.75.
SLOPE_MIN, SLOPE_MAX = 0.8, 1.75
PROFILE_GRID_MM = 2.0
PROFILE_MARGIN_MM = 20.0  # how far a slice centre may map beyond the soles or the vertex
PROFILE = dict(label_blur_mm=8.0, p_clip=0.03, reg_weight=0.6, reg_sigma_mm=60.0, reg_cap=3.0, slope_sd=0.06,
               corr_mm=25.0, max_slices=240, part_tol_mm=100.0, refine_tol_mm=30.0, unc_floor_mm=5.0)


@dataclass
class ProfileFit:
    slope: float
    offset: float
    start_mm: float  # MAP ends of the scan on the reference (inferior, superior)
    end_mm: float
    start_sd_mm: float  # posterior spread of the ends
    end_sd_mm: float
    cost: float


@functools.lru_cache(maxsize=4)
def reference_profile(phantom: str, blur_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(grid z mm, expected body-part labels (n, 23) along the reference body, blurred along z), arms excluded."""
    lm = reference_landmarks(phantom)
    top = lm["vertex"]
    g = np.arange(0.0, top + PROFILE_GRID_MM / 2, PROFILE_GRID_MM)
    lab = np.zeros((len(g), len(PART_NAMES) - 1))
    for k, names in enumerate(body_parts_per_slice(g, lm)):
        for n in names:
            if n != "arms":
                lab[k, PART_NAMES.index(n)] = 1.0
    lab = ndimage.gaussian_filter1d(lab, blur_mm / PROFILE_GRID_MM, axis=0, mode="nearest")
    return g, lab


def profile_fit(prob: np.ndarray, z_mm: np.ndarray, ref_z_mm: np.ndarray | None, phantom: str,
                **kw) -> ProfileFit:
    """Near-rigid alignment of a scan with the reference body: the scale ``a`` and offset ``b`` of
    ``ref = a * z + b`` that best explain the scan's body-part probabilities by the reference body's
    landmark-defined body parts (binary cross-entropy, all slices, all parts) plus GrayNet's per-slice
    reference-z regression (Huber capped at ``reg_cap`` sigmas, weight ``reg_weight``) and a log-normal prior on ``a``. Exhaustive search over
    ``a`` in [SLOPE_MIN, SLOPE_MAX] and every offset that keeps the scan on the phantom (+- PROFILE_MARGIN_MM).
    The ends' spread comes from the posterior exp(-cost / T), T = slices per ``corr_mm`` (neighbouring slices
    are not independent evidence).

    ``prob`` (n, 24) and ``z_mm`` ascending; ``ref_z_mm`` per slice on ``phantom`` or None.
    """
    c = {**PROFILE, **kw}
    g, lab = reference_profile(phantom, c["label_blur_mm"])
    n = len(z_mm)
    sel = np.unique(np.linspace(0, n - 1, min(n, c["max_slices"])).round().astype(int))
    z = z_mm[sel]
    dz_eff = (z[-1] - z[0]) / max(len(z) - 1, 1) if len(z) > 1 else 5.0
    p = np.clip(prob[sel][:, :23], c["p_clip"], 1 - c["p_clip"])
    # cost[k, r]: cross-entropy of slice k against reference grid position r
    cost = -(np.log(p) @ lab.T + np.log1p(-p) @ (1.0 - lab).T)  # (m, G)
    top = g[-1]
    span = z[-1] - z[0]
    slopes = np.exp(np.arange(np.log(SLOPE_MIN), np.log(SLOPE_MAX) + 1e-9, 0.015))
    if span < 1.0:
        slopes = np.array([1.0])
    rz = None if ref_z_mm is None else np.asarray(ref_z_mm, float)[sel]
    best = None
    results = []
    for a in slopes:
        lo_b = -PROFILE_MARGIN_MM - a * z[0]
        hi_b = top + PROFILE_MARGIN_MM - a * z[-1]
        if hi_b < lo_b:  # the scan is longer than the phantom at this scale
            continue
        b = np.arange(lo_b, hi_b + 1e-6, PROFILE_GRID_MM)
        pos = a * z[:, None] + b[None, :]  # (m, B)
        idx = np.clip(np.round(pos / PROFILE_GRID_MM).astype(int), 0, len(g) - 1)
        tot = np.take_along_axis(cost, idx, axis=1).sum(axis=0)
        if rz is not None and c["reg_weight"] > 0:
            r = np.abs(rz[:, None] - pos) / c["reg_sigma_mm"]
            r = np.minimum(r, c["reg_cap"])  # capped: a wild regression cannot outvote the body parts
            tot = tot + c["reg_weight"] * np.where(r < 1.0, 0.5 * r * r, r - 0.5).sum(axis=0)
        tot = tot + 0.5 * (np.log(a) / c["slope_sd"]) ** 2
        results.append((a, b, tot))
        k = int(np.argmin(tot))
        if best is None or tot[k] < best[2]:
            best = (a, b[k], float(tot[k]))
    if best is None:
        raise MissingAnatomyError("The scan is longer than the reference body at any plausible scale.")
    temp = max(1.0, c["corr_mm"] / max(dz_eff, 1e-3))
    w_sum, s2, e2 = 0.0, 0.0, 0.0
    a0, b0 = best[0], best[1]
    s_map, e_map = a0 * z_mm[0] + b0, a0 * z_mm[-1] + b0
    for a, b, tot in results:
        w = np.exp(-(tot - best[2]) / temp)
        st, en = a * z_mm[0] + b, a * z_mm[-1] + b
        w_sum += w.sum()
        s2 += (w * (st - s_map) ** 2).sum()
        e2 += (w * (en - e_map) ** 2).sum()
    fit = ProfileFit(slope=float(a0), offset=float(b0), start_mm=float(s_map), end_mm=float(e_map),
                     start_sd_mm=float(np.sqrt(s2 / w_sum)), end_sd_mm=float(np.sqrt(e2 / w_sum)), cost=best[2])
    return fit


def select_range(pred, phantom: str | None = None, method: str = "auto") -> ScanRange:
    """Scan range on the ICRP-110 phantom from ``inference.SlicePredictions``.

    ``phantom``: "AM" / "AF" (e.g. from the DICOM header's sex); None: by predicted sex. ``method``:
    "auto" / "profile" (near-rigid fit of all body-part probabilities and the reference-z regression,
    ``profile_fit``), "refine" (the profile fit refined piecewise-linearly through the detected landmarks that
    agree with it), "landmarks" (piecewise linear through detected landmarks only, the first version) or
    "regression" (GrayNet's reference-z head alone, robust line). Mapped positions never leave the phantom
    (0 to the vertex). With the profile fit, the body parts per slice are the network's calls that are possible
    at the slice's mapped position (``consistent_parts``).
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
    net_parts = [[PART_NAMES[j] for j in np.nonzero(row > 0.5)[0]] for row in p_vol]
    sex_p = float(pred.sex_probability)
    sex = "M" if sex_p >= 0.5 else "F"
    ph = (phantom or ("AM" if sex == "M" else "AF")).upper()
    ref = reference_landmarks(ph)
    top = ref["vertex"]
    thick = float(np.median(np.abs(np.diff(za)))) if n > 1 else 5.0
    rz = np.asarray(pred.ref_z_mm, float)[order]  # AM reference z per slice -> target phantom
    if ph != "AM":
        rz = map_z(rz, reference_landmarks("AM"), ref)
    est = detect_landmarks(pa, za)
    lm_scan = {k: float(np.median(v)) for k, v in est.items() if k in ref}
    if method in ("landmarks", "regression"):
        mapped, spread, used, lm_used = _legacy_map(za, rz, lm_scan, ref, method)
        s_sd = e_sd = spread
    else:
        fit = profile_fit(pa, za, rz, ph)
        mapped = fit.slope * za + fit.offset
        used = "profile"
        s_sd, e_sd = fit.start_sd_mm, fit.end_sd_mm
        # landmarks detected in the scan that agree with the fit (reported; "refine" maps through them)
        tol = max(PROFILE["refine_tol_mm"], 2.0 * max(s_sd, e_sd))
        lm_used = {k: v for k, v in lm_scan.items() if abs(fit.slope * v + fit.offset - ref[k]) < tol}
        if method == "refine":
            s, d = matched_pairs(lm_used, ref, min_gap_mm=2.0)
            if len(s) >= 1:
                mapped = _piecewise(za, s, d, fit.slope)
                used = f"profile+{len(s)} landmarks"
                # landmarks pin the map near them; away from the nearest one the profile's spread remains
                gap_lo, gap_hi = abs(za[0] - s[0]), abs(za[-1] - s[-1])
                s_sd = min(s_sd, np.hypot(10.0, 0.1 * gap_lo) if len(s) >= 2 or gap_lo < 50 else s_sd)
                e_sd = min(e_sd, np.hypot(10.0, 0.1 * gap_hi) if len(s) >= 2 or gap_hi < 50 else e_sd)
    mapped = np.clip(mapped, 0.0, top)
    unc_mm = float(np.sqrt(max(s_sd, e_sd) ** 2 + (thick / 2) ** 2 + PROFILE["unc_floor_mm"] ** 2))
    ref_vol = np.empty(n)
    ref_vol[order] = mapped
    if used.startswith("profile"):
        parts = consistent_parts(net_parts, ref_vol, ref, tol_mm=PROFILE["part_tol_mm"] + 2.0 * unc_mm)
    else:
        parts = net_parts
    return ScanRange(slice_z_mm=z, part_probabilities=p_vol, body_parts_per_slice=parts, phantom=ph, ref_z_mm=ref_vol,
                     start_cm=float(mapped.min()) / 10.0, end_cm=float(mapped.max()) / 10.0,
                     uncertainty_cm=max(unc_mm / 10.0, 0.3), method=used,
                     landmarks_scan_mm=dict(lm_used), sex=sex, sex_probability=sex_p if sex == "M" else 1.0 - sex_p,
                     age_years=float(pred.age_years), weight_kg=float(pred.weight_kg))


def consistent_parts(net_parts: list[list[str]], ref_z_mm: np.ndarray, ref: dict[str, float],
                     tol_mm: float) -> list[list[str]]:
    """Body parts per slice: the network's calls that are anatomically possible where the slice maps on the
    reference body (the part's reference interval within ``tol_mm``: body proportions differ), so that a chest
    slice is never called pelvis; a slice left without any landmark-defined part gets the reference body's
    parts at its mapped position. Arms: the network's call."""
    ivs = {bp.name: body_part_interval_mm(bp, ref) for bp in BODY_PARTS}
    fallback = body_parts_per_slice(ref_z_mm, ref)
    out = []
    for names, rz, fb in zip(net_parts, ref_z_mm, fallback, strict=True):
        keep = [n for n in names if ivs[n] is None or ivs[n][0] - tol_mm <= rz <= ivs[n][1] + tol_mm]
        if not any(ivs[n] is not None for n in keep):
            keep = fb + (["arms"] if "arms" in names else [])
        out.append([n for n in PART_NAMES if n in keep])
    return out


def _piecewise(za: np.ndarray, s: np.ndarray, d: np.ndarray, slope: float) -> np.ndarray:
    """Piecewise linear through matched landmarks (s -> d); beyond the outer ones the profile fit's slope."""
    if len(s) == 1:
        return d[0] + (za - s[0]) * slope
    out = np.interp(za, s, d)
    lo, hi = za < s[0], za > s[-1]
    out[lo] = d[0] + (za[lo] - s[0]) * slope
    out[hi] = d[-1] + (za[hi] - s[-1]) * slope
    return out


def _legacy_map(za, rz, lm_scan, ref, method):
    """The first session's mapping (for comparison): landmarks or the per-slice regression line."""
    slope_r, inter_r, mad_r = _robust_line(za, rz)
    tol = max(100.0, 3.0 * mad_r)
    kept = {k: v for k, v in lm_scan.items() if abs(ref[k] - (slope_r * v + inter_r)) < tol}
    lm = kept if len(kept) >= 2 else lm_scan
    s, d = matched_pairs(lm, ref, min_gap_mm=2.0)
    if method == "landmarks" and len(s) >= 1:
        mapped = map_z(za, {f"l{i}": v for i, v in enumerate(s)}, {f"l{i}": v for i, v in enumerate(d)},
                       default_scale=slope_r)
        return mapped, 15.0, "landmarks", lm
    return slope_r * za + inter_r, max(mad_r, 10.0), "regression", {}
