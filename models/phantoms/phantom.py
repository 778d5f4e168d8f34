"""Procedural whole-body CT phantom: one call from parameters to a labelled CT volume.

``generate_phantom(params)`` returns a ``Phantom`` with

* ``ct``: ``CTVolume`` (HU float32, (z, y, x), standard axial LPS affine, slices ordered head to feet,
  metadata with kVp, CTDIvol, per-slice tube current following attenuation, patient data),
* ``organs``: uint8 (z, y, x) ids of ``operators.common.labels.ALL_ORGANS`` (0 = none),
* ``body_composition``: uint8 ids of ``BODY_COMPOSITION`` (0 = outside the body),
* ``tissues``: the underlying fine tissue labels (``tissues.TISSUES``),
* ``landmarks_mm``: z (mm, LPS) of every name in ``labels.LANDMARKS``,
* ``body_parts``: per slice, the body-part names present (``labels.body_parts_per_slice``; arms from the
  arm mask).

Everything is deterministic in ``params.seed`` and needs no external data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from operators.common.dosimetry import water_equivalent_diameter_mm
from operators.common.labels import (
    ALL_ORGANS,
    BODY_COMPOSITION,
    LANDMARKS,
    ORGAN_BY_NAME,
    body_parts_per_slice,
    organ_mask,
)
from operators.common.volume import CTMetadata, CTVolume, axial_affine

from .anatomy import Anatomy
from .dicom_export import projection_wet_mm, tube_current_modulation
from .geometry import Canvas
from .params import PhantomParams
from .synthesis import add_noise, noise_sigma_per_slice, render_hu
from .tissues import TISSUES

BODY_PART_EXAMINED = {"whole": "WHOLEBODY", "head": "HEAD", "chest": "CHEST", "abdomen": "ABDOMEN",
                      "pelvis": "PELVIS"}


def organ_lut() -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for t in TISSUES:
        if t.organ:
            lut[t.id] = ORGAN_BY_NAME[t.organ].id
    return lut


def body_comp_lut() -> np.ndarray:
    ids = {lab.name: lab.id for lab in BODY_COMPOSITION}
    lut = np.zeros(256, np.uint8)
    for t in TISSUES:
        if t.body_comp:
            lut[t.id] = ids[t.body_comp]
    return lut


@dataclass
class Phantom:
    params: PhantomParams
    ct: CTVolume
    tissues: np.ndarray
    organs: np.ndarray
    body_composition: np.ndarray
    landmarks_mm: dict[str, float]
    body_parts: list[list[str]]
    arms_present: np.ndarray
    dw_mm: np.ndarray
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def slice_z_mm(self) -> np.ndarray:
        return self.ct.slice_z_mm

    def gi_union_mask(self) -> np.ndarray:
        """The paper's summed GI segment (duodenum + small intestine + colon)."""
        ids = [ORGAN_BY_NAME[n].id for n in ("gi_tract", "small_intestine", "colon")]
        return np.isin(self.organs, ids)

    def summary(self) -> dict:
        vox = float(np.prod(self.ct.spacing_mm)) / 1000.0  # mL
        vols = {lab.name: round(float(organ_mask(self.organs, lab.name).sum()) * vox, 1) for lab in ALL_ORGANS}
        return {"params": self.params.to_json(), "shape_zyx": list(self.ct.shape),
                "spacing_zyx_mm": [round(v, 4) for v in self.ct.spacing_mm],
                "landmarks_mm": {k: round(v, 1) for k, v in self.landmarks_mm.items()},
                "organ_volumes_ml": vols, "timings_s": self.timings_s}


def _z_range(anat: Anatomy, region: str) -> tuple[float, float]:
    L = {k: anat.level(k) for k in ("vertex", "mandible_bottom", "lung_apex", "iliac_crest", "ischial_tuberosity",
                                    "diaphragm_dome")}
    if region == "whole":
        top = L["vertex"] + 10.0
        if anat.p.arms == "up":
            top = L["vertex"] + 0.12 * anat.H
        return -10.0, top
    if region == "head":
        return L["mandible_bottom"] - 15.0, L["vertex"] + 10.0
    if region == "chest":
        return float(anat.zf(0.655)), L["lung_apex"] + 30.0
    if region == "abdomen":
        return L["iliac_crest"] - 15.0, L["diaphragm_dome"] + 30.0
    return L["ischial_tuberosity"] - 35.0, L["iliac_crest"] + 30.0


def _field_of_view(anat: Anatomy, p: PhantomParams, z0: float, z1: float) -> tuple[float, float]:
    """(fov_mm, y_centre_mm): the body (with arms when down) plus a margin, the table included."""
    ext = anat.extent(z0, z1)
    if p.region == "head":
        fov = 2.0 * 105.0 * anat.hs + 30.0
        yc = anat.ys(anat.vert["C1"]) + 20.0 * anat.s - 22.0 * anat.hs - 10.0 * anat.hs
    else:
        half = ext["half_width_arms"] if p.arms == "down" else ext["half_width"] + 30.0
        ytab = anat.table_y if anat.table_y is not None else ext["y_max"]
        fov = max(2.0 * half + 10.0, (ytab + 45.0 - ext["y_min"]) + 20.0)
        yc = 0.5 * (ext["y_min"] + ytab + 45.0) if p.table else 0.5 * (ext["y_min"] + ytab)
    if p.fov_mm:
        fov = float(p.fov_mm)
    return float(np.clip(fov, 120.0, 800.0)), float(yc)


def generate_phantom(params: PhantomParams | None = None, **overrides) -> Phantom:
    """Generate the phantom for ``params`` (or ``PhantomParams(**overrides)``)."""
    t0 = time.perf_counter()
    p = params if params is not None else PhantomParams()
    if overrides:
        p = replace(p, **overrides)
    p = p.resolved()
    rng = np.random.default_rng([int(p.seed), 20240611])
    anat = Anatomy(p, np.random.default_rng([int(p.seed), 1]))
    anat._landmark_levels()
    anat._table_level()
    z0, z1 = _z_range(anat, p.region)
    dz = float(p.slice_spacing_mm)
    nz = max(int(np.floor((z1 - z0) / dz)) + 1, 1)
    zc = 0.5 * (z0 + z1)
    z = zc + (np.arange(nz) - 0.5 * (nz - 1)) * dz
    # labels and HU are rendered on a z grid ``nsub`` times finer than the slices (odd, so that the centre
    # sub-slice of each slab is the slice centre), blurred with the slice profile, then sampled
    nsub = int(p.z_supersample) if p.z_supersample else int(np.clip(np.ceil(p.slice_thickness_mm / 2.0), 1, 5))
    nsub += 1 - nsub % 2
    zfine = zc + (np.arange(nz * nsub) - 0.5 * (nz * nsub - 1)) * dz / nsub
    h = nsub // 2
    fov, yc = _field_of_view(anat, p, z0, z1)
    if p.pixel_size_mm:
        px = float(p.pixel_size_mm)
        fov = px * p.matrix
    else:
        px = fov / p.matrix
    n = p.matrix
    x = (np.arange(n) - 0.5 * (n - 1)) * px
    y = yc + (np.arange(n) - 0.5 * (n - 1)) * px
    cv = Canvas(x, y, zfine)
    timings = {}
    anat = Anatomy(p, np.random.default_rng([int(p.seed), 1]))
    anat.build(cv)
    timings["anatomy"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    hu = render_hu(cv.lab, cv.spacing, cv.y, p, rng, nsub=nsub)
    lab = cv.lab[h::nsub].copy()
    arms = cv.tags.get("arm", np.zeros(len(zfine), bool))[h::nsub].copy()
    del cv
    spacing = (dz, px, px)
    timings["render"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    body = body_comp_lut()[lab] > 0
    dw = water_equivalent_diameter_mm(hu, spacing, body_mask=body)
    wet = projection_wet_mm(hu, spacing, body_mask=body)
    del body
    # AEC: tube current from the attenuation of each slice, combining its size (Dw) with its thicker
    # projection (lateral at the shoulders and hips), as scout-based modulation does
    d_eff = np.sqrt(dw * np.maximum(wet, 1.0))
    head = p.region == "head"
    ref_ma = 300.0 if head else 200.0
    ma = tube_current_modulation(d_eff, reference_ma=ref_ma, reference_dw_mm=170.0 if head else 320.0)
    sigma = noise_sigma_per_slice(dw, ma * (1.0 if not head else 200.0 / 300.0), p, 200.0)
    add_noise(hu, spacing, sigma, p.kernel, rng)
    np.clip(hu, -1024.0, 3071.0, out=hu)
    timings["noise"] = time.perf_counter() - t2

    # volume order: head first (k = 0 most superior), standard axial orientation
    hu = np.ascontiguousarray(hu[::-1])
    lab = np.ascontiguousarray(lab[::-1])
    dw, ma = dw[::-1].copy(), ma[::-1].copy()
    arms = arms[::-1].copy()
    affine = axial_affine((-dz, px, px), (float(x[0]), float(y[0]), float(z[-1])))
    rot_s, pitch = 0.5, 1.0
    ctdi_per_mas = (0.17 if head else 0.075) * (p.kvp / 120.0) ** 2.5
    ctdivol = float(ctdi_per_mas * ma.mean() * rot_s / pitch)
    meta = CTMetadata(
        modality="CT", manufacturer="CorpusCT procedural phantom", manufacturer_model_name="CorpusCT phantom v1",
        convolution_kernel=p.kernel.upper(), kvp=float(p.kvp), ctdivol_mgy=round(ctdivol, 3),
        slice_thickness_mm=float(p.slice_thickness_mm), tube_current_ma=ma, exposure_mas=ma * rot_s,
        patient_age_years=float(p.age_years), patient_sex=p.sex, patient_weight_kg=float(p.weight_kg),
        patient_size_m=float(p.height_cm) / 100.0, body_part_examined=BODY_PART_EXAMINED[p.region],
        series_description=f"Phantom {p.region} {p.slice_thickness_mm:g}mm {p.kernel}")
    ct = CTVolume(hu, affine, meta)
    landmarks = {k: float(anat.L[k]) for k in LANDMARKS}
    parts = body_parts_per_slice(ct.slice_z_mm, landmarks, arms)
    timings["total"] = time.perf_counter() - t0
    return Phantom(params=p, ct=ct, tissues=lab, organs=organ_lut()[lab], body_composition=body_comp_lut()[lab],
                   landmarks_mm=landmarks, body_parts=parts, arms_present=arms, dw_mm=dw,
                   timings_s={k: round(v, 3) for k, v in timings.items()})
