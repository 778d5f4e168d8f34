"""CT synthesis from the ICRP Publication 110 adult reference phantoms (AM, AF) and their landmarks.

The phantoms (ICRP Publication 110, "Adult Reference Computational Phantoms", Ann. ICRP 39(2), 2009) hold
organ identification numbers only. They live in ``../shared/data/icrp110`` (or ``$CORPUSCT_DATA/icrp110``)
and are never copied into this repository. This module turns them into CT-like HU volumes:

* organ id -> medium and density (``*_organs.csv``) -> elemental mass fractions (``*_media.dat``)
  -> mass attenuation at an effective energy (default 65 keV, a 120 kVp spectrum after a body's beam
  hardening) from xraylib's ``CS_Total`` (photoelectric + Compton + Rayleigh, NIST XCOM-equivalent)
  -> linear attenuation -> HU = 1000 (mu / mu_water - 1)  (``organ_hu_table``);
* realism (``synthesize_ct``): inflated-lung density, per-organ HU jitter, contrast phase offsets, smooth
  organ texture, anisotropic scaling (size / build), smooth in-plane deformation, slice profile and in-plane
  blur, kernel-like correlated noise, a scanner HU offset, field of view and table;
* landmarks (``landmarks_mm``): z of every ``labels.LANDMARKS`` name derived from the organ maps, so
  body-part labels follow from ``labels.body_parts_per_slice``;
* organ labels (``organ_labels``): ``labels.ALL_ORGANS`` ids on the native phantom grid from the ICRP organ
  ids (``ORGAN_MAP``, documented there) plus two derived structures (femoral heads, optic nerves);
  ``synthesize_ct`` resamples them onto the scan grid through the same coordinates as the HU.

Coordinates: the NIfTI files are LPS-coded; ``volume.load_nifti`` gives (z, y, x) arrays with an LPS affine
whose origin is the first voxel: columns run right -> left, rows anterior -> posterior, slices feet -> head,
z = 0 mm at the lowest slice (the soles), as in the procedural phantom.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from operators.common.labels import LANDMARKS, ORGAN_BY_NAME, body_parts_per_slice
from operators.common.paths import shared_data_dir
from operators.common.volume import CTMetadata, CTVolume, axial_affine, load_nifti

PHANTOMS = ("AM", "AF")
ELEMENTS_Z = (1, 6, 7, 8, 11, 12, 15, 16, 17, 19, 20, 26, 53)  # columns of *_media.dat
WATER_FRACTIONS = {1: 0.111894, 8: 0.888106}
EFFECTIVE_ENERGY_KEV = 65.0

# ICRP 89 / 110 reference values of the phantoms (height cm, mass kg); the age is nominal (adult).
REFERENCE_BODY = {"AM": {"height_cm": 176.0, "weight_kg": 73.0, "sex": "M"},
                  "AF": {"height_cm": 163.0, "weight_kg": 60.0, "sex": "F"}}

# Organ-id groups (identical numbering in AM and AF, ICRP 110 Annex A).
IDS = {
    "eyes": (66, 67, 68, 69), "brain": (61,), "teeth": (128,), "mandible": (39, 40), "thyroid": (132,),
    "cervical_spine": (47, 48), "lungs": (96, 97, 98, 99), "lung_tissue": (97, 99),
    "humeri_upper": (13, 14, 15), "trachea": (7,), "heart": (87, 88), "breast": (62, 63, 64, 65),
    "liver": (95,), "kidneys": (89, 90, 91, 92, 93, 94), "ribs": (43, 44), "lumbar_spine": (51, 52),
    "pelvis": (41, 42), "femora_upper": (28, 29, 30), "femora_lower": (31, 32, 33), "tibiae": (34, 35, 36),
    "spleen": (127,), "blood": (9, 10, 11, 12, 88, 96, 98),
    "arms": (11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 59, 104, 108, 118, 124),
}


def icrp110_dir(data_dir: str | Path | None = None) -> Path:
    d = Path(data_dir) if data_dir else shared_data_dir() / "icrp110"
    if not (d / "AM_organ_ids.nii.gz").is_file():
        raise FileNotFoundError(f"ICRP-110 phantom data not found in {d} (set CORPUSCT_DATA or provide "
                                "../shared/data/icrp110; see ../shared/data/README.md)")
    return d


def available(data_dir: str | Path | None = None) -> bool:
    try:
        icrp110_dir(data_dir)
        return True
    except FileNotFoundError:
        return False


def _check(phantom: str) -> str:
    p = str(phantom).upper()
    if p not in PHANTOMS:
        raise ValueError(f"phantom must be AM or AF, got {phantom!r}")
    return p


@functools.lru_cache(maxsize=4)
def load_organ_ids(phantom: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(organ ids (z, y, x) uint16, LPS affine) of AM or AF."""
    p = _check(phantom)
    ids, aff = load_nifti(icrp110_dir(data_dir) / f"{p}_organ_ids.nii.gz")
    return np.ascontiguousarray(ids.astype(np.uint16)), aff


@functools.lru_cache(maxsize=4)
def load_organs(phantom: str, data_dir: str | None = None) -> dict[int, tuple[str, int, float]]:
    """organ id -> (name, media id, density g/cm3) from ``*_organs.csv``."""
    p = _check(phantom)
    out = {}
    with open(icrp110_dir(data_dir) / f"{p}_organs.csv", newline="") as f:
        for row in csv.DictReader(f):
            out[int(row["organ_id"])] = (row["organ_name"], int(row["media_id"]), float(row["density_g_cm3"]))
    # id 141: the skin layer on the first and last slice (ICRP 110 CD readme), not in the organ list
    out.setdefault(141, ("Skin, top and bottom slice", 27, 1.09))
    return out


@functools.lru_cache(maxsize=4)
def load_media(phantom: str, data_dir: str | None = None) -> dict[int, tuple[str, dict[int, float]]]:
    """media id -> (name, {Z: mass fraction}) from ``*_media.dat``."""
    p = _check(phantom)
    out = {}
    for line in (icrp110_dir(data_dir) / f"{p}_media.dat").read_text(errors="replace").splitlines():
        m = re.match(r"^\s*(\d+)\s+(.*?)\s+((?:\d+\.\d+\s*){13})\s*$", line)
        if not m:
            continue
        vals = [float(v) for v in m.group(3).split()]
        s = sum(vals)
        out[int(m.group(1))] = (m.group(2).strip(), {z: v / s for z, v in zip(ELEMENTS_Z, vals, strict=False) if v > 0})
    return out


def mass_attenuation_cm2_g(fractions: dict[int, float], energy_kev: float = EFFECTIVE_ENERGY_KEV) -> float:
    """Total mass attenuation (cm2/g, coherent included) of a mixture from xraylib's ``CS_Total``."""
    try:
        import xraylib
    except ImportError as exc:  # pragma: no cover - xraylib is a project dependency
        raise RuntimeError("xraylib is needed for ICRP-110 CT synthesis (pip install xraylib)") from exc
    return float(sum(f * xraylib.CS_Total(int(z), float(energy_kev)) for z, f in fractions.items()))


def hu_of(density_g_cm3: float, fractions: dict[int, float], energy_kev: float = EFFECTIVE_ENERGY_KEV) -> float:
    mu_w = mass_attenuation_cm2_g(WATER_FRACTIONS, energy_kev) * 1.0
    return 1000.0 * (density_g_cm3 * mass_attenuation_cm2_g(fractions, energy_kev) / mu_w - 1.0)


@functools.lru_cache(maxsize=8)
def organ_hu_table(phantom: str, energy_kev: float = EFFECTIVE_ENERGY_KEV, data_dir: str | None = None) -> np.ndarray:
    """Look-up table organ id -> HU (physics only, no realism adjustments); id 0 (outside) = -1000."""
    organs, media = load_organs(phantom, data_dir), load_media(phantom, data_dir)
    lut = np.full(max(organs) + 1, -1000.0, np.float32)
    for oid, (_, mid, rho) in organs.items():
        lut[oid] = hu_of(rho, media[mid][1], energy_kev)
    return lut


# --- landmarks ------------------------------------------------------------------------------------------

def _z_extent(ids: np.ndarray, group: tuple[int, ...], dz: float) -> tuple[float, float]:
    """(lowest, highest) slice-centre z (mm) holding any voxel of the group."""
    ks = np.nonzero(np.isin(ids, group).any(axis=(1, 2)))[0]
    if not len(ks):
        raise ValueError(f"organ group {group} not found in the phantom")
    return float(ks[0] * dz), float(ks[-1] * dz)


@functools.lru_cache(maxsize=4)
def landmarks_mm(phantom: str, data_dir: str | None = None) -> dict[str, float]:
    """z (mm, LPS, 0 = lowest slice) of every ``labels.LANDMARKS`` name, derived from the organ maps.

    Definitions (slice centres; voxel height 8 mm AM, 4.84 mm AF): vertex / sole = highest / lowest slice
    with tissue; orbit roof / floor = top / bottom of the eye bulbs; skull base = bottom of the brain
    (foramen magnum); hard palate = top of the teeth; mandible bottom; thyroid top / bottom; C7 = bottom of
    the cervical spine + 8 mm; lung apex / base; shoulder top = top of the humeral heads, shoulder bottom =
    that - 45 mm (lower margin of the glenohumeral joint); carina = bottom of the trachea; heart top /
    bottom; breast top / bottom; diaphragm dome = top of the liver; kidney top / bottom; lowest rib = bottom
    of the ribs; L3 = middle of the lumbar spine; iliac crest = top of the pelvic bones; femoral head top =
    top of the femora, femoral heads = that - 22 mm; pubic symphysis = mean z of pelvic bone within 15 mm
    of the midline anterior to the body centre; ischial tuberosity = bottom of the pelvic bones; knees =
    bottom of the femora; ankles = bottom of the tibiae; sole.
    Where the phantom's anatomy breaks the head-to-feet order of ``LANDMARKS`` (AM: C7 / thyroid top, shoulder
    top / lung apex, kidney bottom / L3; AF also breast top / heart top: up to 2.4 cm), the order is restored
    by isotonic regression (violating neighbours pooled to their mean); ``landmarks_raw_mm`` keeps the raw
    values.
    """
    p = _check(phantom)
    ids, aff = load_organ_ids(p, data_dir)
    dz = float(aff[2, 2])
    dx = float(aff[0, 0])
    e = {k: _z_extent(ids, g, dz) for k, g in IDS.items() if k not in ("blood", "arms", "lung_tissue", "spleen")}
    body = np.nonzero((ids > 0).any(axis=(1, 2)))[0]
    # pubic symphysis: pelvic bone near the midline, anterior half of the body
    zz, yy, xx = np.nonzero(np.isin(ids, IDS["pelvis"]))
    xc = 0.5 * (xx.min() + xx.max())
    body_y = np.nonzero(ids[int(np.median(zz))] > 0)[0]
    yc = 0.5 * (body_y.min() + body_y.max())
    sel = (np.abs(xx - xc) * dx <= 15.0) & (yy < yc)
    pubic = float(zz[sel].mean() * dz) if sel.any() else e["pelvis"][0] + 40.0
    lm = {
        "vertex": float(body[-1] * dz), "orbit_roof": e["eyes"][1], "orbit_floor": e["eyes"][0],
        "skull_base": e["brain"][0], "hard_palate": e["teeth"][1], "mandible_bottom": e["mandible"][0],
        "thyroid_top": e["thyroid"][1], "c7": e["cervical_spine"][0] + 8.0, "thyroid_bottom": e["thyroid"][0],
        "lung_apex": e["lungs"][1], "shoulder_top": e["humeri_upper"][1],
        "shoulder_bottom": e["humeri_upper"][1] - 45.0, "carina": e["trachea"][0], "heart_top": e["heart"][1],
        "breast_top": e["breast"][1], "diaphragm_dome": e["liver"][1], "breast_bottom": e["breast"][0],
        "heart_bottom": e["heart"][0], "lung_base": e["lungs"][0], "kidney_top": e["kidneys"][1],
        "lowest_rib": e["ribs"][0], "l3": 0.5 * sum(e["lumbar_spine"]), "kidney_bottom": e["kidneys"][0],
        "iliac_crest": e["pelvis"][1], "femoral_head_top": e["femora_upper"][1],
        "femoral_heads": e["femora_upper"][1] - 22.0, "pubic_symphysis": pubic,
        "ischial_tuberosity": e["pelvis"][0], "knees": e["femora_lower"][0], "ankles": e["tibiae"][0],
        "sole": float(body[0] * dz),
    }
    _RAW[(p, data_dir)] = dict(lm)
    z = _isotonic_decreasing([lm[n] for n in LANDMARKS])
    return {n: round(float(v), 2) for n, v in zip(LANDMARKS, z, strict=False)}


_RAW: dict = {}


def landmarks_raw_mm(phantom: str, data_dir: str | None = None) -> dict[str, float]:
    """The landmark z values before the order is enforced."""
    landmarks_mm(phantom, data_dir)
    return dict(_RAW[(_check(phantom), data_dir)])


def _isotonic_decreasing(values) -> list[float]:
    """Least-squares non-increasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, count]
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            m2, c2 = blocks.pop()
            m1, c1 = blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    return [m for m, c in blocks for _ in range(int(c))]


def arms_present_per_slice(phantom: str, data_dir: str | None = None) -> np.ndarray:
    """Per native slice: any arm tissue (skin, muscle, bone, vessels, fat, nodes, cartilage of the arms)."""
    ids, _ = load_organ_ids(phantom, data_dir)
    return np.isin(ids, IDS["arms"]).sum(axis=(1, 2)) >= 4


# --- organ labels ---------------------------------------------------------------------------------------

BONE_IDS = tuple(range(13, 57)) + (128,)  # skeleton (cortical, spongiosa, medullary cavities) and teeth
# ICRP-110 organ id(s) -> ALL_ORGANS name (identical numbering in AM and AF). Choices:
# * bones: every skeletal id, cortical + spongiosa + medullary cavity (13-56), and the teeth (128, mineralised
#   and bone-dense on CT, so a bone-window model cannot tell them apart); cartilage (57-60) is not bone (about
#   100 HU) and is left out. The femoral heads are carved out of "Femora, upper half" (``_femoral_heads``) and
#   carry their own label.
# * hollow organs include their contents: heart = wall + blood; stomach, small intestine, colon (ascending,
#   transverse right/left, descending, sigmoid), gallbladder, urinary bladder = wall + contents; rectum = wall
#   (ICRP-110 has no rectal contents id).
# * kidneys = cortex + medulla + pelvis of both; lungs = tissue + blood of both (the ICRP lungs exclude the
#   bronchi, id 8, which stay unlabelled); eyes = eye bulbs, lenses = eye lenses (``eyes`` contains ``lenses``:
#   ``labels.organ_mask``); adrenals = left + right.
# * trachea = id 7 (the bronchi, id 8, are not trachea); pituitary gland = 114.
# Absent: aorta and inferior vena cava (ICRP-110 has one "Blood vessels, trunk" id in which the two touch each
# other and the iliac / renal / mediastinal vessels on many slices: no credible split was found, so both stay
# unlabelled rather than wrong); gi_tract (in CorpusCT the duodenum, see ``anatomy.py``; ICRP-110 has none).
# Derived: optic nerves, a geometric model (``_optic_nerves``).
ORGAN_MAP: dict[str, tuple[int, ...]] = {
    "liver": (95,), "heart": (87, 88), "pancreas": (113,), "bones": BONE_IDS,
    "kidneys": (89, 90, 91, 92, 93, 94), "spleen": (127,), "urinary_bladder": (137, 138), "esophagus": (110,),
    "lungs": (96, 97, 98, 99), "spinal_cord": (126,), "gallbladder": (70, 71), "adrenal_glands": (1, 2),
    "colon": tuple(range(76, 86)), "rectum": (86,), "small_intestine": (74, 75), "stomach": (72, 73),
    "thymus": (131,), "eyes": (67, 69), "brain": (61,), "lenses": (66, 68), "pituitary_gland": (114,),
    "trachea": (7,),
}
FEMORAL_HEAD_RADIUS_MM = {"AM": 24.0, "AF": 21.5}  # ICRP 89-like adult femoral head radii (diameter 48 / 43 mm)
OPTIC_NERVE_RADIUS_MM = 2.0


def organ_id_lut() -> np.ndarray:
    """ICRP-110 organ id -> ALL_ORGANS id (0 = no organ label), before the derived structures."""
    lut = np.zeros(256, np.uint8)
    for name, group in ORGAN_MAP.items():
        lut[list(group)] = ORGAN_BY_NAME[name].id
    return lut


def _femoral_heads(ids: np.ndarray, aff: np.ndarray, radius_mm: float) -> np.ndarray:
    """Mask of the two femoral heads: the part of "Femora, upper half" (28-30) within a sphere of
    ``radius_mm`` about each head centre. Centre: start at the top of each femur (per side of the body
    midline), radius_mm below it, above the centroid of the femur's top 15 mm; then three times moved to the
    centroid of the femur voxels within the sphere (the head is round, the neck and trochanter lie lateral
    and below, so the centroid stays in the head)."""
    dz, dy, dx = float(aff[2, 2]), float(aff[1, 1]), float(aff[0, 0])
    fem = np.isin(ids, (28, 29, 30))
    out = np.zeros(ids.shape, bool)
    k, j, i = np.nonzero(fem)
    pts = np.stack([k * dz, j * dy, i * dx], axis=1)
    xmid = 0.5 * (i.min() + i.max()) * dx
    for side in (pts[:, 2] < xmid, pts[:, 2] >= xmid):
        p = pts[side]
        top = p[:, 0].max()
        c = np.r_[top - radius_mm, p[p[:, 0] >= top - 15.0, 1:].mean(axis=0)]
        for _ in range(3):
            inside = ((p - c) ** 2).sum(axis=1) <= radius_mm ** 2
            c = p[inside].mean(axis=0)
            c[0] = min(c[0], top - 0.8 * radius_mm)
        sel = p[((p - c) ** 2).sum(axis=1) <= radius_mm ** 2]
        out[np.round(sel[:, 0] / dz).astype(int), np.round(sel[:, 1] / dy).astype(int),
            np.round(sel[:, 2] / dx).astype(int)] = True
    return out


def _optic_nerves(ids: np.ndarray, aff: np.ndarray, radius_mm: float = OPTIC_NERVE_RADIUS_MM) -> np.ndarray:
    """Geometric model of the optic nerves (ICRP-110 has none): per eye, a straight tube of ``radius_mm``
    (about 4 mm diameter) from the posterior pole of the eye bulb (its centroid moved posteriorly by the
    bulb's AP half-depth) to the optic chiasm, placed 10 mm above the pituitary gland's centroid and 5 mm to
    that eye's side. A voxel belongs to the tube when its slab (its full slice thickness) comes within
    ``radius_mm`` of the axis, so that the nearly horizontal nerve is continuous on 5-8 mm slices. Only
    voxels without another organ label and not bone are labelled (orbital fat and muscle, not the optic canal's
    bone or the brain)."""
    dz, dy, dx = float(aff[2, 2]), float(aff[1, 1]), float(aff[0, 0])
    out = np.zeros(ids.shape, bool)
    pit = np.argwhere(ids == 114)
    if not len(pit):
        return out
    pit_c = pit.mean(axis=0) * (dz, dy, dx)
    for bulb in (67, 69):
        e = np.argwhere(ids == bulb) * (dz, dy, dx)
        if not len(e):
            continue
        ec = e.mean(axis=0)
        a = np.array([ec[0], e[:, 1].max(), ec[2]])  # posterior pole (rows run anterior -> posterior)
        b = pit_c + (10.0, 0.0, 5.0 * np.sign(ec[2] - pit_c[2]))
        lo = np.floor((np.minimum(a, b) - radius_mm - (dz, dy, dx)) / (dz, dy, dx)).astype(int)
        hi = np.ceil((np.maximum(a, b) + radius_mm + (dz, dy, dx)) / (dz, dy, dx)).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, ids.shape)
        kk, jj, ii = np.meshgrid(*[np.arange(lo[d], hi[d]) for d in range(3)], indexing="ij")
        q = np.stack([kk * dz, jj * dy, ii * dx], axis=-1)
        ab = b - a
        t = np.clip(((q - a) @ ab) / float(ab @ ab), 0.0, 1.0)
        d = q - (a + t[..., None] * ab)
        d[..., 0] = np.maximum(np.abs(d[..., 0]) - dz / 2.0, 0.0)  # slab: any point of the slice thickness
        tube = (d ** 2).sum(axis=-1) <= radius_mm ** 2
        out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= tube
    return out


@functools.lru_cache(maxsize=2)
def organ_labels(phantom: str, data_dir: str | None = None) -> np.ndarray:
    """ALL_ORGANS ids (uint8, (z, y, x)) on the native grid of AM or AF (cached; treat as read-only).

    ``ORGAN_MAP`` maps the ICRP organ ids; the femoral heads (``_femoral_heads``, radius
    ``FEMORAL_HEAD_RADIUS_MM``) are carved out of the upper femora (their voxels are labelled femoral_heads,
    not bones) and the optic nerves are the geometric model of ``_optic_nerves``. Aorta, inferior vena cava and
    gi_tract are absent (see ``ORGAN_MAP``)."""
    ph = _check(phantom)
    ids, aff = load_organ_ids(ph, data_dir)
    lab = organ_id_lut()[ids]
    lab[_femoral_heads(ids, aff, FEMORAL_HEAD_RADIUS_MM[ph])] = ORGAN_BY_NAME["femoral_heads"].id
    nerve = _optic_nerves(ids, aff) & (lab == 0)
    lab[nerve] = ORGAN_BY_NAME["optic_nerves"].id
    lab.flags.writeable = False
    return lab


# --- CT synthesis ----------------------------------------------------------------------------------------

@dataclass
class SynthesisParams:
    """Variation and scan settings of one synthetic CT from an ICRP-110 phantom (defaults: the reference
    body, unenhanced, 5 mm slices). ``z_range_mm``: (bottom, top) of the scan in scaled-phantom z (None: the
    whole body). Scales are relative to the reference body: ``scale_lr`` / ``scale_ap`` in-plane (build),
    ``scale_z`` height."""

    seed: int = 0
    scale_lr: float = 1.0
    scale_ap: float = 1.0
    scale_z: float = 1.0
    deform_mm: float = 0.0  # amplitude of a smooth random in-plane displacement field
    z_range_mm: tuple[float, float] | None = None
    slice_thickness_mm: float = 5.0
    pixel_mm: float = 2.0
    matrix: int = 256
    contrast: str = "none"  # none | arterial | portal
    lung_hu: float = -820.0  # inflated lung parenchyma (the ICRP medium is compressed lung, about -630 HU)
    hu_jitter: float = 6.0  # SD of per-organ HU offsets
    hu_offset: float = 0.0  # scanner calibration offset
    texture_hu: float = 8.0  # SD of smooth organ texture
    psf_fwhm_mm: float = 1.0
    noise_hu: float = 12.0
    table: bool = True
    energy_kev: float = EFFECTIVE_ENERGY_KEV
    calibrate_hu: bool = False  # shift organ groups to ct-realism.md means (``REALISM_HU``) before the jitter


@dataclass
class SyntheticCT:
    phantom: str
    params: SynthesisParams
    ct: CTVolume
    landmarks_mm: dict[str, float]
    body_parts: list[list[str]]
    arms_present: np.ndarray
    sex: str
    height_cm: float
    weight_kg: float
    organs: np.ndarray | None = None  # ALL_ORGANS ids (uint8) on the scan grid (``organ_labels`` resampled)
    extras: dict = field(default_factory=dict)


# Unenhanced means of ct-realism.md for groups whose physics HU (65 keV, ICRP densities) is off by more than a
# few HU (liver 44 -> 55, fat -81 -> -100, ...): ``calibrate_hu`` shifts each group's ids by target - mean.
REALISM_HU = {"liver": ((95,), 55.0), "spleen": ((127,), 45.0), "kidneys": (IDS["kidneys"], 30.0),
              "pancreas": ((113,), 40.0), "muscle": ((106, 107, 108, 109), 45.0),
              "fat": ((62, 64, 116, 117, 118, 119), -100.0), "blood": ((9, 10, 11, 12, 88, 96, 98), 40.0),
              "bile_urine": ((71, 138), 5.0)}

CONTRAST_HU = {  # offsets added to the unenhanced HU (ct-realism.md table)
    "arterial": {"blood": 300.0, "liver": 15.0, "spleen": 85.0, "kidneys": 150.0},
    "portal": {"blood": 130.0, "liver": 55.0, "spleen": 75.0, "kidneys": 120.0},
}


def realistic_hu_table(phantom: str, p: SynthesisParams, rng: np.random.Generator) -> np.ndarray:
    """Organ id -> HU with the realism adjustments of ``p`` (lung inflation, jitter, contrast, offset)."""
    lut = organ_hu_table(phantom, p.energy_kev).copy()
    if p.calibrate_hu:
        for group, target in REALISM_HU.values():
            lut[list(group)] += target - float(lut[list(group)].mean())
    lut[list(IDS["lung_tissue"])] = p.lung_hu
    jitter = rng.normal(0.0, p.hu_jitter, lut.shape).astype(np.float32)
    jitter[0] = 0.0
    lut += jitter
    for group, dhu in CONTRAST_HU.get(p.contrast, {}).items():
        lut[list(IDS[group])] += dhu * rng.uniform(0.8, 1.2)
    lut[1:] += p.hu_offset
    return lut


def _smooth_noise(shape, sigma_px, rng) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px)
    return f / max(float(f.std()), 1e-6)


def synthesize_ct(phantom: str, p: SynthesisParams | None = None, data_dir: str | None = None, *,
                  with_organs: bool = True, native_labels: np.ndarray | None = None) -> SyntheticCT:
    """A CT-like volume of AM or AF scaled and deformed per ``p``, on a standard axial grid (head-first slices,
    matrix x matrix pixels of ``pixel_mm`` centred on the body), with its landmarks, body parts and (unless
    ``with_organs`` is False) its ALL_ORGANS label map ``organs`` on the same grid; ``native_labels`` (a label
    map on the phantom's voxel grid) replaces the organ labels: it is resampled through the HU's coordinates."""
    p = p or SynthesisParams()
    ph = _check(phantom)
    rng = np.random.default_rng(p.seed)
    ids, aff = load_organ_ids(ph, data_dir)
    nz, ny, nx = ids.shape
    dz, dy, dx = float(aff[2, 2]), float(aff[1, 1]), float(aff[0, 0])
    hu_native = realistic_hu_table(ph, p, rng)[ids]
    if p.texture_hu > 0:  # smooth organ texture on a coarse grid (~15 mm), inside the body only
        coarse = _smooth_noise((max(nz // 3, 2), max(ny // 6, 2), max(nx // 6, 2)), 1.0, rng)
        tex = ndimage.zoom(coarse, (nz / coarse.shape[0], ny / coarse.shape[1], nx / coarse.shape[2]), order=1)
        hu_native += (p.texture_hu * tex[:nz, :ny, :nx]) * (ids > 0)
    # scan grid, in scaled-phantom coordinates (z = 0 at the soles, same as the phantom)
    lm0 = landmarks_mm(ph, data_dir)
    top = (nz - 1) * dz * p.scale_z
    z_lo, z_hi = p.z_range_mm if p.z_range_mm else (0.0, top)
    z_lo, z_hi = max(z_lo, 0.0), min(z_hi, top)
    t = p.slice_thickness_mm
    zs = np.arange(z_hi, z_lo - 1e-6, -t)  # head-first
    if len(zs) < 1:
        raise ValueError("empty scan range")
    body_xy = np.argwhere((ids > 0).any(axis=0))
    cy, cx = body_xy.mean(axis=0) * (dy, dx)
    half = (p.matrix - 1) / 2.0 * p.pixel_mm
    ys = np.linspace(-half, half, p.matrix)
    xs = np.linspace(-half, half, p.matrix)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    # phantom in-plane coordinates (mm) of the scan pixels: scaled about the body centre + deformation
    py = cy + yy / p.scale_ap
    px = cx + xx / p.scale_lr
    if p.deform_mm > 0:
        s = p.matrix / 8.0
        py = py + p.deform_mm * _smooth_noise(yy.shape, s, rng)
        px = px + p.deform_mm * _smooth_noise(xx.shape, s, rng)
    n_sub = 3
    offs = (np.arange(n_sub) - (n_sub - 1) / 2) * (t / n_sub)
    out = np.empty((len(zs), p.matrix, p.matrix), np.float32)
    organs = np.zeros((len(zs), p.matrix, p.matrix), np.uint8) if with_organs else None
    lab_native = (organ_labels(ph, data_dir) if native_labels is None else native_labels) if with_organs else None
    for k, z in enumerate(zs):
        acc = np.zeros((p.matrix, p.matrix), np.float32)
        for o in offs:
            kz = np.full(yy.shape, (z + o) / p.scale_z / dz)
            acc += ndimage.map_coordinates(hu_native, [kz, py / dy, px / dx], order=1, mode="constant",
                                           cval=-1000.0)
        out[k] = acc / n_sub
        if with_organs:  # nearest neighbour at the slab centre, through the same coordinates as the HU
            kz = np.full(yy.shape, z / p.scale_z / dz)
            organs[k] = ndimage.map_coordinates(lab_native, [kz, py / dy, px / dx], order=0, mode="constant",
                                                cval=0)
    if p.table:
        y_table = (float(((ids > 0).any(axis=(0, 2))).nonzero()[0].max()) * dy - cy) * p.scale_ap + 8.0
        j = int(round((y_table + half) / p.pixel_mm))
        if 0 <= j < p.matrix - 2:
            out[:, j:j + 2, :] = np.maximum(out[:, j:j + 2, :], 150.0)
    if p.psf_fwhm_mm > 0:
        out = ndimage.gaussian_filter(out, (0, p.psf_fwhm_mm / 2.355 / p.pixel_mm, p.psf_fwhm_mm / 2.355 / p.pixel_mm))
    if p.noise_hu > 0:
        n = ndimage.gaussian_filter(rng.standard_normal(out.shape).astype(np.float32), (0, 0.7, 0.7))
        out += p.noise_hu * n / max(float(n.std()), 1e-6)
    # geometry: standard axial, head-first (slice step -t), origin at the first (top) slice
    origin = (cx - half, cy - half, float(zs[0]))  # x, y scan origin relative to scaled body centre
    affine = axial_affine((-t, p.pixel_mm, p.pixel_mm), origin)
    ref = REFERENCE_BODY[ph]
    weight = ref["weight_kg"] * p.scale_lr * p.scale_ap * p.scale_z
    height = ref["height_cm"] * p.scale_z
    meta = CTMetadata(series_description=f"ICRP-110 {ph} synthetic", slice_thickness_mm=t, kvp=120.0,
                      patient_sex=ref["sex"], patient_weight_kg=round(weight, 1), convolution_kernel="synthetic")
    ct = CTVolume(out, affine, meta)
    lm = {k: v * p.scale_z for k, v in lm0.items()}
    arms_native = arms_present_per_slice(ph, data_dir)
    arms = arms_native[np.clip(np.round(zs / p.scale_z / dz).astype(int), 0, nz - 1)]
    parts = body_parts_per_slice(zs, lm, arms)
    return SyntheticCT(ph, p, ct, lm, parts, arms, ref["sex"], round(height, 1), round(weight, 1), organs=organs)


def random_params(rng: np.random.Generator, **fixed) -> SynthesisParams:
    """Random variation for training: build 0.85-1.35 (LR, AP), height 0.9-1.1, deformation, thickness 1-5 mm,
    contrast, noise, kernel blur, lung density, scanner offset, random field of view along z."""
    build = rng.uniform(0.85, 1.35)
    p = SynthesisParams(
        seed=int(rng.integers(1 << 31)), scale_lr=build * rng.uniform(0.95, 1.05),
        scale_ap=build * rng.uniform(0.9, 1.1), scale_z=rng.uniform(0.9, 1.1), deform_mm=rng.uniform(0, 6),
        slice_thickness_mm=float(rng.choice([1.0, 2.0, 3.0, 5.0])), contrast=str(rng.choice(["none", "arterial", "portal"])),
        lung_hu=rng.uniform(-900, -700), hu_jitter=rng.uniform(3, 10), hu_offset=rng.uniform(-10, 10),
        texture_hu=rng.uniform(5, 15), psf_fwhm_mm=rng.uniform(0.6, 1.5), noise_hu=rng.uniform(8, 40),
        table=bool(rng.random() < 0.7))
    for k, v in fixed.items():
        setattr(p, k, v)
    return p
