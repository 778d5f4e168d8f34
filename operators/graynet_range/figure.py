"""PNG of a GrayNet range result: coronal view of the scan with its body parts per slice, beside a diagram of
the ICRP-110 reference body (landmarks) with the mapped scan range. Radiological display convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from operators.common.render import WINDOWS, canonical_lps, save_figure
from operators.common.volume import CTVolume

from .range_selector import PART_NAMES, ScanRange
from .reference import reference_landmarks, table

REGION_COLOURS = {"head": "#4aa3ff", "neck": "#9c6ade", "chest": "#ff7f50", "abdomen": "#2ecc71",
                  "pelvis": "#f1c40f", "legs": "#95a5a6"}


def silhouette(ax, lm: dict[str, float], height: float):
    """A simple front view of the reference body from its landmarks (mm)."""
    from matplotlib.patches import Ellipse, Polygon, Rectangle

    v, mb, sh, ic, isch, kn, an, so = (lm[k] for k in ("vertex", "mandible_bottom", "shoulder_top", "iliac_crest",
                                                          "ischial_tuberosity", "knees", "ankles", "sole"))
    s = height / 1750.0
    kw = dict(facecolor="#dddddd", edgecolor="#555555", lw=0.8)
    ax.add_patch(Ellipse((0, (v + mb) / 2 + 10 * s), 150 * s, (v - mb) + 20 * s, **kw))
    ax.add_patch(Rectangle((-45 * s, sh), 90 * s, mb - sh, **kw))
    ax.add_patch(Polygon([(-190 * s, sh), (190 * s, sh), (150 * s, ic), (170 * s, isch), (-170 * s, isch),
                          (-150 * s, ic)], closed=True, **kw))
    for sgn in (-1, 1):  # legs and arms
        ax.add_patch(Polygon([(sgn * 20 * s, isch), (sgn * 165 * s, isch), (sgn * 110 * s, kn),
                              (sgn * 95 * s, an), (sgn * 45 * s, an), (sgn * 35 * s, kn)], closed=True, **kw))
        ax.add_patch(Rectangle((sgn * 45 * s - 25 * s, so), 50 * s, an - so, **kw))
        ax.add_patch(Polygon([(sgn * 190 * s, sh), (sgn * 250 * s, sh - 40 * s), (sgn * 250 * s, isch - 80 * s),
                              (sgn * 205 * s, isch - 80 * s), (sgn * 185 * s, sh - 80 * s)], closed=True, **kw))



LANDMARKS_SHOWN = ("vertex", "skull_base", "lung_apex", "carina", "diaphragm_dome", "lowest_rib", "iliac_crest",
                   "ischial_tuberosity", "knees", "ankles")


def draw_range_on_reference(ax, phantom: str, start_cm: float, end_cm: float, uncertainty_cm: float, *,
                            label_x: float = 300.0, x_max: float = 520.0, label_fontsize: float = 6.0) -> None:
    """The ICRP-110 reference body (AM / AF) on ``ax`` with the scan range (dark band), its uncertainty (light
    band) and the landmarks labelled; z in mm above the soles. ``label_x`` / ``x_max`` are in mm of a 1750 mm
    body (scaled to the phantom's height)."""
    lm = reference_landmarks(phantom)
    h = table()["phantoms"][phantom]["height_cm"] * 10
    silhouette(ax, lm, h)
    lo, hi, u = start_cm * 10, end_cm * 10, uncertainty_cm * 10
    ax.axhspan(lo - u, hi + u, color="#ff5050", alpha=0.15, lw=0)
    ax.axhspan(lo, hi, color="#ff3030", alpha=0.35, lw=0)
    for name in LANDMARKS_SHOWN:
        ax.axhline(lm[name], color="#888888", lw=0.4, ls=":")
        ax.text(label_x * h / 1750, lm[name], name.replace("_", " "), fontsize=label_fontsize, va="center")
    ax.set_xlim(-300 * h / 1750, x_max * h / 1750)
    ax.set_ylim(-20, h + 40)
    ax.set_aspect("equal")
    ax.set_xticks([])


def render_range(vol: CTVolume, sr: ScanRange, out_png: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    can, aff = canonical_lps(vol.hu, vol.affine_lps)
    # coronal slab through the body centre (mean of 5 rows), superior at the top
    body = can > -400
    j = int(np.median(np.nonzero(body.any(axis=(0, 2)))[0])) if body.any() else can.shape[1] // 2
    cor = can[:, max(j - 2, 0):j + 3, :].mean(axis=1)[::-1]
    dz, dx = abs(float(aff[2, 2])), abs(float(aff[0, 0]))
    z_can = aff[2, 2] * np.arange(can.shape[0]) + aff[2, 3]
    top, bot = float(z_can.max()), float(z_can.min())
    fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(11, 6.5), gridspec_kw={"width_ratios": [3, 1.6, 2.2]})
    wl, ww = WINDOWS["soft"]
    a0.imshow(cor, cmap="gray", vmin=wl - ww / 2, vmax=wl + ww / 2, aspect="equal",  # drawn to scale (mm)
              extent=(0, cor.shape[1] * dx, bot - dz / 2, top + dz / 2))
    a0.set_title("scan, coronal (R on the left)", fontsize=9)
    a0.set_ylabel("patient z (mm)")
    a0.set_xticks([])
    a0.text(0.01, 0.5, "R", transform=a0.transAxes, color="yellow")
    a0.text(0.96, 0.5, "L", transform=a0.transAxes, color="yellow")
    # body parts per slice as a chart beside it
    pr = sr.part_probabilities
    a1.imshow(pr[np.argsort(sr.slice_z_mm)][::-1], aspect="auto", cmap="magma", vmin=0, vmax=1,
              extent=(-0.5, len(PART_NAMES) - 0.5, bot - dz / 2, top + dz / 2), interpolation="nearest")
    # the final call per slice (reference body's parts at the mapped position) as cyan bars beside each column
    zs = np.asarray(sr.slice_z_mm, float)
    for j, name in enumerate(PART_NAMES):
        on = np.array([name in ns for ns in sr.body_parts_per_slice])
        if on.any():
            a1.scatter(np.full(on.sum(), j + 0.35), zs[on], s=1.5, c="#00e5ff", marker="s", lw=0)
    a1.set_xticks(range(len(PART_NAMES)))
    a1.set_xticklabels(PART_NAMES, rotation=90, fontsize=6)
    a1.set_yticks([])
    a1.set_ylim(bot - dz / 2, top + dz / 2)
    a1.set_title("body-part probability\n(cyan: final call)", fontsize=9)
    # reference body diagram
    draw_range_on_reference(a2, sr.phantom, sr.start_cm, sr.end_cm, sr.uncertainty_cm)
    a2.set_ylabel("ICRP-110 z (mm above the soles)")
    a2.set_title(f"ICRP-110 {sr.phantom}: {sr.start_cm:.1f}-{sr.end_cm:.1f} cm (+-{sr.uncertainty_cm:.1f})",
                 fontsize=9)
    fig.suptitle(title or (f"GrayNet range: {sr.body_part_examined() or 'no body part'}; sex {sr.sex} "
                           f"(p={sr.sex_probability:.2f}), age {sr.age_years:.0f} y, weight {sr.weight_kg:.0f} kg "
                           "(estimates from a model trained on synthetic CT; not for clinical use)"), fontsize=9)
    return save_figure(fig, out_png)
