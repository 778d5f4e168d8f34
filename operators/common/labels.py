"""Label tables: the one place where CorpusCT's label sets are defined (DESIGN.md, Conventions).

Three label sets:

* ``ORGANS``: the 23 organs of the multi-organ Res-UNet paper (papers/multi-organ-resunet.txt), ids 1..23.
* ``ORGANS_EXTRA``: organs the radiomics organ-dose paper needs beyond those 23, ids 24..27 (lenses, optic
  nerves, pituitary gland, trachea). ``ALL_ORGANS = ORGANS + ORGANS_EXTRA`` is one id space: an organ label
  map (phantom ground truth, ICRP-110 labels) holds ALL_ORGANS ids.
* ``BODY_COMPOSITION``: the 7 tissue classes of the body-composition 3D U-Net paper, ids 1..7
  (0 = background / outside the body).
* ``BODY_PARTS``: the 24 named body parts predicted per axial slice by GrayNet
  (papers/graynet-range-selector.txt). Each is a craniocaudal interval between two anatomical
  ``LANDMARKS`` (plus an offset in mm), so that labels can be derived for any phantom whose landmark
  z positions are known. ``arms`` is the exception: it is present wherever arm tissue is in the slice.

Organ label maps hold one label per voxel, the most specific one: an organ that lies inside another
("container") organ keeps its own id, so the container's voxels are the union of its own id and those of the
organs it contains (``ORGAN_CONTAINS``; ``eyes`` contains ``lenses``). Always take organ masks through
``organ_mask(label_map, name)``, which returns that union, rather than comparing with a single id.

Coded concepts are SNOMED CT (scheme "SCT") as used in DICOM SEG / SR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCT = "SCT"


@dataclass(frozen=True)
class Code:
    value: str
    meaning: str
    scheme: str = SCT


# Segmentation category codes (DICOM CID 7150).
CATEGORY_ANATOMICAL_STRUCTURE = Code("91723000", "Anatomical Structure")
CATEGORY_TISSUE = Code("85756007", "Tissue")


@dataclass(frozen=True)
class Label:
    id: int
    name: str  # snake_case key used in results.json, file names and APIs
    display: str  # human-readable name
    category: Code
    code: Code
    rgb: tuple[int, int, int]


def _organ(i, name, display, value, meaning, rgb):
    return Label(i, name, display, CATEGORY_ANATOMICAL_STRUCTURE, Code(value, meaning), rgb)


ORGANS: tuple[Label, ...] = (
    _organ(1, "liver", "Liver", "10200004", "Liver", (221, 130, 101)),
    _organ(2, "heart", "Heart", "80891009", "Heart", (206, 110, 84)),
    _organ(3, "pancreas", "Pancreas", "15776009", "Pancreas", (249, 180, 111)),
    _organ(4, "bones", "Bones", "272673000", "Bone", (241, 214, 145)),
    _organ(5, "kidneys", "Kidneys", "64033007", "Kidney", (185, 102, 83)),
    _organ(6, "spleen", "Spleen", "78961009", "Spleen", (157, 108, 162)),
    _organ(7, "urinary_bladder", "Urinary bladder", "89837001", "Urinary bladder", (222, 154, 132)),
    _organ(8, "esophagus", "Esophagus", "32849002", "Esophagus", (211, 171, 143)),
    _organ(9, "femoral_heads", "Femoral heads", "2812003", "Femoral head", (255, 255, 0)),
    _organ(10, "lungs", "Lungs", "39607008", "Lung", (197, 165, 145)),
    _organ(11, "spinal_cord", "Spinal cord", "2748008", "Spinal cord", (244, 214, 49)),
    _organ(12, "aorta", "Aorta", "15825003", "Aorta", (224, 97, 76)),
    _organ(13, "gallbladder", "Gallbladder", "28231008", "Gallbladder", (139, 150, 98)),
    _organ(14, "adrenal_glands", "Adrenal glands", "23451007", "Adrenal gland", (249, 186, 150)),
    _organ(15, "inferior_vena_cava", "Inferior vena cava", "64131007", "Inferior vena cava", (0, 151, 206)),
    _organ(16, "colon", "Colon", "71854001", "Colon", (204, 168, 143)),
    _organ(17, "rectum", "Rectum", "34402009", "Rectum", (255, 192, 203)),
    _organ(18, "small_intestine", "Small intestine", "30315005", "Small intestine", (205, 167, 142)),
    _organ(19, "stomach", "Stomach", "69695003", "Stomach", (216, 132, 105)),
    _organ(20, "thymus", "Thymus", "9875009", "Thymus", (150, 200, 100)),
    _organ(21, "gi_tract", "Gastrointestinal tract", "122865005", "Gastrointestinal tract", (190, 140, 120)),
    _organ(22, "eyes", "Eyes", "81745001", "Eye", (194, 255, 194)),
    _organ(23, "brain", "Brain", "12738006", "Brain", (250, 250, 225)),
)


# Organs beyond the paper's 23 (radiomics organ-dose paper): ids continue after ORGANS.
ORGANS_EXTRA: tuple[Label, ...] = (
    _organ(24, "lenses", "Lenses", "78076003", "Lens of eye", (120, 220, 255)),
    _organ(25, "optic_nerves", "Optic nerves", "18234004", "Optic nerve", (255, 240, 120)),
    _organ(26, "pituitary_gland", "Pituitary gland", "56329008", "Pituitary gland", (255, 130, 200)),
    _organ(27, "trachea", "Trachea", "44567001", "Trachea", (182, 228, 255)),
)
ALL_ORGANS: tuple[Label, ...] = ORGANS + ORGANS_EXTRA

# Container organ -> organs inside it that carry their own (more specific) label in a label map.
ORGAN_CONTAINS: dict[str, tuple[str, ...]] = {"eyes": ("lenses",)}


def _tissue(i, name, display, value, meaning, rgb):
    return Label(i, name, display, CATEGORY_TISSUE, Code(value, meaning), rgb)


# Body composition (papers/body-composition-3d-unet.txt). Abdominal visceral fat (AVF) is fat inside the
# abdominal cavity from the diaphragm to the pelvic floor; fat elsewhere inside the body wall counts with
# internal organs and vessels (IO). Subcutaneous fat (SF) lies between skin and the muscle layer.
BODY_COMPOSITION: tuple[Label, ...] = (
    _tissue(1, "skin", "Skin", "39937001", "Skin", (255, 200, 160)),
    _tissue(2, "bone", "Bone", "272673000", "Bone", (241, 214, 145)),
    _tissue(3, "muscle", "Muscle", "127954009", "Skeletal muscle", (192, 64, 64)),
    _tissue(4, "abdominal_visceral_fat", "Abdominal visceral fat (AVF)", "55603005", "Fat", (255, 230, 0)),
    _tissue(5, "subcutaneous_fat", "Subcutaneous fat (SF)", "71966008", "Subcutaneous tissue", (255, 150, 0)),
    _tissue(6, "internal_organs", "Internal organs and vessels (IO)", "91772007", "Organ", (128, 64, 160)),
    _tissue(7, "central_nervous_system", "Central nervous system (CNS)", "21483005", "Central nervous system",
            (64, 160, 255)),
)


# Anatomical landmarks: z positions (mm, patient LPS z, superior positive) that a phantom (procedural or
# ICRP-110) or a model provides. Ordered from head to feet for a standing adult.
LANDMARKS: tuple[str, ...] = (
    "vertex",             # top of the skull
    "orbit_roof",         # upper margin of the orbits
    "orbit_floor",        # lower margin of the orbits
    "skull_base",         # foramen magnum / clivus level
    "hard_palate",
    "mandible_bottom",    # lower border of the mandible (chin)
    "thyroid_top",
    "c7",                 # vertebra prominens (body of C7)
    "thyroid_bottom",
    "lung_apex",
    "shoulder_top",       # top of the acromion / humeral head
    "shoulder_bottom",    # lower margin of the glenohumeral joint
    "carina",
    "heart_top",
    "breast_top",
    "diaphragm_dome",     # highest point of the right hemidiaphragm (liver dome)
    "breast_bottom",
    "heart_bottom",
    "lung_base",          # lowest point of the lungs (posterior costophrenic recess)
    "kidney_top",
    "lowest_rib",         # lower margin of the lowest (12th / 11th) rib: upper bound of the waist
    "l3",                 # middle of the L3 vertebral body
    "kidney_bottom",
    "iliac_crest",        # upper margin of the iliac crest: lower bound of the waist
    "femoral_head_top",   # acetabular roof
    "femoral_heads",      # centre of the femoral heads
    "pubic_symphysis",
    "ischial_tuberosity",
    "knees",              # knee joint line
    "ankles",             # ankle joint (talar dome)
    "sole",               # plantar surface of the feet
)


@dataclass(frozen=True)
class BodyPart:
    id: int
    name: str
    display: str
    # (landmark, offset_mm) bounds; None for presence-based parts (arms).
    inferior: tuple[str, float] | None
    superior: tuple[str, float] | None


BODY_PARTS: tuple[BodyPart, ...] = (
    BodyPart(1, "brain", "Brain", ("skull_base", 0.0), ("vertex", 0.0)),
    BodyPart(2, "skull_base", "Skull base", ("skull_base", -10.0), ("orbit_floor", 10.0)),
    BodyPart(3, "orbits", "Orbits", ("orbit_floor", 0.0), ("orbit_roof", 0.0)),
    BodyPart(4, "nasal_cavity", "Nasal cavity", ("hard_palate", 0.0), ("orbit_roof", -5.0)),
    BodyPart(5, "oral_cavity", "Oral cavity", ("mandible_bottom", 0.0), ("hard_palate", 0.0)),
    BodyPart(6, "neck", "Neck", ("lung_apex", 0.0), ("skull_base", 0.0)),
    BodyPart(7, "thyroid_level", "Thyroid level", ("thyroid_bottom", 0.0), ("thyroid_top", 0.0)),
    BodyPart(8, "shoulder", "Shoulder", ("shoulder_bottom", 0.0), ("shoulder_top", 10.0)),
    BodyPart(9, "upper_thorax", "Upper thorax", ("carina", 0.0), ("lung_apex", 0.0)),
    BodyPart(10, "heart", "Heart", ("heart_bottom", 0.0), ("heart_top", 0.0)),
    BodyPart(11, "lower_thorax", "Lower thorax", ("lung_base", 0.0), ("carina", 0.0)),
    BodyPart(12, "breast", "Breast", ("breast_bottom", 0.0), ("breast_top", 0.0)),
    BodyPart(13, "liver_dome", "Liver dome", ("lung_base", 0.0), ("diaphragm_dome", 0.0)),
    BodyPart(14, "upper_abdomen", "Upper abdomen", ("lowest_rib", 0.0), ("diaphragm_dome", 0.0)),
    BodyPart(15, "kidneys", "Kidneys", ("kidney_bottom", 0.0), ("kidney_top", 0.0)),
    BodyPart(16, "mid_abdomen", "Mid abdomen", ("iliac_crest", 0.0), ("lowest_rib", 0.0)),
    BodyPart(17, "lower_abdomen", "Lower abdomen", ("femoral_head_top", 0.0), ("iliac_crest", 0.0)),
    BodyPart(18, "pelvis", "Pelvis", ("ischial_tuberosity", 0.0), ("iliac_crest", 0.0)),
    BodyPart(19, "hips", "Hips", ("ischial_tuberosity", -20.0), ("femoral_head_top", 10.0)),
    BodyPart(20, "thigh", "Thigh", ("knees", 50.0), ("ischial_tuberosity", 0.0)),
    BodyPart(21, "knee", "Knee", ("knees", -50.0), ("knees", 50.0)),
    BodyPart(22, "lower_leg", "Lower leg", ("ankles", 30.0), ("knees", -50.0)),
    BodyPart(23, "ankle_foot", "Ankle and foot", ("sole", 0.0), ("ankles", 30.0)),
    BodyPart(24, "arms", "Arms", None, None),
)

# Private coding scheme for concepts that have no standard code (our 24 body parts, range quantities). It is
# declared in every SR that uses it (CodingSchemeIdentificationSequence).
PRIVATE_SCHEME = "99CORPUSCT"


def body_part_code(part: BodyPart) -> Code:
    return Code(f"BP{part.id:02d}", part.display, PRIVATE_SCHEME)


ORGAN_BY_NAME = {lab.name: lab for lab in ALL_ORGANS}
ORGAN_BY_ID = {lab.id: lab for lab in ALL_ORGANS}
BODY_COMPOSITION_BY_NAME = {lab.name: lab for lab in BODY_COMPOSITION}
BODY_PART_BY_NAME = {bp.name: bp for bp in BODY_PARTS}


def organ_ids(name: str) -> tuple[int, ...]:
    """Label ids whose voxels make up organ ``name``: its own id plus those of the organs it contains
    (recursively), e.g. ``eyes`` -> (22, 24)."""
    if name not in ORGAN_BY_NAME:
        raise KeyError(f"unknown organ {name!r}; known: {', '.join(ORGAN_BY_NAME)}")
    ids = [ORGAN_BY_NAME[name].id]
    for inner in ORGAN_CONTAINS.get(name, ()):
        ids.extend(organ_ids(inner))
    return tuple(ids)


def organ_mask(label_map, name: str):
    """Boolean mask of organ ``name`` in an ALL_ORGANS label map: the union of its own label and the labels
    of the organs inside it (``ORGAN_CONTAINS``: ``eyes`` includes ``lenses``)."""
    ids = organ_ids(name)
    lab = np.asarray(label_map)
    return lab == ids[0] if len(ids) == 1 else np.isin(lab, ids)


def body_part_interval_mm(part: BodyPart, landmarks_z_mm: dict[str, float]) -> tuple[float, float] | None:
    """(z_inferior, z_superior) in mm for an interval-defined body part, or None if presence-based or if a
    landmark it needs is unknown."""
    if part.inferior is None or part.superior is None:
        return None
    (lo_name, lo_off), (hi_name, hi_off) = part.inferior, part.superior
    if lo_name not in landmarks_z_mm or hi_name not in landmarks_z_mm:
        return None
    return landmarks_z_mm[lo_name] + lo_off, landmarks_z_mm[hi_name] + hi_off


def body_parts_per_slice(slice_z_mm, landmarks_z_mm: dict[str, float], arms_present=None) -> list[list[str]]:
    """Names of the body parts covering each slice centre (multi-label), from landmark z positions.

    ``arms_present``: optional per-slice booleans (arm tissue in the slice) for the presence-based part.
    """
    intervals = {bp.name: body_part_interval_mm(bp, landmarks_z_mm) for bp in BODY_PARTS}
    out: list[list[str]] = []
    for k, z in enumerate(slice_z_mm):
        names = [n for n, iv in intervals.items() if iv is not None and iv[0] <= z <= iv[1]]
        if arms_present is not None and arms_present[k]:
            names.append("arms")
        out.append(names)
    return out
