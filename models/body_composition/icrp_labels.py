"""Body-composition ground truth for the ICRP-110 adult reference phantoms (AM, AF).

``body_composition_labels(phantom)`` maps every voxel of the ICRP-110 organ-id array to one of the 7
``operators.common.labels.BODY_COMPOSITION`` classes (uint8, (z, y, x) on the native phantom grid, 0 = outside
the body). The rules follow the procedural phantom (models/phantoms/tissues.py), which the network is trained
on, so that both label sources mean the same thing; where the paper (papers/body-composition-3d-unet.txt,
section 2.2) differs, the procedural convention wins and the difference is stated below.

Organ ids -> class (identical numbering in AM and AF, ICRP 110 Annex A; ``CLASS_IDS``):

* skin (1): skin of head, trunk, arms, legs (122-125) and the top / bottom skin slice (141).
* bone (2): every skeletal id 13-56 (cortical, spongiosa and the fatty medullary cavities: marrow is bone),
  teeth (128) and cartilage (57-60; the paper's bone mask holds the laryngeal and rib cartilages).
* muscle (3): skeletal muscle of head, trunk, arms, legs (106-109), the tongue (133) and the oral mucosa
  (5, 6: ICRP gives them muscle tissue), salivary glands (120, 121: the paper puts the submandibular /
  salivary glands in the muscle mask because they cannot be told apart from muscle).
* central nervous system (7): brain (61), spinal cord (126) and the rest of the spinal canal: ICRP-110 has no
  CSF id and fills the canal around and below the cord with residual (adipose) tissue and, in places (AF
  lumbar), "muscle, trunk"; every non-bone voxel of the canal is CNS here (the paper's CNS mask is "the spinal
  canal"; the procedural phantom's CSF is CNS). Canal = the holes of the vertebral bone (``SPINE`` ids, closed
  with a 3 mm disc) per slice. The eyes stay with internal organs, as in the procedural phantom (the paper's
  CNS mask holds the eyeballs).
* internal organs and vessels (6): every other organ id: organs, walls and contents of the hollow organs
  (GI contents 73, 75, ..., urine 138), all blood-vessel ids (head, trunk, arms, legs), lymph nodes, glands,
  eyes, breast glandular tissue, the lungs (tissue and blood) and the air-filled airways and "air inside body"
  (7, 8, 3, 4, 140). Lungs and gas go to IO as in the procedural phantom (there ``lung``, ``airway``,
  ``sinus_air`` and bowel gas are IO); the paper leaves lungs and airways out of all seven masks.
* fat: the ids whose medium is adipose tissue by composition and density (``fat_ids``: carbon mass fraction
  >= 0.45 and density < 1.0 g/cm3, skeletal ids excluded: their fatty medium is yellow marrow). In ICRP-110
  these are the four "residual tissue" ids (116-119, head / trunk / arms / legs) and the breast adipose tissue
  (62, 64). ICRP-110 assigns all residual tissue the adipose medium (49, 0.95 g/cm3); the media table has
  no mixed lean/fat residual medium, so no residual voxel is lean. Breast glandular tissue (medium 48,
  1.02 g/cm3) is not fat by that rule and is IO (the paper and the procedural phantom put breast tissue
  in IO and breast fat with SF). Each fat voxel is then split by position:

  - subcutaneous fat (5): fat outside the muscle envelope (between the skin and the muscle layer) anywhere:
    trunk, limbs, head and neck, breast fat.
  - abdominal visceral fat (4): fat inside the envelope of the trunk, within [pelvic floor, diaphragm dome] in
    z, below the diaphragm surface (below the lowest lung or heart voxel of its (y, x) column) and not
    pericardial, i.e. peritoneal and retroperitoneal fat. ICRP-110 has no diaphragm (the liver touches the
    lungs, the heart rests on liver and stomach with residual tissue between), so pericardial fat is told
    apart explicitly: fat within ``PERICARDIAL_MM`` of the heart, or whose first non-fat voxel upwards in its
    column is heart (the fat pad under the heart), is thoracic. Pelvic floor = ischial tuberosity + 0.3
    (pubic symphysis - ischial tuberosity) (``pelvic_floor_mm``), the procedural phantom's levator sling
    level (0.493 of the height, between 0.488 and 0.505).
  - internal organs and vessels (6): the remaining fat inside the envelope (mediastinal, epicardial and
    pericardial fat above the diaphragm, orbital and deep neck fat, intermuscular fat of the limbs, fat of
    the pelvis below the pelvic floor and the perineum inside the envelope), as ``labels.BODY_COMPOSITION``
    and the procedural phantom's ``internal_fat`` define it. The paper instead merges intermuscular and
    intrathoracic fat into SF.

The muscle envelope (``muscle_envelope``), per axial slice and per body region (ICRP separates head, trunk,
arms and legs into their own skin / muscle / residual ids, so the arms never merge with the trunk): the
region's muscle and bone, with the trunk's internal organs (not vessels, lymph nodes or breast) and the head's
brain and eyes as well, closed with a disc of ``CLOSING_MM`` radius (bridges gaps in the abdominal wall such
as the linea alba, about 2 cm wide in AM; scipy.ndimage Euclidean distance transforms), holes filled per slice.
Everything inside the filled outline is inside the envelope. The closing is a rolling ball: where the outer surface of the muscle is concave by less than the
disc, the envelope runs across the concavity, so a few mm of fat there count as inside (AVF at the waist).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from models.phantoms import icrp110
from operators.common.labels import BODY_COMPOSITION
from operators.common.morphology import INPLANE_4, disk

ID = {lab.name: lab.id for lab in BODY_COMPOSITION}

SKELETON = icrp110.BONE_IDS
CARTILAGE = (57, 58, 59, 60)
CLASS_IDS: dict[str, tuple[int, ...]] = {
    "skin": (122, 123, 124, 125, 141),
    "bone": SKELETON + CARTILAGE,
    "muscle": (106, 107, 108, 109, 133, 5, 6, 120, 121),
    "central_nervous_system": (61, 126),
}
# Per body region: the muscle and bone ids that make the region's envelope, and its residual (fat) id.
REGION_LEAN = {
    "head": (106, 133, 5, 6, 120, 121, 26, 27, 39, 40, 47, 48, 128, 57, 61, 67, 69),  # + brain, eyes
    "trunk": (107, 24, 25, 41, 42, 43, 44, 45, 46, 49, 50, 51, 52, 53, 54, 55, 56, 58),
    "arms": (108, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 59),
    "legs": (109, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 60),
}
# Trunk internal organs that lie inside the muscle wall (help close the envelope where the wall is thin):
# adrenals, trachea, bronchi, heart, kidneys, liver, lungs, GI tract, bladder, pancreas, spleen, etc.
TRUNK_ORGANS = (1, 2, 7, 8, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90,
                91, 92, 93, 94, 95, 96, 97, 98, 99, 110, 111, 112, 113, 115, 126, 127, 131, 135, 136, 137, 138,
                139)
THORAX = (87, 88, 96, 97, 98, 99)  # heart, lungs: the diaphragm surface is the underside of these
HEART = (87, 88)
PERICARDIAL_MM = 10.0
SPINE = tuple(range(47, 55))  # cervical, thoracic, lumbar spine and sacrum (cortical + spongiosa)
CLOSING_MM = 15.0
PELVIC_FLOOR_FRACTION = 0.3


def fat_ids(phantom: str, data_dir: str | None = None) -> tuple[int, ...]:
    """ICRP organ ids whose medium is adipose tissue (carbon mass fraction >= 0.45, density < 1.0 g/cm3);
    skeletal ids (yellow marrow) excluded."""
    organs, media = icrp110.load_organs(phantom, data_dir), icrp110.load_media(phantom, data_dir)
    out = []
    for oid, (_, mid, rho) in sorted(organs.items()):
        if oid in SKELETON or mid not in media:
            continue
        if media[mid][1].get(6, 0.0) >= 0.45 and rho < 1.0:
            out.append(oid)
    return tuple(out)


def pelvic_floor_mm(landmarks: dict[str, float]) -> float:
    """z (mm) of the pelvic floor from the landmarks: ischial tuberosity + 0.3 (pubic symphysis - it)."""
    it, ps = landmarks["ischial_tuberosity"], landmarks["pubic_symphysis"]
    return float(it + PELVIC_FLOOR_FRACTION * (ps - it))


def _lut(group: tuple[int, ...] | list[int]) -> np.ndarray:
    lut = np.zeros(256, bool)
    lut[list(group)] = True
    return lut


def _closing_2d(m: np.ndarray, spacing_yx_mm: tuple[float, float], radius_mm: float) -> np.ndarray:
    """Per-slice binary closing of a (z, y, x) mask with a disc of ``radius_mm`` (Euclidean discs from 2-D
    distance transforms in mm, so anisotropic pixels are handled; about 3x faster than a disc structure)."""
    pad = int(np.ceil(radius_mm / min(spacing_yx_mm))) + 1
    out = np.zeros(m.shape, bool)
    for k in np.nonzero(m.any(axis=(1, 2)))[0]:
        mp = np.pad(m[k], pad)  # the dilation must not be clipped at the array border
        dil = ndimage.distance_transform_edt(~mp, sampling=spacing_yx_mm) <= radius_mm
        out[k] = (ndimage.distance_transform_edt(dil, sampling=spacing_yx_mm) > radius_mm)[pad:-pad, pad:-pad]
    return out


def muscle_envelope(ids: np.ndarray, spacing_yx_mm: tuple[float, float], closing_mm: float = CLOSING_MM
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(inside any region's envelope, inside the trunk's envelope): boolean (z, y, x) masks (module docstring):
    per region, its lean mask closed per slice with a disc of ``closing_mm`` radius, holes filled per slice."""
    any_env = np.zeros(ids.shape, bool)
    trunk_env = np.zeros(ids.shape, bool)
    for region, group in REGION_LEAN.items():
        m = _lut(group + (TRUNK_ORGANS if region == "trunk" else ()))[ids]
        ks = np.nonzero(m.any(axis=(1, 2)))[0]
        if not len(ks):
            continue
        sub = slice(ks[0], ks[-1] + 1)
        env = ndimage.binary_fill_holes(_closing_2d(m[sub], spacing_yx_mm, closing_mm), structure=INPLANE_4)
        any_env[sub] |= env
        if region == "trunk":
            trunk_env[sub] = env
    return any_env, trunk_env


def spinal_canal(ids: np.ndarray, spacing_yx_mm: tuple[float, float], closing_mm: float = 3.0) -> np.ndarray:
    """Per slice: the holes of the vertebral bone (``SPINE`` ids closed with a disc of ``closing_mm``)."""
    r = max(1, int(round(closing_mm / float(np.mean(spacing_yx_mm)))))
    se = disk(r)
    spine = _lut(SPINE)[ids]
    out = np.zeros(ids.shape, bool)
    for k in np.nonzero(spine.any(axis=(1, 2)))[0]:
        m = np.pad(spine[k], r + 1)
        closed = ndimage.binary_closing(m, structure=se)
        out[k] = (ndimage.binary_fill_holes(closed) & ~closed)[r + 1:-r - 1, r + 1:-r - 1]
    return out


def diaphragm_surface_index(ids: np.ndarray) -> np.ndarray:
    """Per (y, x) column: the lowest slice index holding lung or heart (nz where the column has none)."""
    thor = _lut(THORAX)[ids]
    has = thor.any(axis=0)
    low = np.argmax(thor, axis=0)  # first True from the feet up
    return np.where(has, low, ids.shape[0])


def pericardial(ids: np.ndarray, fat: np.ndarray, spacing_zyx_mm: tuple[float, float, float],
                distance_mm: float = PERICARDIAL_MM) -> np.ndarray:
    """Fat that belongs to the heart's surroundings: within ``distance_mm`` (3D) of the heart, or below the heart
    with only fat between (the first non-fat voxel upwards in its column is heart)."""
    heart = _lut(HEART)[ids]
    if not heart.any():
        return np.zeros(ids.shape, bool)
    # distance only in the heart's bounding box grown by distance_mm (the rest is farther by construction)
    idx = np.argwhere(heart)
    m = np.ceil(distance_mm / np.asarray(spacing_zyx_mm)).astype(int) + 1
    lo, hi = np.maximum(idx.min(axis=0) - m, 0), np.minimum(idx.max(axis=0) + m + 1, ids.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    near = np.zeros(ids.shape, bool)
    near[box] = ndimage.distance_transform_edt(~heart[box], sampling=spacing_zyx_mm) <= distance_mm
    under = np.zeros(ids.shape, bool)
    cur = np.zeros(ids.shape[1:], bool)  # per column: the next non-fat voxel above is heart
    for k in range(ids.shape[0] - 1, -1, -1):
        under[k] = cur
        cur = np.where(fat[k], cur, heart[k])
    return fat & (near | under)


def labels_from_ids(ids: np.ndarray, aff: np.ndarray, landmarks: dict[str, float], fat: tuple[int, ...],
                    closing_mm: float = CLOSING_MM) -> np.ndarray:
    """The 7-class map of an ICRP-110 organ-id array (``ids`` (z, y, x) with slices feet -> head, z = 0 mm at
    slice 0, affine ``aff``), its ``landmarks`` (z mm) and its adipose ids ``fat``."""
    dz, dy, dx = float(aff[2, 2]), float(aff[1, 1]), float(aff[0, 0])
    lut = np.full(256, ID["internal_organs"], np.uint8)
    lut[0] = 0
    for name, group in CLASS_IDS.items():
        lut[list(group)] = ID[name]
    out = lut[ids]
    is_fat = _lut(fat)[ids]
    env_any, env_trunk = muscle_envelope(ids, (dy, dx), closing_mm)
    z = np.arange(ids.shape[0]) * dz
    in_band = (z <= landmarks["diaphragm_dome"]) & (z >= pelvic_floor_mm(landmarks))
    below_diaphragm = np.arange(ids.shape[0])[:, None, None] < diaphragm_surface_index(ids)[None]
    avf = is_fat & env_trunk & in_band[:, None, None] & below_diaphragm & ~pericardial(ids, is_fat, (dz, dy, dx))
    out[is_fat & ~env_any] = ID["subcutaneous_fat"]
    out[is_fat & env_any] = ID["internal_organs"]
    out[avf] = ID["abdominal_visceral_fat"]
    out[spinal_canal(ids, (dy, dx)) & (out != ID["bone"])] = ID["central_nervous_system"]
    return out


@functools.lru_cache(maxsize=2)
def body_composition_labels(phantom: str, data_dir: str | None = None) -> np.ndarray:
    """BODY_COMPOSITION ids (uint8, (z, y, x)) on the native grid of ICRP-110 AM or AF (cached; read-only)."""
    ids, aff = icrp110.load_organ_ids(phantom, data_dir)
    out = labels_from_ids(ids, aff, icrp110.landmarks_mm(phantom, data_dir), fat_ids(phantom, data_dir))
    out.flags.writeable = False
    return out
