"""Samples of the organ-dose networks from the cohort cases (models/organ_dose/cohort.py): each case's Monte
Carlo segments are combined into scans (operators/radiomics_dose/mc_segments.scan_dose_per_ctdivol) for each
simulated kVp and several tube-current-modulation strengths, so one Monte Carlo run gives several protocols.

Sample = (radiomics features of the region's organs and body, kVp, per-organ TCM factor, Dw) ->
organ dose per CTDIvol (mGy/mGy), with the Monte Carlo 1-sigma, the SSDE/CTDIvol of the scan (AAPM 204/220
baseline) and the patient id (splits are by patient, never by sample)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from operators.common.dosimetry import ssde_conversion_factor
from operators.radiomics_dose.mc_segments import SegmentDoses, scan_dose_per_ctdivol, segment_weights_from_ma
from operators.radiomics_dose.regions import (
    REGIONS,
    organ_geometry,
    organ_helix_angle,
    organ_position,
    organ_tcm_factors,
)

TCM_STRENGTHS_PER_CM = (0.0, 0.05, 0.10)  # 0: fixed mA; 0.05-0.10 /cm: CARE Dose / SmartmA-like modulation


def tcm_profile(dw_mm: np.ndarray, strength_per_cm: float, reference_dw_mm: float) -> np.ndarray:
    """Longitudinal TCM (models.phantoms.dicom_export.tube_current_modulation): mA ~ exp(k (Dw - Dref))."""
    from models.phantoms.dicom_export import tube_current_modulation

    return tube_current_modulation(dw_mm, reference_dw_mm=reference_dw_mm, strength_per_cm=strength_per_cm,
                                   smooth_slices=1.0)


@dataclass
class RegionData:
    region: str
    organs: list
    feature_names: list  # "<roi>:<feature>"
    X_feat: np.ndarray  # (n, n_features) radiomics
    kvp: np.ndarray  # (n,)
    tcm_factor: np.ndarray  # (n, n_organs)
    dw_cm: np.ndarray  # (n,) mean water-equivalent diameter over the scan
    organ_dw_cm: np.ndarray  # (n, n_organs) organ-weighted Dw of the organ's slices
    organ_margin_cm: np.ndarray  # (n, n_organs) distance of the organ to the nearer scan end (0: cut)
    organ_ap_cm: np.ndarray  # (n, n_organs) mean AP offset of the organ from the isocentre (+ posterior)
    organ_radius_cm: np.ndarray  # (n, n_organs) mean distance of the organ's voxels from the isocentre
    helix_cos: np.ndarray  # (n, n_organs) cos / sin of the tube angle as the beam centre passes the organ
    helix_sin: np.ndarray
    y: np.ndarray  # (n, n_organs) dose / CTDIvol, NaN where the organ is absent
    sigma: np.ndarray  # (n, n_organs) Monte Carlo 1-sigma of y
    ssde_ratio: np.ndarray  # (n,) SSDE / CTDIvol (Dw at the centre of the range)
    patient: np.ndarray  # (n,) patient index
    tcm_strength: np.ndarray
    case: list = field(default_factory=list)


def load_calibration() -> dict:
    """CTDIw per source photon of the cohort's set-ups, keyed "<kVp>_<bowtie>" (head: 16 cm, body: 32 cm
    phantom; 4 cm collimation, 6 mm Al), from the committed table of operators/mc_dose/calibration."""
    from operators.mc_dose.calibration import ctdiw_per_photon

    return {f"{kvp}_{bowtie}": {"kvp": float(kvp), "bowtie": bowtie,
                                **ctdiw_per_photon(float(kvp), bowtie, 16.0 if bowtie == "head" else 32.0)}
            for kvp in (80, 100, 120, 140) for bowtie in ("head", "body")}


def case_samples(npz_path: Path, calibration: dict, strengths=TCM_STRENGTHS_PER_CM) -> list[dict]:
    d = np.load(npz_path, allow_pickle=False)
    if "organ_slice_position_mm" not in d.files:
        raise ValueError(f"{npz_path}: no organ_slice_position_mm (a cohort case written before bundle 0.3.0); "
                         f"make the cohort again: python -m models.organ_dose.cohort")
    region = str(d["region"])
    reg = REGIONS[region]
    info = json.loads(str(d["info"]))
    organs = [str(o) for o in d["organs"]]
    rois = [str(r) for r in d["rois"]]
    fnames = [str(f) for f in d["feature_names"]]
    slice_z = d["slice_z_mm"]
    out = []
    for v, ((a, b), (s0, s1)) in enumerate(zip(d["variants"], d["variant_slices"], strict=True)):
        z = slice_z[s0:s1]
        dw = d["dw_mm"][s0:s1]
        vox = d["organ_slice_voxels"][s0:s1]
        feats = d["features"][v].reshape(-1)
        centre = dw[np.argsort(z)][len(z) // 2] / 10.0
        odw, margin = organ_geometry(vox, dw, z)
        ap, radius = organ_position(vox, d["organ_slice_position_mm"][s0:s1])
        # the Monte Carlo's helix (mc_segments.segment_doses): angle 0 at the first segment's start, one turn
        # per segment (a collimation width at pitch 1), whichever segments this range variant keeps
        helix = organ_helix_angle(vox, z, d["seg_z0_mm"][0], d["seg_z1_mm"][0] - d["seg_z0_mm"][0])
        ssde = ssde_conversion_factor(centre, reg.ctdi_phantom_cm)
        for k, kvp in enumerate(d["kvps"]):
            seg = SegmentDoses(float(kvp), reg.bowtie, organs, d["seg_z0_mm"], d["seg_z1_mm"], d["seg_length_frac"],
                               d["seg_dose"][k], d["seg_sigma"][k])
            ctdiw = calibration[f"{int(kvp)}_{reg.bowtie}"]["ctdiw_per_photon_mgy"]
            for s in strengths:
                ma = tcm_profile(dw, s, reg.reference_dw_mm)
                w = segment_weights_from_ma(d["seg_z0_mm"][a:b], d["seg_z1_mm"][a:b], z, ma)
                y, sig = scan_dose_per_ctdivol(seg, ctdiw, slice(int(a), int(b)), w)
                out.append({"region": region, "organs": organs, "features": feats,
                            "feature_names": [f"{r}:{f}" for r in rois for f in fnames], "kvp": float(kvp),
                            "tcm_factor": organ_tcm_factors(vox, ma), "dw_cm": float(dw[dw > 10].mean() / 10.0),
                            "organ_dw_cm": odw, "organ_margin_cm": margin, "organ_ap_cm": ap,
                            "organ_radius_cm": radius, "helix_cos": np.cos(helix), "helix_sin": np.sin(helix),
                            "y": y, "sigma": sig, "ssde_ratio": ssde, "patient": int(info["patient"]["index"]),
                            "tcm_strength": s, "case": npz_path.name, "kind": info["patient"]["kind"]})
    return out


def load_region(cohort_dir: str | Path, region: str, calibration: dict, strengths=TCM_STRENGTHS_PER_CM) -> RegionData:
    files = sorted(Path(cohort_dir).glob(f"case_*_{region}.npz"))
    if not files:
        raise FileNotFoundError(f"no {region} cases in {cohort_dir}")
    rows = [r for f in files for r in case_samples(f, calibration, strengths)]
    reg = REGIONS[region]
    return RegionData(region, list(reg.organs), rows[0]["feature_names"],
                      np.stack([r["features"] for r in rows]), np.array([r["kvp"] for r in rows]),
                      np.stack([r["tcm_factor"] for r in rows]), np.array([r["dw_cm"] for r in rows]),
                      np.stack([r["organ_dw_cm"] for r in rows]), np.stack([r["organ_margin_cm"] for r in rows]),
                      np.stack([r["organ_ap_cm"] for r in rows]), np.stack([r["organ_radius_cm"] for r in rows]),
                      np.stack([r["helix_cos"] for r in rows]), np.stack([r["helix_sin"] for r in rows]),
                      np.stack([r["y"] for r in rows]), np.stack([r["sigma"] for r in rows]),
                      np.array([r["ssde_ratio"] for r in rows]), np.array([r["patient"] for r in rows]),
                      np.array([r["tcm_strength"] for r in rows]), [r["case"] for r in rows])
