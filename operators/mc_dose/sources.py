"""CT sources: spectrum from kVp (spekpy), generic bowtie filters, axial / helical trajectories with
tube current per projection from the DICOM per-slice mA profile; and HU -> (material, density)."""

from __future__ import annotations

import math

import numpy as np

from . import physics as ph
from .engine import Source, fan_source


def spectrum_from_kvp(kvp: float, filtration_mm_al: float = 6.0, anode_angle_deg: float = 12.0,
                      bin_kev: float = 0.5):
    """Tungsten-anode spectrum (spekpy, offline) as (bin lower edges, widths, fluence weights)."""
    import spekpy

    s = spekpy.Spek(kvp=float(kvp), th=float(anode_angle_deg), dk=float(bin_kev))
    s.filter("Al", float(filtration_mm_al))
    k, f = s.get_spectrum()
    keep = (f > 0) & (k - 0.5 * bin_kev >= ph.ECUT_KEV)
    k, f = k[keep], f[keep]
    return k - 0.5 * bin_kev, np.full(k.size, float(bin_kev)), f / f.sum()


def generic_bowtie(kind: str = "body", sid_cm: float = 60.0, fan_tan: float = 25.0 / 60.0, n: int = 129,
                   centre_mm_al: float = 1.0, max_mm_al: float = 30.0, compensation: float = 0.5):
    """Aluminium thickness (cm) across the fan that compensates the water path through a centred
    cylinder (radius 16 cm 'body', 8 cm 'head'), by the fraction ``compensation``; uniform in tan(fan angle) from -fan_tan to fan_tan.
    Attenuation equivalence at 60 keV: 1 cm water ~ 0.274 cm Al."""
    radius = {"body": 16.0, "head": 8.0}[kind]
    tg = np.linspace(-fan_tan, fan_tan, n)
    r = sid_cm * np.abs(np.sin(np.arctan(tg)))
    water = 2.0 * (radius - np.sqrt(np.clip(radius**2 - r**2, 0.0, None)))
    water = np.where(r < radius, water, 2.0 * radius)
    t = np.minimum(centre_mm_al / 10.0 + compensation * 0.274 * water, max_mm_al / 10.0)
    return t


def ct_source(spectrum, sid_cm: float = 60.0, fan_angle_deg: float = 50.0, collimation_cm: float = 4.0,
              z_start_cm: float = 0.0, z_end_cm: float = 10.0, pitch: float = 1.0, views_per_rotation: int = 36,
              start_angle_deg: float = 0.0, ma_profile=None, bowtie: str | None = "body",
              isocentre_xy=(0.0, 0.0)) -> Source:
    """Helical (pitch > 0) or axial (pitch = 0: one rotation per collimation width) trajectory.
    ``ma_profile``: (z_cm array, mA array) per slice from the DICOM headers; each projection's photon
    weight is the mA interpolated at its table position (tube current modulation)."""
    fan_tan = math.tan(math.radians(fan_angle_deg / 2))
    cone_tan = collimation_cm / 2.0 / sid_cm
    if pitch > 0:
        feed = pitch * collimation_cm
        n_rot = max((z_end_cm - z_start_cm) / feed, 1.0 / views_per_rotation)
        nv = max(1, int(round(n_rot * views_per_rotation)))
        ang = start_angle_deg + 360.0 * np.arange(nv) / views_per_rotation
        zs = z_start_cm + feed * (ang - start_angle_deg) / 360.0
    else:
        centres = np.arange(z_start_cm + collimation_cm / 2, z_end_cm, collimation_cm)
        if centres.size == 0:
            centres = np.array([0.5 * (z_start_cm + z_end_cm)])
        ang = np.tile(start_angle_deg + 360.0 * np.arange(views_per_rotation) / views_per_rotation, centres.size)
        zs = np.repeat(centres, views_per_rotation)
    weights = None
    if ma_profile is not None:
        zp, ma = (np.asarray(a, float) for a in ma_profile)
        order = np.argsort(zp)
        weights = np.interp(zs, zp[order], ma[order])
    bt = generic_bowtie(bowtie, sid_cm, fan_tan) if bowtie else None
    return fan_source(ang, sid_cm, fan_tan, cone_tan, spectrum, z_positions=zs, weights=weights,
                      isocentre=(isocentre_xy[0], isocentre_xy[1], 0.0), start="-y", bowtie_thickness=bt,
                      bowtie_material=ph.ALUMINIUM if bowtie else None)


# Schneider-style piecewise HU -> ICRP-110 medium; density from a bilinear HU-density calibration.
HU_CLASSES = [  # (upper HU bound, ICRP-110 AF medium name)
    (-950, "Air"),
    (-200, "Lung tissue (compressed lungs)"),
    (-20, "Adipose tissue"),
    (25, "Gallbladder, Pituitary gland, Trachea, Thymus, Tonsils, Ureters"),
    (100, "Muscle tissue"),
    (300, "Cartilage"),
    (1e9, "Mineral bone"),
]


def hu_to_density(hu) -> np.ndarray:
    """g/cm^3: air..soft tissue 1 + HU/1000; bone branch 1.0 + 0.00064 HU (cortical 1.92 at ~1440 HU)."""
    hu = np.asarray(hu, float)
    rho = np.where(hu <= 100, 1.0 + hu / 1000.0, 1.1 + (hu - 100) * 0.000615)
    return np.clip(rho, 0.001205, 3.0)


def hu_to_materials(hu, media: dict) -> tuple[np.ndarray, np.ndarray, list]:
    """HU array -> (material index array, density array, [Material]) using ICRP-110 ``media``
    (from physics.icrp110_media). The mineral-bone class mixes cortical bone and muscle by density."""
    hu = np.asarray(hu, float)
    mats = []
    idx = np.zeros(hu.shape, np.int32)
    lower = -np.inf
    for i, (upper, name) in enumerate(HU_CLASSES):
        key = next(k for k in media if k.lower().startswith(name.lower()[:20]))
        m = media[key]
        mats.append(ph.Material(name, 1.0, dict(m.composition)))
        idx[(hu > lower) & (hu <= upper)] = i
        lower = upper
    return idx, hu_to_density(hu), mats
