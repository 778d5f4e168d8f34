"""PNG rendering of CT volumes and label maps in radiological display convention (matplotlib).

Axial: anterior up, patient right on the viewer's left. Coronal: head up, patient right on the viewer's
left. Sagittal: head up, anterior on the viewer's left. Any (z, y, x) array with an LPS affine is first
reoriented to the canonical layout (``canonical_lps``: slices inferior->superior, rows anterior->posterior,
columns right->left), so series stored feet-first, head-first or with flipped rows display the same way.

    render_views(hu, affine_lps, out_png, [("axial", z_mm, "caption"), ...], labels=None, label_table=ORGANS)
    render_overview(hu, affine_lps, out_png)      # axial, coronal, sagittal through the volume centre
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from operators.common.labels import ORGANS

WINDOWS = {"soft": (40.0, 400.0), "lung": (-600.0, 1500.0), "bone": (400.0, 1800.0), "brain": (40.0, 80.0)}


def canonical_axes(affine_lps: np.ndarray) -> tuple[list[int], list[bool]]:
    """(source array axis of each canonical axis, flip of each canonical axis) for ``canonical_lps``: canonical
    axis 0 runs inferior->superior, 1 anterior->posterior, 2 right->left. Each index direction is assigned to its
    nearest patient axis."""
    a = np.asarray(affine_lps, dtype=float)
    index_of_array_axis = {0: 2, 1: 1, 2: 0}  # array axis (z, y, x) -> affine column (k, j, i)
    src_axis = [0, 0, 0]
    flips = [False, False, False]
    for ax in range(3):
        col = a[:3, index_of_array_axis[ax]]
        patient = int(np.argmax(np.abs(col)))  # 0 = L (x), 1 = P (y), 2 = S (z)
        target = 2 - patient  # canonical array axis: z -> 0, y -> 1, x -> 2
        src_axis[target] = ax
        flips[target] = bool(col[patient] < 0)
    if sorted(src_axis) != [0, 1, 2]:
        raise ValueError("affine has two index axes along the same patient axis")
    return src_axis, flips


def canonical_lps(array_zyx: np.ndarray, affine_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient (no resampling) so that array axis 0 runs inferior->superior, axis 1 anterior->posterior and
    axis 2 right->left; returns the view and its affine (diagonal up to obliquity). Each index direction is
    assigned to its nearest patient axis, so oblique data are shown as acquired."""
    a = np.asarray(affine_lps, dtype=float)
    index_of_array_axis = {0: 2, 1: 1, 2: 0}  # array axis (z, y, x) -> affine column (k, j, i)
    src_axis, flips = canonical_axes(a)
    out = np.transpose(array_zyx, src_axis)
    start = [0, 0, 0]  # original (z, y, x) index of the canonical origin voxel
    for target, ax in enumerate(src_axis):
        if flips[target]:
            out = np.flip(out, axis=target)
            start[ax] = array_zyx.shape[ax] - 1
    new = np.eye(4)
    for target, ax in enumerate(src_axis):
        new[:3, 2 - target] = a[:3, index_of_array_axis[ax]] * (-1.0 if flips[target] else 1.0)
    new[:3, 3] = a[:3, :3] @ np.array([start[2], start[1], start[0]], float) + a[:3, 3]
    return out, new


def _lut(label_table) -> np.ndarray:
    lut = np.zeros((256, 4), np.float32)
    for lab in label_table:
        lut[lab.id, :3] = np.asarray(lab.rgb, np.float32) / 255.0
        lut[lab.id, 3] = 0.45
    return lut


def _plane(vol: np.ndarray, affine: np.ndarray, view: str, pos_mm: float):
    """2-D image (rows top->bottom in display order), aspect and index of a canonical volume at ``pos_mm``
    (z for axial, y for coronal, x for sagittal)."""
    nz, ny, nx = vol.shape
    dz, dy, dx = float(affine[2, 2]), float(affine[1, 1]), float(affine[0, 0])
    if view == "axial":
        k = int(np.clip(round((pos_mm - affine[2, 3]) / dz), 0, nz - 1))
        return vol[k], dy / dx, k
    if view == "coronal":
        j = int(np.clip(round((pos_mm - affine[1, 3]) / dy), 0, ny - 1))
        return vol[::-1, j, :], dz / dx, j  # superior at the top
    if view == "sagittal":
        i = int(np.clip(round((pos_mm - affine[0, 3]) / dx), 0, nx - 1))
        return vol[::-1, :, i], dz / dy, i
    raise ValueError(f"unknown view {view!r} (axial, coronal, sagittal)")


def render_views(hu: np.ndarray, affine_lps: np.ndarray, out_png: str | Path,
                 views: Sequence[tuple[str, float, str]], labels: np.ndarray | None = None,
                 label_table=ORGANS, window: str | tuple[float, float] = "soft", title: str = "",
                 panel_size: float = 4.0, annotate: bool = True, crop: bool = True,
                 crop_to: np.ndarray | None = None) -> Path:
    """Render ``views`` [(view, position_mm, caption), ...] side by side; with ``labels`` a second row shows
    the label overlay in the label table's colours. Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hu, aff = canonical_lps(hu, affine_lps)
    labels = None if labels is None else canonical_lps(labels, affine_lps)[0]
    crop_to = None if crop_to is None else canonical_lps(crop_to, affine_lps)[0]
    wl, ww = WINDOWS[window] if isinstance(window, str) else window
    lut = _lut(label_table)
    names = {lt.id: lt.name for lt in label_table}
    rows = 2 if labels is not None else 1
    fig, axes = plt.subplots(rows, len(views), figsize=(panel_size * len(views), panel_size * rows + 0.4),
                             squeeze=False)
    for c, (view, pos, caption) in enumerate(views):
        img, aspect, _ = _plane(hu, aff, view, pos)
        box = (slice(None), slice(None))
        if crop:
            jj, ii = np.nonzero(_plane(crop_to, aff, view, pos)[0] if crop_to is not None else img > -400)
            if len(jj):
                m = 6
                box = (slice(max(jj.min() - m, 0), jj.max() + m + 1), slice(max(ii.min() - m, 0), ii.max() + m + 1))
        img = img[box]
        for r in range(rows):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", vmin=wl - ww / 2, vmax=wl + ww / 2, aspect=aspect, interpolation="nearest")
            if r == 1:
                lab = _plane(labels, aff, view, pos)[0][box]
                ax.imshow(lut[lab], aspect=aspect, interpolation="nearest")
                if annotate:
                    for lid in np.unique(lab):
                        jj, ii = np.nonzero(lab == lid)
                        if lid == 0 or lid not in names or len(jj) < 4:
                            continue
                        ax.text(float(np.median(ii)), float(np.median(jj)), names[lid][:10], color="white",
                                fontsize=6, ha="center", va="center")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{caption}\n{view} {pos:.0f} mm", fontsize=8)
            side = {"axial": ("R", "L"), "coronal": ("R", "L"), "sagittal": ("A", "P")}[view]
            ax.text(0.01, 0.5, side[0], transform=ax.transAxes, color="yellow", fontsize=9, va="center")
            ax.text(0.97, 0.5, side[1], transform=ax.transAxes, color="yellow", fontsize=9, va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, out_png)


def save_figure(fig, out_png: str | Path, dpi: int = 90) -> Path:
    """Lay out, write and close a matplotlib figure; returns the PNG path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    plt.close(fig)
    return out_png


def render_overview(hu: np.ndarray, affine_lps: np.ndarray, out_png: str | Path, *, labels: np.ndarray | None = None,
                    label_table=ORGANS, window: str | tuple[float, float] = "soft", title: str = "") -> Path:
    """Axial, coronal and sagittal views through the centre of the volume."""
    can, aff = canonical_lps(hu, affine_lps)
    centre = aff[:3, :3] @ ((np.array(can.shape[::-1], float) - 1) / 2) + aff[:3, 3]  # (x, y, z) mm
    views = [("axial", centre[2], "centre"), ("coronal", centre[1], "centre"), ("sagittal", centre[0], "centre")]
    return render_views(hu, affine_lps, out_png, views, labels=labels, label_table=label_table, window=window,
                        title=title, panel_size=5.0)
