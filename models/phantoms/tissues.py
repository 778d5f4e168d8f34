"""Tissue table of the procedural phantom: the fine-grained labels the anatomy is painted with.

Every voxel of the phantom gets exactly one tissue id (uint8). Everything else is derived from it through
this table: HU (per contrast phase, texture amplitude), the organ label (``operators.common.labels.ALL_ORGANS``
name or None) and the body-composition class (``BODY_COMPOSITION`` name or None = background).

Organ labels hold the most specific organ per voxel: the lens is ``lenses`` (inside ``eyes``; take masks with
``labels.organ_mask``). Of the extra organs, the optic nerve is painted as ``soft_tissue`` and the trachea as
part of ``airway`` (nasopharynx to bronchi), and the phantom has no pituitary gland, so ``optic_nerves``,
``trachea`` and ``pituitary_gland`` are absent from procedural-phantom labels.

HU values follow /work/shared/notes/ct-realism.md (adult, 120 kVp). Age-dependent values (bone density,
marrow, thymus involution) are adjusted in ``synthesis.tissue_hu``.

Body-composition rules encoded here:

* skin (1): the outer rim of the body (one voxel at least, made by in-plane erosion of the body mask).
* bone (2): cortical and cancellous bone, marrow, teeth, cartilage and intervertebral discs.
* muscle (3): skeletal muscle, including the diaphragm, psoas, tongue and limb muscles.
* abdominal visceral fat (4): fat inside the abdominal cavity only (diaphragm to pelvic floor, inside the
  muscle ring), including retroperitoneal, perirenal and mesenteric fat.
* subcutaneous fat (5): fat between the skin and the muscle ring (trunk, limbs, head, breast fat).
* internal organs and vessels (6): organs, vessels, lungs, airway and bowel content, and fat that is
  inside the body wall but outside the abdominal cavity (mediastinal, epicardial, orbital fat).
* central nervous system (7): brain, spinal cord and the CSF around them.
"""

from __future__ import annotations

from dataclasses import dataclass

PHASES = ("none", "arterial", "portal")


@dataclass(frozen=True)
class Tissue:
    id: int
    name: str
    hu: tuple[float, float, float]  # mean HU for (none, arterial, portal)
    texture_hu: float  # amplitude of the smooth organ-internal variation (SD, HU)
    organ: str | None  # ALL_ORGANS name
    body_comp: str | None  # BODY_COMPOSITION name; None = outside the body


def _t(i, name, none, art=None, port=None, tex=8.0, organ=None, bc="internal_organs"):
    art = none if art is None else art
    port = none if port is None else port
    return Tissue(i, name, (float(none), float(art), float(port)), float(tex), organ, bc)


TISSUES: tuple[Tissue, ...] = (
    _t(0, "air", -1000, tex=0, bc=None),
    _t(1, "table_shell", 250, tex=20, bc=None),
    _t(2, "table_foam", -880, tex=10, bc=None),
    _t(3, "skin", 35, tex=6, bc="skin"),
    _t(4, "subcutaneous_fat", -102, tex=8, bc="subcutaneous_fat"),
    _t(5, "muscle", 45, 55, 60, tex=7, bc="muscle"),
    _t(6, "visceral_fat", -95, tex=10, bc="abdominal_visceral_fat"),
    _t(7, "internal_fat", -92, tex=10),
    _t(8, "cortical_bone", 1150, tex=120, organ="bones", bc="bone"),
    _t(9, "cancellous_bone", 260, tex=60, organ="bones", bc="bone"),
    _t(10, "marrow", -40, tex=25, organ="bones", bc="bone"),
    _t(11, "cartilage", 120, tex=15, bc="bone"),
    _t(12, "disc", 85, tex=8, bc="bone"),
    _t(13, "teeth", 2000, tex=200, organ="bones", bc="bone"),
    _t(14, "femoral_head_cortical", 1100, tex=120, organ="femoral_heads", bc="bone"),
    _t(15, "femoral_head_cancellous", 260, tex=60, organ="femoral_heads", bc="bone"),
    _t(16, "lung", -850, tex=25, organ="lungs"),
    _t(17, "lung_vessel", 40, 300, 170, tex=5, organ="lungs"),
    _t(18, "airway", -990, tex=5),
    _t(19, "heart_muscle", 45, 110, 100, tex=6, organ="heart"),
    _t(20, "heart_blood_left", 40, 320, 170, tex=4, organ="heart"),
    _t(21, "heart_blood_right", 40, 220, 165, tex=4, organ="heart"),
    _t(22, "aorta", 42, 330, 165, tex=4, organ="aorta"),
    _t(23, "ivc", 40, 90, 150, tex=4, organ="inferior_vena_cava"),
    _t(24, "artery", 42, 320, 165, tex=4),
    _t(25, "vein", 40, 110, 155, tex=4),
    _t(26, "liver", 55, 70, 110, tex=8, organ="liver"),
    _t(27, "liver_vessel", 40, 90, 170, tex=4, organ="liver"),
    _t(28, "gallbladder", 8, tex=4, organ="gallbladder"),
    _t(29, "spleen", 47, 130, 120, tex=8, organ="spleen"),
    _t(30, "kidney_cortex", 32, 200, 165, tex=6, organ="kidneys"),
    _t(31, "kidney_medulla", 30, 75, 150, tex=6, organ="kidneys"),
    _t(32, "adrenal", 30, 60, 65, tex=6, organ="adrenal_glands"),
    _t(33, "pancreas", 42, 110, 100, tex=12, organ="pancreas"),
    _t(34, "stomach_wall", 42, 80, 90, tex=6, organ="stomach"),
    _t(35, "stomach_content", 18, tex=12, organ="stomach"),
    _t(36, "stomach_gas", -990, tex=5, organ="stomach"),
    _t(37, "duodenum_wall", 42, 80, 90, tex=6, organ="gi_tract"),
    _t(38, "duodenum_content", 15, tex=10, organ="gi_tract"),
    _t(39, "small_bowel_wall", 42, 80, 90, tex=6, organ="small_intestine"),
    _t(40, "small_bowel_content", 15, tex=10, organ="small_intestine"),
    _t(41, "small_bowel_gas", -980, tex=10, organ="small_intestine"),
    _t(42, "colon_wall", 42, 80, 90, tex=6, organ="colon"),
    _t(43, "colon_content", -40, tex=60, organ="colon"),
    _t(44, "colon_gas", -980, tex=10, organ="colon"),
    _t(45, "rectum_wall", 42, 80, 90, tex=6, organ="rectum"),
    _t(46, "rectum_content", -20, tex=50, organ="rectum"),
    _t(47, "bladder_wall", 42, 70, 80, tex=5, organ="urinary_bladder"),
    _t(48, "urine", 6, tex=3, organ="urinary_bladder"),
    _t(49, "esophagus", 42, 75, 85, tex=6, organ="esophagus"),
    _t(50, "esophagus_air", -980, tex=5, organ="esophagus"),
    _t(51, "thymus", 38, 60, 70, tex=10, organ="thymus"),
    _t(52, "thyroid", 100, 180, 150, tex=12),
    _t(53, "eye", 12, tex=3, organ="eyes"),
    _t(54, "lens", 100, tex=5, organ="lenses"),
    _t(55, "brain_grey", 38, 42, 43, tex=3, organ="brain", bc="central_nervous_system"),
    _t(56, "brain_white", 28, 30, 31, tex=3, organ="brain", bc="central_nervous_system"),
    _t(57, "ventricle_csf", 5, tex=2, organ="brain", bc="central_nervous_system"),
    _t(58, "csf", 6, tex=2, bc="central_nervous_system"),
    _t(59, "spinal_cord", 36, tex=3, organ="spinal_cord", bc="central_nervous_system"),
    _t(60, "cerebellum", 40, 44, 45, tex=3, organ="brain", bc="central_nervous_system"),
    _t(61, "brainstem", 32, 35, 36, tex=3, organ="brain", bc="central_nervous_system"),
    _t(62, "soft_tissue", 40, 60, 70, tex=8),
    _t(63, "breast_gland", 30, 45, 55, tex=25, bc="internal_organs"),
    _t(64, "sinus_air", -990, tex=5),
    _t(65, "uterus", 45, 80, 100, tex=8),
    _t(66, "prostate", 40, 60, 75, tex=8),
    _t(67, "lymph_node", 38, 60, 75, tex=6),
)

N_TISSUES = 256
BY_NAME: dict[str, Tissue] = {t.name: t for t in TISSUES}
assert len(BY_NAME) == len(TISSUES) and all(t.id == i for i, t in enumerate(TISSUES))


class _Ids:
    """Attribute access to tissue ids: ``T.liver`` -> 26."""

    def __getattr__(self, name):
        try:
            return BY_NAME[name].id
        except KeyError as exc:
            raise AttributeError(name) from exc


T = _Ids()
