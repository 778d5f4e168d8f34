"""Absolute calibration: simulated CTDI100 in the 16/32 cm PMMA phantoms -> photons per mAs.

The phantom is a PMMA cylinder (15 cm long) in air with scoring rods (1 cm diameter, 10 cm long, PMMA:
the chamber's hole is modelled filled) at the centre and at 1 cm depth at 0/90/180/270 degrees (the
TG-195 case 4.2 geometry, validated there). The rod dose is converted to the air kerma a pencil chamber
would read by the spectrum-averaged ratio of mass energy-absorption coefficients air/PMMA (primary
spectrum; beam hardening in the phantom changes this ratio by ~1-2 %, a stated limitation).
CTDI100 = mean rod air kerma x 10 cm / nominal collimation; CTDIw = C/3 + 2 P/3.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import physics as ph
from .engine import VoxelGeometry, run_cpu
from .sources import ct_source

KEV_PER_G_TO_MGY = 1.602176634e-13 * 1e3  # 1 keV/g = 1.602e-13 Gy


def ctdi_phantom(diameter_cm: float = 32.0, pixel_cm: float = 0.1, length_cm: float = 15.0):
    r = diameter_cm / 2
    half = r + 0.5
    n = int(round(2 * half / pixel_cm))
    c = -half + pixel_cm * (np.arange(n) + 0.5)
    xx, yy = np.meshgrid(c, c, indexing="xy")
    inside = xx**2 + yy**2 <= r**2
    z_edges = np.arange(-30.0, 30.0 + 0.5, 1.0)
    zc = 0.5 * (z_edges[1:] + z_edges[:-1])
    inz = np.abs(zc) < length_cm / 2
    mat = np.zeros((zc.size, n, n), np.uint8)
    mat[inz] = inside.astype(np.uint8)
    dens = np.where(mat == 1, ph.PMMA.density, ph.AIR.density)
    tmap = np.full(mat.shape, -1, np.int32)
    rods = [(0.0, 0.0), (0.0, -(r - 1)), (r - 1, 0.0), (0.0, r - 1), (-(r - 1), 0.0)]
    masses = []
    for b, (cx, cy) in enumerate(rods):
        m2 = (xx - cx) ** 2 + (yy - cy) ** 2 <= 0.25
        for k in np.nonzero(np.abs(zc) < 5.0)[0]:
            tmap[k][m2] = b
        masses.append(m2.sum() * pixel_cm**2 * 10.0 * ph.PMMA.density)
    geom = VoxelGeometry(mat, dens, [ph.AIR, ph.PMMA], tmap, 5, origin=(z_edges[0], -half, -half),
                         spacing=(1.0, pixel_cm, pixel_cm), background=ph.AIR)
    return geom, np.array(masses)


def air_to_pmma_kerma_ratio(spectrum) -> float:
    lo, wd, wt = spectrum
    e = lo + 0.5 * wd
    grid = np.arange(max(ph.ECUT_KEV, e.min()), e.max() + 5.0, 5.0)
    air = np.array([ph.mu_en_mass(ph.AIR, x, 800) for x in grid])
    pm = np.array([ph.mu_en_mass(ph.PMMA, x, 800) for x in grid])
    w = wt * e
    return float(np.sum(w * np.interp(e, grid, air)) / np.sum(w * np.interp(e, grid, pm)))


def simulate_ctdi(spectrum, diameter_cm: float = 32.0, collimation_cm: float = 4.0, bowtie: str | None = "body",
                  sid_cm: float = 60.0, fan_angle_deg: float = 50.0, views: int = 36, n_histories: int = 2_000_000,
                  seed: int = 17) -> dict:
    """One axial rotation; returns CTDI100 centre / periphery and CTDIw in mGy per source photon, with
    relative 1-sigma uncertainties."""
    geom, masses = ctdi_phantom(diameter_cm)
    src = ct_source(spectrum, sid_cm=sid_cm, fan_angle_deg=fan_angle_deg, collimation_cm=collimation_cm,
                    z_start_cm=-collimation_cm / 2, z_end_cm=collimation_cm / 2, pitch=0.0,
                    views_per_rotation=views, bowtie=bowtie)
    r = run_cpu(geom, src, n_histories, n_batches=20, seed=seed)
    k = air_to_pmma_kerma_ratio(spectrum)
    dose = r.mean_kev / masses * KEV_PER_G_TO_MGY * k  # mean air kerma over 10 cm, mGy per photon
    sd = r.std_kev / masses * KEV_PER_G_TO_MGY * k
    ctdi = dose * 10.0 / collimation_cm
    sctdi = sd * 10.0 / collimation_cm
    c, p = ctdi[0], ctdi[1:].mean()
    sp = math.sqrt(np.sum(sctdi[1:] ** 2)) / 4
    w = c / 3 + 2 * p / 3
    sw = math.hypot(sctdi[0] / 3, 2 * sp / 3)
    return {"ctdi100_center": c, "ctdi100_periphery": p, "ctdi100_periphery_each": ctdi[1:].tolist(),
            "ctdiw": w, "ctdiw_rel_sigma": sw / w, "center_rel_sigma": sctdi[0] / c, "histories": r.histories,
            "air_pmma_kerma_ratio": k, "diameter_cm": diameter_cm}


def photons_per_mas(ctdivol_mgy: float, mas_effective: float, ctdiw_per_photon: float) -> float:
    """CTDIvol = CTDIw / pitch and CTDIw = N_per_mAs x mAs_per_rotation x CTDIw_per_photon, so
    N_per_mAs = CTDIvol / (mAs_effective x CTDIw_per_photon) with mAs_effective = mAs_rot / pitch."""
    return float(ctdivol_mgy) / (float(mas_effective) * float(ctdiw_per_photon))


# ---- cached CTDIw per photon ------------------------------------------------------------------------------
# One table for every user of the absolute scale (the app's Monte Carlo, the organ-dose cohort): simulated once
# at high statistics per (kVp, bowtie, phantom, collimation, filtration) set-up and committed; a set-up not in
# the table is simulated on demand (at ``n_histories``) and kept in memory for the process.
CALIBRATION_TABLE = Path(__file__).resolve().parent / "data" / "ctdi_calibration.json"
TABLE_HISTORIES = 50_000_000
_MEMORY: dict = {}


def calibration_key(kvp: float, bowtie: str, diameter_cm: float, collimation_cm: float = 4.0,
                    filtration_mm_al: float = 6.0) -> str:
    return f"{kvp:g}kVp_{bowtie}_{diameter_cm:g}cm_col{collimation_cm:g}_al{filtration_mm_al:g}"


def load_table(path: Path = CALIBRATION_TABLE) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def ctdiw_per_photon(kvp: float, bowtie: str = "body", diameter_cm: float = 32.0, collimation_cm: float = 4.0,
                     filtration_mm_al: float = 6.0, n_histories: int = 4_000_000) -> dict:
    """CTDIw (mGy per source photon) of the set-up, with its relative 1-sigma and where it came from
    ("table": the committed high-statistics simulation; "simulated": computed now)."""
    from .sources import spectrum_from_kvp

    key = calibration_key(kvp, bowtie, diameter_cm, collimation_cm, filtration_mm_al)
    entry = load_table().get(key) or _MEMORY.get(key)
    if entry is None:
        r = simulate_ctdi(spectrum_from_kvp(kvp, filtration_mm_al), diameter_cm, collimation_cm, bowtie,
                          n_histories=n_histories)
        entry = {"ctdiw_per_photon_mgy": r["ctdiw"], "rel_sigma": r["ctdiw_rel_sigma"], "histories": r["histories"],
                 "source": "simulated"}
        _MEMORY[key] = entry
    return {"source": "table", **entry, "key": key}


def build_table(kvps=(80.0, 100.0, 120.0, 140.0), n_histories: int = TABLE_HISTORIES,
                path: Path = CALIBRATION_TABLE) -> dict:
    """(Re)simulate the committed table: head bowtie in the 16 cm and body bowtie in the 32 cm phantom, 4 cm
    collimation, 6 mm Al, at ``n_histories`` each (entries already there at that statistic are kept)."""
    import time

    from .sources import spectrum_from_kvp

    table = load_table(path)
    for kvp in kvps:
        for bowtie, diam in (("head", 16.0), ("body", 32.0)):
            key = calibration_key(kvp, bowtie, diam)
            if table.get(key, {}).get("histories", 0) >= n_histories:
                continue
            t = time.perf_counter()
            r = simulate_ctdi(spectrum_from_kvp(kvp, 6.0), diam, 4.0, bowtie, n_histories=n_histories)
            table[key] = {"kvp": kvp, "bowtie": bowtie, "phantom_cm": diam, "collimation_cm": 4.0,
                          "filtration_mm_al": 6.0, "ctdiw_per_photon_mgy": r["ctdiw"],
                          "rel_sigma": r["ctdiw_rel_sigma"], "ctdi100_center": r["ctdi100_center"],
                          "ctdi100_periphery": r["ctdi100_periphery"], "histories": r["histories"],
                          "seconds": round(time.perf_counter() - t, 1)}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(table, indent=1))  # after every entry: a stopped run keeps its work
            print(key, table[key], flush=True)
    return table


if __name__ == "__main__":
    build_table()
