"""Patient dose from a CT volume: HU -> materials, CT source from the series metadata (kVp, per-slice
tube current), Monte Carlo transport on a block dose grid, calibration to mGy through a simulated
CTDIw (32 cm body phantom) and the scanner's CTDIvol; organ doses with batch uncertainties."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from operators.common.errors import BadInputError
from operators.common.paths import shared_data_dir
from operators.common.volume import CTVolume

from . import physics as ph
from .calibration import KEV_PER_G_TO_MGY, simulate_ctdi
from .engine import VoxelGeometry, run_cpu
from .sources import ct_source, hu_to_materials, spectrum_from_kvp


@dataclass
class PatientDose:
    dose_mgy: np.ndarray  # (z, y, x) on the block grid
    dose_rel_sigma: np.ndarray
    block: tuple
    organ_dose_mgy: dict = field(default_factory=dict)  # name -> (mean mGy, 1-sigma mGy)
    histories: int = 0
    seconds: float = 0.0
    calibration: dict = field(default_factory=dict)
    conservation_error: float = 0.0


def _materials_from_hu(hu):
    d = shared_data_dir() / "icrp110" / "AF_media.dat"
    if not d.exists():
        raise BadInputError(f"ICRP-110 media file absent: {d}")
    return hu_to_materials(hu, ph.icrp110_media(d))


def patient_dose(vol: CTVolume, masks: dict | None = None, n_histories: int = 2_000_000, block=(2, 4, 4),
                 collimation_cm: float = 4.0, pitch: float = 1.0, filtration_mm_al: float = 6.0,
                 ctdi_histories: int = 1_000_000, seed: int = 3) -> PatientDose:
    """Dose (mGy) on a (z, y, x) grid of ``block`` voxels and per organ mask (same shape as the volume).
    Requires an axial, unrotated volume (diagonal affine), ``meta.kvp`` and ``meta.ctdivol_mgy``."""
    m = vol.meta
    if m.kvp is None or m.ctdivol_mgy is None:
        raise BadInputError("Monte Carlo dose needs KVP and CTDIvol in the series metadata")
    a = vol.affine_lps[:3, :3]
    if np.any(np.abs(a - np.diag(np.diag(a))) > 1e-6 * np.abs(a).max()):
        raise BadInputError("Monte Carlo dose needs an axial, unrotated volume")
    hu = vol.hu
    flips = [ax for ax, d in zip((2, 1, 0), np.diag(a), strict=True) if d < 0]
    for ax in flips:  # make every axis increase along +L, +P, +S
        hu = np.flip(hu, ax)
    spacing_cm = np.array(vol.spacing_mm) / 10.0  # z, y, x
    corner = vol.index_to_lps(np.array([[0, 0, 0], list(np.array(vol.shape[::-1]) - 1)]))
    lo_lps = corner.min(axis=0) / 10.0 - spacing_cm[::-1] / 2  # x, y, z cm
    nz, ny, nx = hu.shape
    bz, by, bx = block
    gz, gy, gx = -(-nz // bz), -(-ny // by), -(-nx // bx)
    iz, iy, ix = np.meshgrid(np.arange(nz) // bz, np.arange(ny) // by, np.arange(nx) // bx, indexing="ij")
    tmap = ((iz * gy + iy) * gx + ix).astype(np.int32)
    mat, dens, mats = _materials_from_hu(hu)
    geom = VoxelGeometry(mat, dens, mats, tmap, gz * gy * gx, origin=(lo_lps[2], lo_lps[1], lo_lps[0]),
                         spacing=tuple(spacing_cm), background=ph.AIR)
    spec = spectrum_from_kvp(m.kvp, filtration_mm_al)
    z_cm = np.sort(vol.slice_z_mm / 10.0)
    ma = None
    if m.tube_current_ma is not None and len(m.tube_current_ma) == len(z_cm):
        order = np.argsort(vol.slice_z_mm)
        ma = (vol.slice_z_mm[order] / 10.0, np.asarray(m.tube_current_ma, float)[order])
    iso = (lo_lps[0] + nx * spacing_cm[2] / 2, lo_lps[1] + ny * spacing_cm[1] / 2)
    src = ct_source(spec, collimation_cm=collimation_cm, z_start_cm=z_cm[0], z_end_cm=z_cm[-1], pitch=pitch,
                    ma_profile=ma, bowtie="body", isocentre_xy=iso)
    r = run_cpu(geom, src, n_histories, n_batches=20, seed=seed)
    vox_mass = dens * float(np.prod(spacing_cm))
    mass = np.bincount(tmap.ravel(), weights=vox_mass.ravel(), minlength=geom.n_bins)
    ct = simulate_ctdi(spec, 32.0, collimation_cm, "body", n_histories=ctdi_histories)
    n_rot = max((z_cm[-1] - z_cm[0]) / (pitch * collimation_cm), 1.0 / 36)
    photons = n_rot * m.ctdivol_mgy * pitch / ct["ctdiw"]  # total source photons of the scan
    scale = photons * KEV_PER_G_TO_MGY  # keV/g per history -> mGy
    with np.errstate(divide="ignore", invalid="ignore"):
        dose = np.where(mass > 0, r.mean_kev / mass, 0.0) * scale
        rel = np.where(r.mean_kev > 0, r.std_kev / r.mean_kev, np.inf)
    organs = {}
    pb = r.extra["per_batch_kev"]
    for name, mk in (masks or {}).items():
        mk = np.asarray(mk, bool)
        for ax in flips:
            mk = np.flip(mk, ax)
        if mk.shape != hu.shape:
            raise BadInputError(f"organ mask {name!r} shape {mk.shape} != volume {hu.shape}")
        w = np.bincount(tmap[mk], weights=vox_mass[mk], minlength=geom.n_bins)  # organ mass per block
        frac = np.where(mass > 0, w / np.maximum(mass, 1e-30), 0.0)
        om = w.sum()
        if om <= 0:
            continue
        per_batch = pb @ frac / om * scale  # uniform deposition within a block assumed
        organs[name] = (float(per_batch.mean()), float(per_batch.std(ddof=1) / math.sqrt(len(per_batch))))
    dose = dose.reshape(gz, gy, gx)
    rel = rel.reshape(gz, gy, gx)
    for ax in flips:
        dose, rel = np.flip(dose, ax), np.flip(rel, ax)
    return PatientDose(dose, rel, tuple(block), organs, r.histories, r.seconds,
                       {"ctdiw_per_photon_mgy": ct["ctdiw"], "ctdiw_rel_sigma": ct["ctdiw_rel_sigma"],
                        "ctdivol_mgy": m.ctdivol_mgy, "source_photons": photons, "pitch": pitch,
                        "collimation_cm": collimation_cm, "kvp": m.kvp}, r.conservation_error)
