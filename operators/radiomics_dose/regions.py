"""Body regions of the organ-dose models (papers/radiomics-fcn-organ-dose.txt): the organs each region's
network predicts, the bowtie and CTDI phantom of its scans, and the tube-current-modulation factors that
condition a prediction on the scan's mA profile."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from operators.common.labels import organ_mask

# The scan-wide inputs of every network: 1 / kVp and the scan's mean Dw (cm). 1 / kVp, not kVp (bundles before
# 0.6.0): log dose per CTDIvol is close to linear in 1 / kVp (head cohort, the same patient at two kVp: brain
# +0.159 from 80 to 100 kVp, +0.095 to 120, +0.070 to 140, i.e. 64, 57, 59 per 1e-3 /kV); with kVp the networks
# left a bias by kVp (brain +1.3 % at 80 kVp, -1.1 % at 120).
PROTOCOL_INPUTS: tuple[str, ...] = ("inverse_kvp", "dw_cm")

# Per-organ inputs the networks may read besides the radiomics features, "<name>:<organ>" in a bundle's input
# list (Region.organ_inputs says which a region's network reads): the Dw of the organ's slices and its margin to
# the nearer scan end (organ_geometry); its mean AP offset from the isocentre and the mean distance of its voxels
# from it (organ_position); its TCM factor (organ_tcm_factors). The target is already divided by the TCM factor;
# as an input too it lets the network learn how far an organ's dose falls short of following its own slices' mA
# (scatter from neighbouring slices at other mA): without it the head test MAPE varied with the TCM strength
# (brain 3.1 % at fixed mA, 1.4 % at 0.05 /cm, 2.8 % at 0.10 /cm). RegionData (models/organ_dose/dataset.py) has
# fields of the same names.
GEOMETRY_INPUTS: tuple[str, ...] = ("organ_dw_cm", "organ_margin_cm")
POSITION_INPUTS: tuple[str, ...] = ("organ_ap_cm", "organ_radius_cm")
TCM_INPUTS: tuple[str, ...] = ("tcm_factor",)
# The tube angle as the beam's centre passes the organ (cos, sin; organ_helix_angle): a helical scan at pitch 1
# irradiates a point for one rotation, but the cone makes the beam narrower where the tube is near the point, so a
# superficial organ gets more of its primary dose from the angles the tube holds as the beam centre passes it.
# With the cohort's random scan starts this phase moved eye and lens doses by several per cent between patients
# (head, 6 splits: test MAPE eyes 4.0 -> 1.7 %, lenses 7.4 -> 4.7 % with these inputs; brain and pituitary, deep,
# unchanged). A clinical series does not record the start angle, so the operator averages the prediction over
# the angle (inference.predict_organ_doses) and counts the spread in the uncertainty.
HELIX_INPUTS: tuple[str, ...] = ("helix_cos", "helix_sin")
HELIX_FEED_MM = 40.0  # table feed per rotation of the cohort's scans (4 cm collimation at pitch 1)
ORGAN_INPUTS: tuple[str, ...] = GEOMETRY_INPUTS + POSITION_INPUTS + TCM_INPUTS + HELIX_INPUTS


@dataclass(frozen=True)
class Region:
    name: str
    organs: tuple[str, ...]
    bowtie: str  # head | body
    ctdi_phantom_cm: int  # 16 (head) | 32 (body): the phantom of the scanner's CTDIvol
    reference_dw_mm: float  # Dw at which the synthetic TCM gives the reference mA
    # per-organ inputs of the region's network (ORGAN_INPUTS): the position ones only where the cohort varies the
    # patient's centring (head scans: models/organ_dose/cohort.centre_field_of_view); on the trunk they changed
    # no test MAPE beyond split noise (bundle 0.3.0 card)
    organ_inputs: tuple[str, ...] = GEOMETRY_INPUTS + TCM_INPUTS


REGIONS: dict[str, Region] = {
    "head": Region("head", ("brain", "eyes", "lenses", "optic_nerves", "pituitary_gland"), "head", 16, 170.0,
                   ORGAN_INPUTS),  # the position and helix-angle inputs: superficial organs (eyes, lenses)
    "chest": Region("chest", ("lungs", "heart", "esophagus", "trachea", "spinal_cord"), "body", 32, 320.0),
    "abdomen": Region("abdomen", ("liver", "stomach", "small_intestine", "colon", "kidneys", "pancreas",
                                  "spinal_cord"), "body", 32, 320.0),
}

DOSE_ORGANS: tuple[str, ...] = tuple(dict.fromkeys(o for r in REGIONS.values() for o in r.organs))


def organ_slice_mass(label_map: np.ndarray, organs) -> np.ndarray:
    """(n_slices, n_organs) voxel count of each organ per slice (volume order)."""
    return np.stack([organ_mask(label_map, o).sum(axis=(1, 2)) for o in organs], axis=1).astype(float)


def organ_mean_over_slices(slice_mass: np.ndarray, per_slice) -> np.ndarray:
    """Per organ: the organ-voxel-weighted mean of a per-slice quantity over its slices (NaN for an organ absent
    from them)."""
    v = np.asarray(per_slice, float)
    tot = slice_mass.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, (slice_mass * v[:, None]).sum(axis=0) / tot, np.nan)


def organ_tcm_factors(slice_mass: np.ndarray, ma) -> np.ndarray:
    """Per organ: the organ-mass-weighted mean tube current over its slices divided by the scan's mean mA
    (1 without modulation; NaN for an organ absent from the scan)."""
    ma = np.asarray(ma, float)
    return organ_mean_over_slices(slice_mass, ma / ma.mean())


def organ_geometry(slice_mass: np.ndarray, dw_mm, slice_z_mm) -> tuple[np.ndarray, np.ndarray]:
    """Per organ: (local water-equivalent diameter in cm, the organ-voxel-weighted mean Dw of its slices;
    margin in cm between the organ's z extent and the nearer end of the scan, 0 when the scan cuts it).
    NaN for an organ absent from the scan."""
    z = np.asarray(slice_z_mm, float)
    local = organ_mean_over_slices(slice_mass, np.asarray(dw_mm, float) / 10.0)
    margin = np.full(slice_mass.shape[1], np.nan)
    for o in range(slice_mass.shape[1]):
        k = np.nonzero(slice_mass[:, o] > 0)[0]
        if k.size:
            zo = z[k]
            margin[o] = max(min(zo.min() - z.min(), z.max() - zo.max()), 0.0) / 10.0
    return local, margin


def organ_slice_positions(label_map: np.ndarray, organs, affine_lps: np.ndarray) -> np.ndarray:
    """(n_slices, n_organs, 2): per slice, the sums over each organ's voxels of (anterior-posterior offset, distance)
    in mm from the centre of the image grid, the isocentre the Monte Carlo assumes (mc_segments, mc_dose.dose:
    the reconstruction field of view centred on the rotation axis). AP offset = LPS y, + posterior. Divided by
    ``organ_slice_mass`` over a run of slices: the organ's mean position (``organ_position``). Where a patient lies
    off-centre, the bowtie filter and the distance to the focal spot change superficial organ doses (eyes, lenses,
    breasts), which the radiomics features (position-free) cannot see."""
    ny, nx = label_map.shape[1:]
    a = np.asarray(affine_lps, float)
    jj = np.arange(ny) - (ny - 1) / 2.0
    ii = np.arange(nx) - (nx - 1) / 2.0
    y_mm = a[1, 1] * jj[:, None] + a[1, 0] * ii[None, :]  # LPS offsets of each in-plane voxel from the centre
    x_mm = a[0, 1] * jj[:, None] + a[0, 0] * ii[None, :]
    r_mm = np.hypot(x_mm, y_mm)
    out = np.zeros((label_map.shape[0], len(organs), 2))
    for k, o in enumerate(organs):
        m = organ_mask(label_map, o)
        out[:, k, 0] = np.einsum("zyx,yx->z", m, y_mm, dtype=float)
        out[:, k, 1] = np.einsum("zyx,yx->z", m, r_mm, dtype=float)
    return out


def organ_position(slice_mass: np.ndarray, slice_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per organ over the given slices: (mean AP offset from the isocentre in cm, + posterior; mean distance from
    the isocentre in cm), NaN for an organ absent from them (``organ_slice_positions``)."""
    tot = slice_mass.sum(axis=0)
    sums = np.asarray(slice_positions, float).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(tot[:, None] > 0, sums / tot[:, None], np.nan) / 10.0
    return mean[:, 0], mean[:, 1]


def organ_helix_angle(slice_mass: np.ndarray, slice_z_mm, start_z_mm: float, feed_mm: float) -> np.ndarray:
    """Per organ: the tube angle (radians, the Monte Carlo source's convention: 0 at ``start_z_mm``, advancing
    2 pi per ``feed_mm`` of table travel) when the beam's centre is at the organ's voxel-weighted mean z; NaN for
    an organ absent from the slices."""
    zo = organ_mean_over_slices(slice_mass, slice_z_mm)
    return 2.0 * np.pi * (zo - float(start_z_mm)) / float(feed_mm)
