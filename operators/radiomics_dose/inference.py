"""Organ doses of one CT scan from the radiomics networks of the ``organ_dose`` bundle (models/organ_dose).

For each body region whose organs are in the label map (head: brain; chest: lungs; abdomen: liver), the
region's organs' and the body's radiomics features (features.py), the protocol (kVp, Dw) and the per-organ
tube-current factors go through that region's TorchScript network, which returns dose per CTDIvol; times the
scan's CTDIvol (converted to the region's CTDI phantom when the report used the other one) gives mGy.
Each input is held to its range over the training samples (kept in the bundle) and inputs outside it are
reported: the network is not asked to extrapolate. A network that reads the tube angle at each organ (the head's:
regions.HELIX_INPUTS) is asked at HELIX_ANGLES angles, since a series does not record the start angle, and gives
their mean. The uncertainty is the bundle's relative test error per organ (median RRMSE over the evaluation
splits, angle known) combined with the spread over the angles, times the dose. Pure domain code (no holoscan).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from operators.common.dosimetry import ssde_mgy, water_equivalent_diameter_mm
from operators.common.errors import BadInputError, MissingAnatomyError, ModelError
from operators.common.labels import organ_mask
from operators.common.morphology import patient_outline

from . import features as F
from .regions import (
    GEOMETRY_INPUTS,
    HELIX_FEED_MM,
    HELIX_INPUTS,
    ORGAN_INPUTS,
    POSITION_INPUTS,
    PROTOCOL_INPUTS,
    REGIONS,
    TCM_INPUTS,
    organ_geometry,
    organ_helix_angle,
    organ_position,
    organ_slice_mass,
    organ_slice_positions,
    organ_tcm_factors,
)

REGION_ANCHOR = {"head": "brain", "chest": "lungs", "abdomen": "liver"}
# typical adult anchor volumes (cm3, ICRP-89-like; inflated lungs): a region applies when at least
# MIN_ANCHOR_FRACTION of its anchor is in the scan; regions are ordered by that fraction, so an organ two regions
# share (spinal cord) comes from the better-covered one (an abdomen scan's lung bases do not make it a chest scan)
ANCHOR_TYPICAL_CM3 = {"brain": 1300.0, "lungs": 3500.0, "liver": 1600.0}
MIN_ANCHOR_FRACTION = 0.3
# A series does not record the tube's start angle: a network that reads the helix angle (regions.HELIX_INPUTS) is
# asked at this many angles, evenly spaced, and the mean is the dose; the spread goes into the uncertainty.
HELIX_ANGLES = 8


@dataclass
class OrganDoseResult:
    organ_doses_mgy: dict = field(default_factory=dict)  # organ -> {"dose", "method", "uncertainty", "region"}
    ctdivol_mgy: float | None = None
    ssde_mgy: float | None = None
    dose_source: str = "header"
    regions: list = field(default_factory=list)
    water_equivalent_diameter_cm: float | None = None
    kvp: float | None = None
    feature_status: dict = field(default_factory=dict)
    timing_s: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {"organ_doses_mgy": self.organ_doses_mgy, "ctdivol_mgy": self.ctdivol_mgy, "ssde_mgy": self.ssde_mgy,
                "dose_source": self.dose_source, "regions": self.regions, "kvp": self.kvp,
                "water_equivalent_diameter_cm": self.water_equivalent_diameter_cm,
                "feature_status": self.feature_status, "timing_s": self.timing_s, "notes": self.notes}


class OrganDoseModel:
    """The three region networks of a bundle folder (configs/metadata.json, models/scalers.json,
    models/model_<region>.ts)."""

    def __init__(self, bundle_dir: str | Path):
        import torch

        self.bundle_dir = Path(bundle_dir)
        try:
            self.metadata = json.loads((self.bundle_dir / "configs" / "metadata.json").read_text())
            self.scalers = json.loads((self.bundle_dir / "models" / "scalers.json").read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"The organ-dose bundle in {self.bundle_dir} is incomplete ({e}).") from e
        self.models = {}
        for region, s in self.scalers.items():
            path = self.bundle_dir / s["model"]
            try:
                self.models[region] = torch.jit.load(str(path), map_location="cpu").eval()
            except Exception as e:  # noqa: BLE001
                raise ModelError(f"The organ-dose model {path} could not be loaded: {e}") from e
        for region, s in self.scalers.items():
            unknown = [n for n in s["inputs"] if n not in PROTOCOL_INPUTS and ":" not in n]
            if unknown:
                raise ModelError(f"The organ-dose bundle in {self.bundle_dir} ({region} network) has inputs this "
                                 f"code does not compute: {unknown[:3]} (expected {list(PROTOCOL_INPUTS)} or "
                                 "'<roi>:<feature>'); a bundle before 0.6.0 read 'kvp': retrain it or use its code")
        self.uncertainty = self.metadata.get("corpusct", {}).get("relative_uncertainty", {})
        self.calibration = self.metadata.get("corpusct", {}).get("ctdiw_head16_over_body32", {})

    @property
    def name_version(self) -> tuple[str, str]:
        return str(self.metadata.get("name", "organ_dose")), str(self.metadata.get("version", "0"))

    def wanted_features(self, region: str) -> dict[str, set[str]]:
        """{roi: feature names} that ``region``'s network reads (its f-regression selection): all that needs
        computing."""
        out: dict[str, set[str]] = {}
        for name in self.scalers[region]["inputs"]:
            roi, _, feat = name.partition(":")
            if feat.startswith("original_"):
                out.setdefault(roi, set()).add(feat)
        return out

    def predict_region(self, region: str, feats: dict, kvp: float, dw_cm: float, tcm: np.ndarray,
                       organ_inputs: dict | None = None) -> np.ndarray:
        """Dose / CTDIvol (region's phantom) per organ of ``region``. ``organ_inputs``: {"organ_dw_cm:liver": v,
        "organ_margin_cm:liver": v, ...} (regions.ORGAN_INPUTS)."""
        return self.predict_inputs(region, self.input_vector(region, feats, kvp, dw_cm, organ_inputs), tcm)

    def predict_inputs(self, region: str, x, tcm: np.ndarray) -> np.ndarray:
        """Dose / CTDIvol per organ of ``region`` from its raw inputs ``x`` (``input_vector``), each held to its
        training range (``clipped``)."""
        import torch

        with torch.no_grad():
            out = self.models[region](torch.tensor([self.clipped(region, x)], dtype=torch.float32),
                                      torch.tensor(np.asarray([tcm]), dtype=torch.float32))
        return out.numpy()[0].astype(float)

    def clipped(self, region: str, x) -> list[float]:
        """``x`` with each input held to its training range (bundles that keep the ranges): outside it the network
        would extrapolate (e.g. its linear shortcut on an organ margin that was 0 in every training scan); at the
        edge it answers as for the nearest training case. NaN stays NaN."""
        s = self.scalers[region]
        if "x_train_min" not in s:
            return list(x)
        return clip_to_range(np.asarray(x, float)[None], s["x_train_min"], s["x_train_max"])[0].tolist()

    def outside_training_range(self, region: str, x) -> dict[str, tuple[float, float, float]]:
        """{input name: (value, training min, training max)} for the inputs of ``x`` (``input_vector``) outside
        the range of the region's training samples: where the network extrapolates (empty for a bundle without
        the ranges)."""
        s = self.scalers[region]
        if "x_train_min" not in s:
            return {}
        out = {}
        for name, v, lo, hi in zip(s["inputs"], x, s["x_train_min"], s["x_train_max"], strict=True):
            if name.split(":", 1)[0] in HELIX_INPUTS:
                continue  # cos / sin of an angle the operator sweeps: the cohort's 1518 angles leave hairline gaps
            if np.isfinite(v) and np.isfinite(lo) and not lo <= v <= hi:
                out[name] = (float(v), float(lo), float(hi))
        return out

    def input_vector(self, region: str, feats: dict, kvp: float, dw_cm: float,
                     organ_inputs: dict | None = None) -> list[float]:
        """The region network's raw inputs in its order (NaN where a feature is missing)."""
        s = self.scalers[region]
        x = []
        organ_inputs = organ_inputs or {}
        for name in s["inputs"]:
            if name == "inverse_kvp":
                x.append(1.0 / kvp)
            elif name == "dw_cm":
                x.append(dw_cm)
            elif name.split(":", 1)[0] in ORGAN_INPUTS:
                x.append(organ_inputs.get(name, np.nan))
            else:
                roi, feat = name.split(":", 1)
                f = feats.get(roi)
                x.append(f.values.get(feat, np.nan) if f is not None else np.nan)
        return x


def clip_to_range(x: np.ndarray, lo, hi) -> np.ndarray:
    """Rows of ``x`` (samples x inputs) with each input held to [lo, hi] where both are finite; NaN stays NaN."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    v = np.array(x, float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    v[:, ok] = np.clip(v[:, ok], lo[ok], hi[ok])  # np.clip keeps NaN
    return v


def _excess(v: float, lo: float, hi: float) -> float:
    """How far ``v`` lies outside [lo, hi], in units of the range's width."""
    return max(lo - v, v - hi, 0.0) / max(hi - lo, 1e-12)


ANCHOR_PIECE_FRACTION = 0.05


def _organ_body(mask: np.ndarray) -> np.ndarray:
    """``mask`` without the connected pieces (26-connected) smaller than ANCHOR_PIECE_FRACTION of it."""
    pieces, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return mask
    size = np.bincount(pieces.ravel())
    keep = size >= ANCHOR_PIECE_FRACTION * mask.sum()
    keep[0] = False
    return keep[pieces]


def regions_in_scan(label_map: np.ndarray, spacing_zyx_mm, min_fraction: float = MIN_ANCHOR_FRACTION,
                    notes: list | None = None) -> list[str]:
    """Regions whose anchor organ is at least ``min_fraction`` of its typical adult volume in the scan and lies
    wholly inside it (not on the first or last slice), best covered first. Every training scan of a region holds
    its whole anchor organ (head: brain, chest: lungs, abdomen: liver); a scan that cuts it (the lung bases of an
    abdomen scan) is outside what the region's network has seen, so that region is left out, with a line in
    ``notes`` saying why. The anchor is the mask's body: connected pieces of at least ANCHOR_PIECE_FRACTION of
    it (both lungs), not a few stray voxels far from the organ that a segmentation left on an end slice."""
    vox_cm3 = float(np.prod(spacing_zyx_mm)) / 1000.0
    out = {}
    for r, a in REGION_ANCHOR.items():
        m = _organ_body(organ_mask(label_map, a))
        frac = m.sum() * vox_cm3 / ANCHOR_TYPICAL_CM3[a]
        if frac < min_fraction:
            continue
        per_slice = m.any(axis=(1, 2))
        if per_slice[0] or per_slice[-1]:
            if notes is not None:
                notes.append(f"{r}: no organ doses: the scan cuts the {a.replace('_', ' ')} (the {r} network is "
                             f"trained on scans holding the whole organ)")
            continue
        out[r] = frac
    return sorted(out, key=lambda r: -out[r])


REGION_MARGIN_MM = 100.0


def region_slices(label_map: np.ndarray, organs, slice_spacing_mm: float,
                  margin_mm: float = REGION_MARGIN_MM) -> slice:
    """The slices a region's network sees: the z extent of its organs (the spinal cord, which runs through every
    region, excluded) plus ``margin_mm`` each side, within the scan. The networks were trained on region scans
    (head, chest, abdomen); a longer scan (e.g. whole body) is cut to the region so that its features, water-
    equivalent diameter and scan-end margins are those of a region scan. Scatter from the rest of a longer scan
    is therefore not modelled (organ doses of long scans read low by that share)."""
    own = [o for o in organs if o != "spinal_cord"] or list(organs)
    present = np.zeros(label_map.shape[0], bool)
    for o in own:
        present |= organ_mask(label_map, o).any(axis=(1, 2))
    k = np.nonzero(present)[0]
    if k.size == 0:
        return slice(0, label_map.shape[0])
    m = int(round(margin_mm / max(abs(slice_spacing_mm), 1e-6)))
    return slice(max(int(k[0]) - m, 0), min(int(k[-1]) + m + 1, label_map.shape[0]))


def predict_organ_doses(model: OrganDoseModel, hu: np.ndarray, spacing_zyx_mm, label_map: np.ndarray, dose_params,
                        regions: list[str] | None = None, slice_z_mm=None,
                        workers: int | None = None, affine_lps: np.ndarray | None = None) -> OrganDoseResult:
    """Organ doses (mGy) of the scan ``hu`` (z, y, x HU) with its ALL_ORGANS ``label_map`` and
    ``dose_params`` (operators.common.dose_parameters.DoseParameters); ``slice_z_mm`` (default: index x slice
    spacing) for the organs' margins to the scan ends; ``affine_lps`` (default: axial, rows anterior to
    posterior, columns right to left, at ``spacing_zyx_mm``) for the organs' positions relative to the
    isocentre, taken as the centre of the image (a reconstruction centred on the rotation axis, as the Monte
    Carlo assumes). The ROIs' radiomics features of all regions are computed in ``workers`` processes (default
    ``features.default_workers()``)."""
    t0 = time.perf_counter()
    if hu.shape != label_map.shape:
        raise BadInputError(f"organ label map shape {label_map.shape} differs from the CT {hu.shape}")
    if dose_params.kvp is None or dose_params.ctdivol_mgy is None:
        raise BadInputError("organ doses need the kVp and CTDIvol of the scan (neither the dose report nor the "
                             "image headers give them)")
    if affine_lps is None:
        affine_lps = np.diag([float(spacing_zyx_mm[2]), float(spacing_zyx_mm[1]), float(spacing_zyx_mm[0]), 1.0])
    notes: list[str] = []
    regions = regions if regions is not None else regions_in_scan(label_map, spacing_zyx_mm, notes=notes)
    if not regions:
        raise MissingAnatomyError("no whole head (brain), chest (lungs) or abdomen (liver) in the scan: no "
                                  "organ-dose model applies" + (f" ({'; '.join(notes)})" if notes else ""))
    body = patient_outline(hu)
    dw_slices = water_equivalent_diameter_mm(hu, spacing_zyx_mm, body_mask=body) / 10.0
    dw_cm = float(np.mean(dw_slices[dw_slices > 1.0])) if np.any(dw_slices > 1.0) else 0.0
    slice_z_mm = (np.arange(hu.shape[0]) * float(spacing_zyx_mm[0]) if slice_z_mm is None
                  else np.asarray(slice_z_mm, float))
    ma = dose_params.tube_current_ma
    if ma is None or len(ma) != hu.shape[0] or not np.all(np.isfinite(ma)) or np.asarray(ma).mean() <= 0:
        ma = np.ones(hu.shape[0])
    res = OrganDoseResult(ctdivol_mgy=round(float(dose_params.ctdivol_mgy), 4), dose_source=dose_params.dose_source,
                          regions=list(regions), water_equivalent_diameter_cm=round(dw_cm, 2),
                          kvp=float(dose_params.kvp), notes=notes)
    phantom = dose_params.ctdi_phantom_cm or 32
    centre_dw = float(dw_slices[len(dw_slices) // 2])
    res.ssde_mgy = round(ssde_mgy(res.ctdivol_mgy, centre_dw, phantom), 3) if centre_dw > 1.0 else None
    plans, jobs = {}, {}
    for region in regions:
        if region not in model.scalers:
            res.notes.append(f"{region}: no network for this region in the bundle")
            continue
        organs = list(model.scalers[region]["organs"])  # the bundle's outputs, in its order
        zs = region_slices(label_map, organs, float(spacing_zyx_mm[0]))
        plans[region] = (organs, zs)
        for roi, job in F.region_jobs(hu[zs], spacing_zyx_mm, label_map[zs], organs, include_body=True,
                                      wanted=model.wanted_features(region)).items():
            jobs[(region, roi)] = job
    t = time.perf_counter()
    workers = F.default_workers() if workers is None else workers
    all_feats = F.run_jobs(jobs, workers)
    res.timing_s["features"] = round(time.perf_counter() - t, 3)
    res.timing_s["feature_workers"] = workers
    for region, (organs, zs) in plans.items():
        reg = REGIONS[region]
        lab_r = label_map[zs]
        feats = {roi: f for (r, roi), f in all_feats.items() if r == region}
        res.timing_s[f"features_{region}_cpu"] = round(sum(f.seconds for f in feats.values()), 3)
        res.timing_s[f"features_{region}_cpu_by_roi"] = {k: round(f.seconds, 2) for k, f in feats.items()}
        res.feature_status[region] = {k: v.status for k, v in feats.items()}
        mass = organ_slice_mass(lab_r, organs)
        tcm = organ_tcm_factors(mass, np.asarray(ma, float)[zs])
        per_organ = dict(zip(GEOMETRY_INPUTS, organ_geometry(mass, dw_slices[zs] * 10.0, slice_z_mm[zs]),
                             strict=True))
        reads = {n.split(":", 1)[0] for n in model.scalers[region]["inputs"]}  # the input kinds the network reads
        if reads & set(POSITION_INPUTS):
            positions = organ_slice_positions(lab_r, organs, affine_lps)
            per_organ.update(zip(POSITION_INPUTS, organ_position(mass, positions), strict=True))
        per_organ.update(zip(TCM_INPUTS, (tcm,), strict=True))
        dw_r = dw_slices[zs]
        dw_region_cm = float(np.mean(dw_r[dw_r > 1.0])) if np.any(dw_r > 1.0) else dw_cm
        reads_helix = bool(reads & set(HELIX_INPUTS))
        helix = organ_helix_angle(mass, slice_z_mm[zs], float(slice_z_mm[zs][0]), HELIX_FEED_MM)
        t = time.perf_counter()
        ratios = []
        for shift in (2.0 * np.pi * np.arange(HELIX_ANGLES) / HELIX_ANGLES if reads_helix else (0.0,)):
            per_organ.update(zip(HELIX_INPUTS, (np.cos(helix + shift), np.sin(helix + shift)), strict=True))
            oin = {f"{k}:{o}": v for k, vals in per_organ.items() for o, v in zip(organs, vals, strict=True)}
            x = model.input_vector(region, feats, res.kvp, dw_region_cm, oin)
            ratios.append(model.predict_inputs(region, x, tcm))
        ratio = np.mean(ratios, axis=0)
        helix_rel = np.std(ratios, axis=0) / np.maximum(np.abs(ratio), 1e-300)  # 0 without the helix inputs
        if reads_helix:
            res.notes.append(f"{region}: the tube start angle is not in the series; doses are the mean over "
                             f"{HELIX_ANGLES} angles, and their spread (SD, up to {100 * helix_rel.max():.1f} %: "
                             f"{organs[int(np.argmax(helix_rel))].replace('_', ' ')}) is in the uncertainty")
        res.timing_s[f"network_{region}"] = round(time.perf_counter() - t, 4)
        outside = model.outside_training_range(region, x)
        if outside:
            worst = sorted(outside.items(), key=lambda kv: -_excess(*kv[1]))[:3]
            res.notes.append(f"{region}: {len(outside)} of {len(model.scalers[region]['inputs'])} "
                             "network inputs lie outside the training cohort's range, so these doses are "
                             "extrapolated (largest: " + "; ".join(f"{k} = {v:.4g}, trained {lo:.4g}..{hi:.4g}"
                                                                   for k, (v, lo, hi) in worst) + ")")
        # The network's dose is per CTDIvol of a scan of the region alone. The scanner's CTDIvol follows the
        # mean tube current of the whole scan, so the region's own CTDIvol is that times the region's mean mA
        # over the scan's (a whole-body scan with modulation: the abdomen runs at several times the legs' mA).
        ma_factor = float(np.mean(np.asarray(ma, float)[zs]) / np.mean(ma))
        ctdi = res.ctdivol_mgy * ma_factor
        if abs(ma_factor - 1.0) > 0.01:
            res.notes.append(f"{region}: CTDIvol of the region's slices = scan CTDIvol x {ma_factor:.2f} (their mean "
                             "tube current over the scan's)")
        if phantom != reg.ctdi_phantom_cm:
            k = model.calibration.get(str(int(round(res.kvp / 20.0) * 20)), 2.0)
            ctdi = ctdi * (k if reg.ctdi_phantom_cm == 16 else 1.0 / k)
            res.notes.append(f"{region}: CTDIvol converted from the {phantom} cm to the {reg.ctdi_phantom_cm} cm "
                             f"phantom (x {k if reg.ctdi_phantom_cm == 16 else 1 / k:.2f}, simulated CTDIw ratio)")
        for o, r_o, h_o in zip(organs, ratio, helix_rel, strict=True):
            if res.feature_status[region].get(o) != "ok" or o in res.organ_doses_mgy:
                continue  # organ absent / too small in this scan, or already given by an earlier region
            dose = float(r_o * ctdi)
            rel = model.uncertainty.get(region, {}).get(o)
            rel = None if rel is None else float(np.hypot(float(rel), h_o))  # test error (known angle), angle spread
            res.organ_doses_mgy[o] = {"dose": round(dose, 3), "method": "network",
                                      "uncertainty": None if rel is None else round(dose * rel, 3),
                                      "region": region, "inputs_in_training_range": not outside}
    res.timing_s["total"] = round(time.perf_counter() - t0, 3)
    return res
