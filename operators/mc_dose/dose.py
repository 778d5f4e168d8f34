"""Patient dose from a CT volume: HU -> materials, CT source from the series metadata (kVp, per-slice
tube current), Monte Carlo transport, calibration to mGy through the simulated CTDIw of the same source in the
32 cm body phantom (calibration.ctdiw_per_photon: the committed high-statistics table) and the scanner's
CTDIvol; dose grid and organ doses with batch uncertainties.

Scoring: every voxel's tally bin is the combination of (dose-grid block, tissue kind, organ membership).
The tissue kind is bone-like (cartilage and mineral bone HU classes, HU > 100) or soft (everything else).
* organ dose = energy deposited in the organ's own voxels of the organ's tissue kind divided by their mass
  (``scored_in_bone``: soft for soft-tissue organs, bone for skeletal ones, else the kind holding most of the
  mask's mass). This is exact at the CT grid whatever the block size; voxels of the other kind inside a mask
  (bone voxels in a spinal-cord or brain mask) are left out, so no bone kerma (3-5 x soft tissue at CT
  energies) leaks into soft organs. A soft-tissue organ with no soft voxel at all takes the soft-tissue dose
  of its blocks (``SOFT_OF_BLOCKS``). Exception: an organ of ``SOFT_KERMA_ORGANS`` (the pituitary gland) is
  scored as the kerma of its own tissue in every voxel of its mask, bone-like or not, in the fluence there.
* dose grid = per block, the dose to its soft tissue where it has any (dose to bone where the block is
  all bone): a block straddling a vertebra and the cord reads the soft-tissue dose, not a bone-tissue mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from operators.common.errors import BadInputError
from operators.common.paths import shared_data_dir
from operators.common.volume import CTVolume

from . import physics as ph
from .calibration import KEV_PER_G_TO_MGY, ctdiw_per_photon
from .engine import VoxelGeometry, run_cpu
from .sources import HU_CLASSES, ct_source, hu_to_materials, spectrum_from_kvp

# HU classes from this index on (cartilage, mineral bone) are bone-like tissue
BONE_CLASS_MIN = next(i for i, (_, name) in enumerate(HU_CLASSES) if name == "Cartilage")
SKELETAL_ORGANS = frozenset({"bones", "femoral_heads"})


def scored_in_bone(name: str, bone_mass: float, soft_mass: float) -> bool:
    """Whether organ ``name``'s dose is scored in its bone-like voxels (True) or its soft ones. A soft-tissue
    organ of labels.ALL_ORGANS is scored in soft tissue: its voxels above 100 HU are contrast-enhanced blood
    and parenchyma (an arterial-phase heart: 3/4 of its voxels) or partial volume with bone, which the HU
    mapping turns into bone-like material (calcium, not iodine); their kerma is not the organ tissue's dose.
    When none of its voxels is soft (a pituitary gland in the sella on 5 mm slices can be all partial volume),
    callers score it in the soft tissue of its blocks (``SOFT_OF_BLOCKS``), never in bone: bone kerma read
    such a pituitary at 1.7-2.1 x CTDIvol. Skeletal organs are scored in bone; other masks (phantom regions) in
    the kind holding most of their mass."""
    from operators.common.labels import ORGAN_BY_NAME

    if name in SKELETAL_ORGANS:
        return bone_mass > 0 or soft_mass == 0
    if name in ORGAN_BY_NAME:
        return False
    return bone_mass > soft_mass


# tissue note of an organ whose voxels are all bone-like but which is scored in soft tissue (scored_in_bone)
SOFT_OF_BLOCKS = "soft (of its blocks: no soft voxel of its own)"

# Soft-tissue organs whose dose is the kerma of their own tissue in *every* voxel of their mask, whatever medium
# the HU mapping made of the voxel, in the fluence the (unchanged) transport gives there: organ -> (HU_CLASSES
# medium of its tissue, its density in g/cm^3, ICRP Publication 89; the dose does not depend on the density,
# only the organ's reported mass). The pituitary gland (0.4-1 mL) lies in the sella turcica: on a 5 mm x 2 mm CT
# grid nearly every voxel of it is partial volume with the sella's bone. Scored in its soft voxels only (organ-dose
# bundles 0.2.0-0.7.0) its dose rested on a few edge voxels: in the ICRP-110 AF heads of the cohort 0.02-0.75 g of
# a 0.2-1.2 g gland (median 0.31 g; one voxel in some), and pituitary / brain dose at 80 kVp ran from 0.40 to 1.0
# between patients of one phantom. Its tissue's kerma in all its voxels is the gland's dose in the fluence the
# sella leaves it. (Other soft organs keep the soft-voxel rule: most of their voxels are soft, and changing their
# rule means re-scoring every cohort case.)
SOFT_KERMA_ORGANS: dict[str, tuple[str, float]] = {
    "pituitary_gland": ("Gallbladder, Pituitary gland, Trachea, Thymus, Tonsils, Ureters", 1.03),
}
SOFT_KERMA = "soft (kerma of its tissue in all its voxels)"


def soft_kerma_scoring(names: list, member: np.ndarray, bin_bone: np.ndarray, materials: list):
    """(score_material, score_density, bin_bone) for ``scoring_bins``' bins: the bins of the organs of
    ``SOFT_KERMA_ORGANS`` among ``names`` (the columns of ``member``) score the kerma of the organ's tissue
    (engine.VoxelGeometry ``score_material``, an index into ``materials``) and count as soft tissue from then
    on (dose grid, ``score_bins``); every other bin -1 / 0 (its voxels' own medium) and its kind unchanged. Only
    bins of that organ alone: where its mask overlaps another mask (``patient_dose`` accepts any masks) a voxel
    can be scored one way only, and the other organ's rule is kept there."""
    mat = np.full(len(bin_bone), -1, np.int32)
    rho = np.zeros(len(bin_bone))
    media = [m.name for m in materials]
    alone = member.sum(axis=1) == 1
    for o, name in enumerate(names):
        if name in SOFT_KERMA_ORGANS:
            medium, density = SOFT_KERMA_ORGANS[name]
            mat[member[:, o] & alone] = media.index(medium)
            rho[member[:, o] & alone] = density
    return mat, rho, bin_bone & (mat < 0)


def bin_masses(tally_map: np.ndarray, density: np.ndarray, voxel_cm3: float, n_bins: int,
               score_density: np.ndarray) -> np.ndarray:
    """Mass (g) of each tally bin: its voxels' densities, or its scoring medium's (``soft_kerma_scoring``)."""
    rho = np.where(score_density[tally_map] > 0, score_density[tally_map], density)
    return np.bincount(tally_map.ravel(), weights=(rho * voxel_cm3).ravel(), minlength=n_bins)


@dataclass
class PatientDose:
    dose_mgy: np.ndarray  # (z, y, x) on the block grid: soft-tissue dose (bone dose in all-bone blocks)
    dose_rel_sigma: np.ndarray
    block: tuple
    organ_dose_mgy: dict = field(default_factory=dict)  # name -> (mean mGy, 1-sigma mGy)
    histories: int = 0
    seconds: float = 0.0
    calibration: dict = field(default_factory=dict)
    conservation_error: float = 0.0
    organ_info: dict = field(default_factory=dict)  # name -> {mass_g, tissue, excluded_mass_fraction}


def scoring_bins(block_id: np.ndarray, bone: np.ndarray, masks: list[np.ndarray]):
    """Tally bin per voxel = unique (block, tissue kind, organ membership) combination.
    Returns (bin map int32 like ``block_id``, n_bins, block of each bin, kind of each bin (1 bone),
    membership matrix [n_bins, n_masks] bool)."""
    sig = np.zeros(block_id.shape, np.int64)
    nsig = 1
    for m in masks:  # membership signature, kept compact so that it never overflows
        sig = sig * 2 + m.astype(np.int64)
        nsig *= 2
        if nsig > 2**40:
            _, sig = np.unique(sig, return_inverse=True)
            sig = sig.reshape(block_id.shape).astype(np.int64)
            nsig = int(sig.max()) + 1
    key = (block_id.astype(np.int64) * 2 + bone.astype(np.int64)) * nsig + sig
    uniq, inv = np.unique(key.ravel(), return_inverse=True)
    kb = uniq // nsig
    bsig = uniq % nsig
    member = np.zeros((uniq.size, len(masks)), bool)
    for i in range(len(masks) - 1, -1, -1):  # undo sig = sig * 2 + m (last mask = lowest bit)
        member[:, i] = (bsig % 2) == 1
        bsig //= 2
    return inv.reshape(block_id.shape).astype(np.int32), int(uniq.size), kb // 2, (kb % 2).astype(bool), member


def score_bins(pb: np.ndarray, bin_mass: np.ndarray, bin_block: np.ndarray, bin_bone: np.ndarray,
               member: np.ndarray, names: list, n_blocks: int, score_material: np.ndarray | None = None):
    """Doses of one run scored on ``scoring_bins``' bins by the module's rules. ``pb`` (batches, bins): energy
    per history deposited in each bin, per batch. Returns (grid (batches, n_blocks): each block's soft-tissue
    dose, bone where it holds no soft tissue; {name: (batches,) organ dose}; {name: {mass_g, tissue,
    excluded_mass_fraction}}), doses in ``pb``'s energy unit per gram (per history). An organ of ``names``
    (the columns of ``member``) with no voxel of its own kind and no soft tissue in its blocks is left out.
    ``score_material``: the run's per-bin scoring media (``soft_kerma_scoring``); an organ all of whose scored
    bins score its tissue's kerma is reported as ``SOFT_KERMA``."""
    soft_mass = np.bincount(bin_block[~bin_bone], weights=bin_mass[~bin_bone], minlength=n_blocks)
    use = np.where(soft_mass[bin_block] > 0, ~bin_bone, bin_bone)  # bins that make each block's dose
    sel = np.nonzero(use)[0]
    grid_mass = np.bincount(bin_block[sel], weights=bin_mass[sel], minlength=n_blocks)
    grid = np.zeros((pb.shape[0], n_blocks))
    for i in range(pb.shape[0]):
        grid[i] = np.bincount(bin_block[sel], weights=pb[i, sel], minlength=n_blocks)
    with np.errstate(divide="ignore", invalid="ignore"):
        grid = np.where(grid_mass > 0, grid / grid_mass, 0.0)
    organs, info = {}, {}
    for o, name in enumerate(names):
        ob = member[:, o]
        bone_mass = bin_mass[ob & bin_bone].sum()
        soft_mass_o = bin_mass[ob & ~bin_bone].sum()
        kind_bone = scored_in_bone(name, bone_mass, soft_mass_o)
        keep = ob & (bin_bone == kind_bone)
        om = bin_mass[keep].sum()
        if score_material is not None and keep.any() and np.all(score_material[keep] >= 0):
            tissue = SOFT_KERMA
        else:
            tissue = "bone" if kind_bone else "soft"
        if om > 0:
            organs[name] = pb[:, keep].sum(axis=1) / om
        else:  # a soft organ without soft voxels: the soft tissue of its blocks (the grid's per-batch values
            # where a block has soft tissue), weighted by the organ's mass in each
            blocks = np.bincount(bin_block[ob], weights=bin_mass[ob], minlength=n_blocks)
            blocks[soft_mass == 0] = 0.0
            if not blocks.any():
                continue  # no soft tissue anywhere near it: no dose rather than bone kerma
            organs[name] = grid @ blocks / blocks.sum()
            om, tissue = float(blocks.sum()), SOFT_OF_BLOCKS
        info[name] = {"mass_g": float(om), "tissue": tissue,
                      "excluded_mass_fraction": float(1.0 - om / (bone_mass + soft_mass_o))}
    return grid, organs, info


def materials_from_hu(hu):
    """(material index, density g/cm3, materials) per voxel: sources.hu_to_materials onto the ICRP-110 media."""
    d = shared_data_dir() / "icrp110" / "AF_media.dat"
    if not d.exists():
        raise BadInputError(f"ICRP-110 media file absent: {d}")
    return hu_to_materials(hu, ph.icrp110_media(d))


def increasing_axis_flips(affine_lps: np.ndarray, what: str = "Monte Carlo dose") -> list[int]:
    """The (z, y, x) array axes to flip so that every axis increases along +S, +P, +L (the transport frame);
    BadInputError unless the affine is axial and unrotated (diagonal)."""
    a = np.asarray(affine_lps)[:3, :3]
    if np.any(np.abs(a - np.diag(np.diag(a))) > 1e-6 * np.abs(a).max()):
        raise BadInputError(f"{what} needs an axial, unrotated volume (diagonal affine)")
    return [ax for ax, d in zip((2, 1, 0), np.diag(a), strict=True) if d < 0]


def block_ids(shape, block) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(block index of every voxel of a (z, y, x) ``shape``, the block grid's shape) for blocks of ``block``
    voxels, the last block of each axis possibly partial."""
    (nz, ny, nx), (bz, by, bx) = shape, block
    gz, gy, gx = -(-nz // bz), -(-ny // by), -(-nx // bx)
    kz, ky, kx = (np.arange(n) // bb for n, bb in ((nz, bz), (ny, by), (nx, bx)))
    return (kz[:, None, None] * gy + ky[None, :, None]) * gx + kx[None, None, :], (gz, gy, gx)


def patient_dose(vol: CTVolume, masks: dict | None = None, n_histories: int = 2_000_000, block=(2, 4, 4),
                 collimation_cm: float = 4.0, pitch: float = 1.0, filtration_mm_al: float = 6.0,
                 ctdi_histories: int = 4_000_000, seed: int = 3, n_batches: int = 20) -> PatientDose:
    """Dose (mGy) on a (z, y, x) grid of ``block`` voxels and per organ mask (bool, same shape as the
    volume; see the module docstring for what each means). Requires an axial, unrotated volume (diagonal
    affine), ``meta.kvp`` and ``meta.ctdivol_mgy``."""
    m = vol.meta
    if m.kvp is None or m.ctdivol_mgy is None:
        raise BadInputError("Monte Carlo dose needs KVP and CTDIvol in the series metadata")
    hu = vol.hu
    flips = increasing_axis_flips(vol.affine_lps)
    for ax in flips:  # make every axis increase along +L, +P, +S
        hu = np.flip(hu, ax)
    names, mask_list = [], []
    for name, mk in (masks or {}).items():
        mk = np.asarray(mk, bool)
        if mk.shape != vol.hu.shape:
            raise BadInputError(f"organ mask {name!r} shape {mk.shape} != volume {vol.hu.shape}")
        for ax in flips:
            mk = np.flip(mk, ax)
        if mk.any():
            names.append(name)
            mask_list.append(mk)
    spacing_cm = np.array(vol.spacing_mm) / 10.0  # z, y, x
    corner = vol.index_to_lps(np.array([[0, 0, 0], list(np.array(vol.shape[::-1]) - 1)]))
    lo_lps = corner.min(axis=0) / 10.0 - spacing_cm[::-1] / 2  # x, y, z cm
    nz, ny, nx = hu.shape
    blk, (gz, gy, gx) = block_ids(hu.shape, block)
    mat, dens, mats = materials_from_hu(hu)
    bone = mat >= BONE_CLASS_MIN
    tmap, n_bins, bin_block, bin_bone, member = scoring_bins(blk, bone, mask_list)
    score_mat, score_rho, bin_bone = soft_kerma_scoring(names, member, bin_bone, mats)
    geom = VoxelGeometry(mat, dens, mats, tmap, n_bins, origin=(lo_lps[2], lo_lps[1], lo_lps[0]),
                         spacing=tuple(spacing_cm), background=ph.AIR, score_material=score_mat,
                         score_density=score_rho)
    spec = spectrum_from_kvp(m.kvp, filtration_mm_al)
    z_cm = np.sort(vol.slice_z_mm / 10.0)
    ma = None
    if m.tube_current_ma is not None and len(m.tube_current_ma) == len(z_cm):
        order = np.argsort(vol.slice_z_mm)
        ma = (vol.slice_z_mm[order] / 10.0, np.asarray(m.tube_current_ma, float)[order])
    iso = (lo_lps[0] + nx * spacing_cm[2] / 2, lo_lps[1] + ny * spacing_cm[1] / 2)
    src = ct_source(spec, collimation_cm=collimation_cm, z_start_cm=z_cm[0], z_end_cm=z_cm[-1], pitch=pitch,
                    ma_profile=ma, bowtie="body", isocentre_xy=iso)
    r = run_cpu(geom, src, n_histories, n_batches=n_batches, seed=seed)
    bin_mass = bin_masses(tmap, dens, float(np.prod(spacing_cm)), n_bins, score_rho)
    ct = ctdiw_per_photon(m.kvp, "body", 32.0, collimation_cm, filtration_mm_al, n_histories=ctdi_histories)
    n_rot = max((z_cm[-1] - z_cm[0]) / (pitch * collimation_cm), 1.0 / 36)
    photons = n_rot * m.ctdivol_mgy * pitch / ct["ctdiw_per_photon_mgy"]  # total source photons of the scan
    scale = photons * KEV_PER_G_TO_MGY  # keV/g per history -> mGy
    grid_pb, organ_pb, info = score_bins(r.extra["per_batch_kev"], bin_mass, bin_block, bin_bone, member, names,
                                         gz * gy * gx, score_mat)
    grid_pb *= scale
    dose = grid_pb.mean(axis=0)
    sd = grid_pb.std(axis=0, ddof=1) / math.sqrt(grid_pb.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(dose > 0, sd / dose, np.inf)
    organs = {name: (float(pb.mean() * scale), float(pb.std(ddof=1) * scale / math.sqrt(len(pb))))
              for name, pb in organ_pb.items()}
    dose = dose.reshape(gz, gy, gx)
    rel = rel.reshape(gz, gy, gx)
    for ax in flips:
        dose, rel = np.flip(dose, ax), np.flip(rel, ax)
    return PatientDose(dose, rel, tuple(block), organs, r.histories, r.seconds,
                       {"ctdiw_per_photon_mgy": ct["ctdiw_per_photon_mgy"], "ctdiw_rel_sigma": ct["rel_sigma"],
                        "ctdiw_source": ct["source"],
                        "ctdivol_mgy": m.ctdivol_mgy, "source_photons": photons, "pitch": pitch,
                        "collimation_cm": collimation_cm, "kvp": m.kvp}, r.conservation_error, info)
