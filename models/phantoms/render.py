"""Standard check views of a procedural phantom (the rendering itself: ``operators.common.render``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from operators.common.labels import BODY_COMPOSITION
from operators.common.render import render_views


def render_phantom(ph, out_dir: str | Path, prefix: str = "phantom") -> list[Path]:
    """Standard check views of a phantom (those inside its scan range): axial through the orbits, brain,
    shoulders, carina, heart, liver dome, kidneys, L3, iliac crest, femoral heads, thigh, knee, lower leg
    and feet with organ overlays; a coronal and two sagittal slices; body composition at four levels; lung
    window. Returns the PNG paths."""
    L = ph.landmarks_mm
    out_dir = Path(out_dir)
    hu, aff = ph.ct.hu, ph.ct.affine_lps
    body = ph.body_composition > 0
    z = ph.ct.slice_z_mm
    zmin, zmax = float(z.min()), float(z.max())
    cand = [("orbits", 0.5 * (L["orbit_roof"] + L["orbit_floor"])), ("brain", L["vertex"] - 45.0),
            ("shoulders", L["shoulder_top"] - 25.0), ("carina", L["carina"]),
            ("heart", 0.5 * (L["heart_top"] + L["heart_bottom"])), ("liver dome", L["diaphragm_dome"] - 20.0),
            ("kidneys/liver", 0.5 * (L["kidney_top"] + L["kidney_bottom"]) + 15.0), ("L3", L["l3"]),
            ("iliac crest", L["iliac_crest"] - 10.0), ("femoral heads", L["femoral_heads"]),
            ("thighs", 0.5 * (L["ischial_tuberosity"] + L["knees"])), ("knees", L["knees"]),
            ("lower leg", 0.5 * (L["knees"] + L["ankles"])), ("feet", 0.5 * (L["ankles"] + L["sole"]))]
    axials = [("axial", zz, name) for name, zz in cand if zmin <= zz <= zmax]
    paths = []
    for i in range(0, len(axials), 4):
        paths.append(render_views(hu, aff, out_dir / f"{prefix}_axial_{i // 4}.png", axials[i:i + 4], ph.organs,
                                  crop_to=body, title=f"{prefix}: axial, organ labels (W400 L40)"))
    kid = ph.organs == 5
    j = float(np.median(np.nonzero(kid)[1])) if kid.any() else hu.shape[1] / 2
    ycor = float(aff[1, 3] + aff[1, 1] * j)
    views = [("coronal", ycor, "coronal (kidneys)"), ("sagittal", 0.0, "sagittal (midline)"),
             ("sagittal", -60.0, "sagittal (right)")]
    paths.append(render_views(hu, aff, out_dir / f"{prefix}_coronal_sagittal.png", views, ph.organs, crop_to=body,
                              title=f"{prefix}: coronal / sagittal", panel_size=6.0))
    mid = [v for v in axials if v[2] in ("heart", "kidneys/liver", "L3", "femoral heads")] or axials[:4]
    paths.append(render_views(hu, aff, out_dir / f"{prefix}_bodycomp.png", mid, ph.body_composition,
                              label_table=BODY_COMPOSITION, crop_to=body, title=f"{prefix}: body composition"))
    lung = [v for v in axials if v[2] in ("shoulders", "carina", "heart", "liver dome")]
    if lung:
        paths.append(render_views(hu, aff, out_dir / f"{prefix}_lung.png", lung, None, window="lung", crop_to=body,
                                  title=f"{prefix}: lung window"))
    return paths
