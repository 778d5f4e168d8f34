"""Organ doses of many CT protocols from one set of Monte Carlo runs: the scan as a sum of z segments.

Organ dose is linear in the source. For one patient and one kVp the helical scan is split into segments of
one collimation width (one rotation at pitch 1); each segment's organ doses per source photon are tallied once
(``segment_doses``). Any scan range that is a union of segments and any tube-current profile then follows by a
weighted sum (``scan_dose_per_ctdivol``), and the absolute scale is the simulated CTDIw of the same source
(operators/mc_dose/calibration.ctdiw_per_photon, the committed table per kVp and phantom):

    N photons per rotation = CTDIvol x pitch / CTDIw_per_photon, and a helix of length L holds L / (pitch c)
    rotations, so the scan's photons are L / c x CTDIvol / CTDIw_per_photon whatever the pitch: a segment k
    (length f_k c) carries f_k w_k CTDIvol / CTDIw_per_photon photons, w_k = mA_k / mean mA of the scan.

Speed-ups that keep the physics exact or nearly so:
* the fan is narrowed to the patient (body and the part of the couch under it) and the per-photon result
  multiplied by the solid-angle ratio of the narrowed to the nominal fan (photons outside the narrowed fan
  cross only air; what they would scatter in the air back into the patient is dropped: in TG-195 case 5 all
  air scatter together adds 0.2-0.5 % to organ doses, so the dropped share is below that, an estimate, not
  measured for patients); the bowtie thickness stays a function of the fan
  angle (sources.generic_bowtie), so it is the same filter.
* transport runs on the CT grid (in-plane halved above ``max_matrix``): Woodcock tracking costs per
  interaction, not per voxel, so a fine grid costs little.

Organ scoring is patient_dose's (operators/mc_dose/dose.py ``scoring_bins`` / ``score_bins``): an organ's dose is
the energy deposited in its own voxels of its own kind (``dose.scored_in_bone``: soft tissue for soft organs)
over their mass, the absorbed dose of the organ as the transport grid resolves it. Contrast-filled heart chambers
(HU-mapped to bone-like material) score no bone kerma into soft organs; a soft organ without any soft voxel takes
the soft-tissue dose of its ``block`` (default 2 x 4 x 4 voxels, about 10 x 8 x 8 mm). The pituitary gland, all
partial volume with the sella on 5 mm slices, is scored as its tissue's kerma in all its voxels
(``dose.SOFT_KERMA_ORGANS``, organ-dose bundle 0.8.0).
Until organ-dose bundle 0.4.0 every organ was scored as the mass-weighted mean of its blocks' soft (or bone)
dose, for less variance in small organs. That mean takes in the fat and other tissue around the organ and, at
the surface, the deeper tissue behind it. On the same histories (the 270 cohort cases at 2 kVp) it read the
kidneys 7 % low on average (up to 24 %), stomach, small intestine and colon 1.5-2.5 % low, the eyes 2 % low,
and the lenses and pituitary anywhere from 21 % low to 33 % (lenses) or 48 % (pituitary) high (SD of the ratio
9-10 %, of which the voxel tally's own noise is 6.5-8 %); brain and liver within 0.6 %. The voxel tally costs variance in small organs
(median 1-sigma of a scan: lenses 3.6 -> 6.5 %, pituitary 4.2 -> 7.9 %, kidneys 2.3 -> 3.3 %).

Pure numpy / numba; no holoscan import.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from operators.common.errors import BadInputError
from operators.common.labels import organ_mask
from operators.mc_dose import physics as ph
from operators.mc_dose.calibration import KEV_PER_G_TO_MGY
from operators.mc_dose.dose import (
    BONE_CLASS_MIN,
    bin_masses,
    block_ids,
    increasing_axis_flips,
    materials_from_hu,
    score_bins,
    scoring_bins,
    soft_kerma_scoring,
)
from operators.mc_dose.engine import VoxelGeometry, prepare, run_cpu, run_cuda
from operators.mc_dose.sources import ct_source, spectrum_from_kvp

SID_CM = 60.0
NOMINAL_FAN_DEG = 50.0


def rect_solid_angle(tan_a: float, tan_b: float) -> float:
    """Solid angle (sr) of a rectangle of half-widths tan_a, tan_b at unit distance, centred on the axis."""
    return 4.0 * math.atan(tan_a * tan_b / math.sqrt(1.0 + tan_a**2 + tan_b**2))


@dataclass
class SegmentDoses:
    """Per segment k (z from ``z0_mm[k]`` to ``z1_mm[k]``, LPS z, increasing) and organ o: dose per nominal
    source photon ``dose[k, o]`` (mGy) and its 1-sigma ``sigma[k, o]``; ``length_frac[k]`` = length / collimation."""

    kvp: float
    bowtie: str
    organs: list
    z0_mm: np.ndarray
    z1_mm: np.ndarray
    length_frac: np.ndarray
    dose: np.ndarray
    sigma: np.ndarray
    histories: int = 0
    seconds: float = 0.0
    info: dict = field(default_factory=dict)


def _block_mean(a: np.ndarray, fz: int, f: int, pad_value: float) -> np.ndarray:
    nz, ny, nx = a.shape
    pz, py, px = (-nz) % fz, (-ny) % f, (-nx) % f
    if pz or py or px:
        a = np.pad(a, ((0, pz), (0, py), (0, px)), constant_values=pad_value)
    nz, ny, nx = a.shape
    return a.reshape(nz // fz, fz, ny // f, f, nx // f, f).mean(axis=(1, 3, 5))


def trim_couch(hu: np.ndarray, margin_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(hu with everything outside the body's lateral extent + margin set to air, body mask): the body is the
    largest connected component above -500 HU; the couch is kept only under the body."""
    fg = hu > -500.0
    lab, n = ndimage.label(fg)
    if n == 0:
        raise BadInputError("no patient in the volume (nothing above -500 HU)")
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    body = lab == int(np.argmax(sizes))
    xs = np.nonzero(body.any(axis=(0, 1)))[0]
    x0, x1 = max(xs[0] - margin_px, 0), min(xs[-1] + margin_px + 1, hu.shape[2])
    out = np.full_like(hu, -1000.0)
    out[:, :, x0:x1] = hu[:, :, x0:x1]
    return out, body


def segment_doses(hu: np.ndarray, affine: np.ndarray, label_map: np.ndarray, organs, kvp: float, *,
                  bowtie: str = "body", collimation_cm: float = 4.0, n_per_segment: int = 300_000,
                  max_matrix: int = 320, block=(2, 4, 4), filtration_mm_al: float = 6.0, n_batches: int = 10, seed: int = 1,
                  restrict_fan: bool = True, fan_margin_cm: float = 1.0, backend: str = "cpu",
                  progress=None, start_angle_deg: float = 0.0) -> SegmentDoses:
    """Per-photon organ doses of every collimation-wide segment of a helical scan over the whole volume
    (focal spot from the first to the last slice centre). ``label_map``: ALL_ORGANS ids on the CT grid;
    ``organs``: names (organs absent from the map get NaN). Transport runs on the CT grid itself (in-plane
    halved, labels nearest, when the matrix exceeds ``max_matrix``); an organ's dose is the energy in its own
    voxels of its own kind over their mass (mc_dose.dose.score_bins; ``block`` only matters for a soft organ
    without soft voxels).
    ``backend``: "cpu" (engine.run_cpu) or "cuda" (engine.run_cuda, same physics). ``progress``: optional
    callable(k, n_segments). ``start_angle_deg``: the tube angle at the first segment's start (the cohort: 0);
    each segment is one turn, so the helix is continuous across segments."""
    hu = np.asarray(hu, np.float32)
    if hu.shape != label_map.shape:
        raise BadInputError(f"label map shape {label_map.shape} != CT shape {hu.shape}")
    flips = increasing_axis_flips(affine, "segment Monte Carlo")
    lab = np.asarray(label_map)
    for ax in flips:  # every axis increasing along +L, +P, +S
        hu, lab = np.flip(hu, ax), np.flip(lab, ax)
    dz, dy, dx = (float(abs(affine[2, 2])), float(abs(affine[1, 1])), float(abs(affine[0, 0])))
    f = 1 if max(hu.shape[1:]) <= max_matrix else int(math.ceil(max(hu.shape[1:]) / max_matrix))
    hu_t, _ = trim_couch(hu, int(round(30.0 / dx)))
    coarse = _block_mean(hu_t, 1, f, -1000.0)
    lab_t = lab[:, f // 2::f, f // 2::f][:, : coarse.shape[1], : coarse.shape[2]]
    if lab_t.shape != coarse.shape:
        lab_t = np.pad(lab_t, [(0, a - b) for a, b in zip(coarse.shape, lab_t.shape, strict=True)])
    nz, ny, nx = coarse.shape
    sp_cm = (dz / 10.0, dy * f / 10.0, dx * f / 10.0)
    # grid corner (cm, transport frame = LPS with increasing axes): voxel centre 0 minus half a voxel
    c0 = np.asarray(affine[:3, 3], float)
    n_fine = np.array(hu.shape[::-1]) - 1  # x, y, z
    lo = np.minimum(c0, c0 + np.diag(affine)[:3] * n_fine) / 10.0 - np.array([dx, dy, dz]) / 20.0
    organs = list(organs)
    mat, dens, mats = materials_from_hu(coarse)
    bone = mat >= BONE_CLASS_MIN
    blk, (gz, gy, gx) = block_ids(coarse.shape, block)
    masks = [organ_mask(lab_t, name) for name in organs]
    scored = [o for o, m in enumerate(masks) if m.any()]
    tmap, n_bins, bin_block, bin_bone, member = scoring_bins(blk, bone, [masks[o] for o in scored])
    score_mat, score_rho, bin_bone = soft_kerma_scoring([organs[o] for o in scored], member, bin_bone, mats)
    bin_mass = bin_masses(tmap, dens, float(np.prod(sp_cm)), n_bins, score_rho)
    geom = VoxelGeometry(mat, dens, mats, tmap, n_bins, origin=(lo[2], lo[1], lo[0]), spacing=sp_cm,
                         background=ph.AIR, score_material=score_mat, score_density=score_rho)
    # isocentre at the field-of-view centre (as patient_dose); fan narrowed to the patient + couch under it
    iso = (lo[0] + nx * sp_cm[2] / 2, lo[1] + ny * sp_cm[1] / 2)
    fg2 = (coarse > -900.0).any(axis=0)
    yy, xx = np.nonzero(fg2)
    r_max = float(np.sqrt(((lo[0] + (xx + 0.5) * sp_cm[2] - iso[0]) ** 2
                           + (lo[1] + (yy + 0.5) * sp_cm[1] - iso[1]) ** 2).max())) + fan_margin_cm
    tan_nom = math.tan(math.radians(NOMINAL_FAN_DEG / 2))
    tan_fan = min(r_max / math.sqrt(max(SID_CM**2 - r_max**2, 1.0)), tan_nom) if restrict_fan else tan_nom
    cone_tan = collimation_cm / 2.0 / SID_CM
    omega_factor = rect_solid_angle(tan_fan, cone_tan) / rect_solid_angle(tan_nom, cone_tan)
    spec = spectrum_from_kvp(kvp, filtration_mm_al)
    zc = np.sort(lo[2] * 10.0 + (np.arange(hu.shape[0]) + 0.5) * dz)  # slice centres (mm), increasing
    z_start, z_end = zc[0] / 10.0, zc[-1] / 10.0
    n_seg = max(1, int(math.ceil((z_end - z_start) / collimation_cm - 1e-6)))
    z0 = z_start + collimation_cm * np.arange(n_seg)
    z1 = np.minimum(z0 + collimation_cm, z_end)
    if n_seg == 1 and z1[0] <= z0[0]:
        z1[0] = z0[0] + collimation_cm / 36.0
    frac = (z1 - z0) / collimation_cm
    dose = np.full((n_seg, len(organs)), np.nan)
    sigma = np.full((n_seg, len(organs)), np.nan)
    hist, secs = 0, 0.0
    fan_deg = 2.0 * math.degrees(math.atan(tan_fan))
    for k in range(n_seg):
        src = ct_source(spec, sid_cm=SID_CM, fan_angle_deg=fan_deg, collimation_cm=collimation_cm,
                        z_start_cm=z0[k], z_end_cm=z1[k], pitch=1.0, start_angle_deg=start_angle_deg + 360.0 * k,
                        bowtie=bowtie, isocentre_xy=iso)
        n = max(int(n_per_segment * max(frac[k], 0.25)), n_batches * 100)
        t = time.perf_counter()
        if backend == "cuda":
            r = run_cuda(geom, src, n, n_batches=n_batches, seed=seed + 7919 * k, prepared=prepare(geom, src))
        else:
            r = run_cpu(geom, src, n, n_batches=n_batches, seed=seed + 7919 * k, prepared=prepare(geom, src))
        secs += time.perf_counter() - t
        hist += r.histories
        _, organ_pb, organ_info = score_bins(r.extra["per_batch_kev"], bin_mass, bin_block, bin_bone, member,
                                             [organs[o] for o in scored], gz * gy * gx, score_mat)
        for o in scored:  # keV/g per history -> mGy per nominal photon
            pb = organ_pb.get(organs[o])
            if pb is not None:
                pb = pb * KEV_PER_G_TO_MGY * omega_factor
                dose[k, o] = pb.mean()
                sigma[k, o] = pb.std(ddof=1) / math.sqrt(len(pb))
        if progress is not None:
            progress(k + 1, n_seg)
    organ_mass = [organ_info[name]["mass_g"] if name in organ_info else 0.0 for name in organs]
    return SegmentDoses(float(kvp), bowtie, organs, z0 * 10.0, z1 * 10.0, frac, dose, sigma, hist, secs,
                        {"transport_spacing_cm": sp_cm, "fan_deg": fan_deg, "solid_angle_factor": omega_factor,
                         "isocentre_cm": iso, "organ_mass_g": organ_mass, "n_segments": n_seg})


def segment_weights_from_ma(z0_mm, z1_mm, slice_z_mm, ma) -> np.ndarray:
    """Relative tube current of each segment: mean mA of the slices inside it ([z0, z1), the last one closed;
    interpolated at its centre when none), divided by the mean mA over all slices of the scan (the scanner's
    CTDIvol follows the mean mA)."""
    zs = np.asarray(slice_z_mm, float)
    ma = np.asarray(ma, float)
    order = np.argsort(zs)
    zs, ma = zs[order], ma[order]
    w = np.empty(len(z0_mm))
    last = len(z0_mm) - 1
    for k, (a, b) in enumerate(zip(z0_mm, z1_mm, strict=True)):  # [a, b), the last segment [a, b]
        inside = (zs >= a - 1e-6) & ((zs < b - 1e-6) if k < last else (zs <= b + 1e-6))
        w[k] = ma[inside].mean() if inside.any() else np.interp(0.5 * (a + b), zs, ma)
    return w / ma.mean()


def scan_dose_per_ctdivol(seg: SegmentDoses, ctdiw_per_photon: float, seg_slice: slice | None = None,
                          weights=None) -> tuple[np.ndarray, np.ndarray]:
    """(organ dose / CTDIvol, 1-sigma) for the scan over the segments ``seg_slice`` (default: all) with
    relative tube current ``weights`` per segment (default 1: no TCM). mGy per mGy of CTDIvol."""
    sl = seg_slice or slice(None)
    d, s, fr = seg.dose[sl], seg.sigma[sl], seg.length_frac[sl]
    w = np.ones(len(fr)) if weights is None else np.asarray(weights, float)
    coef = (w * fr)[:, None] / ctdiw_per_photon
    return (coef * d).sum(axis=0), np.sqrt(((coef * s) ** 2).sum(axis=0))
