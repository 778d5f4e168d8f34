"""Per-organ 2D Res-UNet inference (papers/multi-organ-resunet.txt) on a CTVolume, gated by the GrayNet range.
Pure numpy / torch (no holoscan).

    models = load_organ_models(bundles_dir, ["liver", "spleen"])       # {organ: OrganModel}
    seg = segment_organs(ct_volume, models, scan_range=sr)            # OrganSegmentation
    seg.labels        # uint8 (z, y, x) ALL_ORGANS ids on the CT grid (one label per voxel)
    seg.status        # {organ: "segmented" | "not found" | "not in field of view"}
    seg.timing_s      # {"preprocess": .., "<organ>": .., "total": ..}

Per-organ bundle contract (models/organ_segmentation/bundles/<organ>/, MONAI-bundle layout, loaded with
``operators.common.bundle.load_torchscript_bundle``): TorchScript input (N, C, 224, 304) float32 in [0, 1]
(preprocess.to_network: canonical axial slices, body-box crop, organ-family window), C = 1 or an odd number of
neighbouring slices centred on the slice to segment (edges repeat the end slice); output (N, 1, 224, 304)
logits (sigmoid applied here) or (N, 2, ...) (softmax, channel 1). ``configs/metadata.json`` may state (all
optional, looked up in ``metadata``, ``metadata["corpusct"]`` and ``network_data_format``): ``organ``,
``window_hu`` / ``hu_window`` [lo, hi] (default ``preprocess.window_for(organ)``), ``channels`` /
``in_channels`` (default 1), ``threshold`` (default 0.5), ``output`` "logits" | "probabilities". Weights stored
as fp16 are cast to fp32 at load.

Field of view (``ORGAN_BODY_PARTS``): an organ is looked for only on the run of slices from the first to the
last where GrayNet sees one of the body parts the organ can occupy (labels.BODY_PARTS), extended through
neighbouring slices GrayNet could not name, plus ``MARGIN_MM`` above and below (the paper crops 30 slices beyond
the organ; we use mm because slice spacing varies). No such slice -> "not in field of view", no inference.
Without a scan range every slice is used. ``None`` in the table = any slice (bones).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from operators.common.bundle import bundle_name_version, load_torchscript_bundle
from operators.common.errors import ModelError
from operators.common.labels import ALL_ORGANS, ORGAN_BY_NAME
from operators.common.render import canonical_axes
from operators.common.volume import CTVolume

from . import preprocess as pp

log = logging.getLogger(__name__)

MARGIN_MM = 30.0
_THORAX = ("upper_thorax", "heart", "lower_thorax")
_UPPER_ABDOMEN = ("liver_dome", "upper_abdomen", "kidneys")
_ABDOMEN = _UPPER_ABDOMEN + ("mid_abdomen", "lower_abdomen")
_PELVIS = ("lower_abdomen", "pelvis", "hips")

# Organ -> GrayNet body parts (labels.BODY_PARTS) on whose slices the organ can appear (adult anatomy, with the
# interval landmarks of labels.BODY_PARTS; generous: a part that only may hold the organ's tip is included).
ORGAN_BODY_PARTS: dict[str, tuple[str, ...] | None] = {
    "liver": ("lower_thorax",) + _UPPER_ABDOMEN + ("mid_abdomen",),
    "heart": ("heart", "lower_thorax", "liver_dome"),
    "pancreas": ("upper_abdomen", "kidneys", "mid_abdomen"),
    "bones": None,
    "kidneys": ("upper_abdomen", "kidneys", "mid_abdomen"),
    "spleen": ("lower_thorax",) + _UPPER_ABDOMEN,
    "urinary_bladder": _PELVIS,
    "esophagus": ("neck", "thyroid_level", "shoulder") + _THORAX + ("liver_dome", "upper_abdomen"),
    "femoral_heads": ("hips", "pelvis"),
    "lungs": ("shoulder",) + _THORAX + ("liver_dome", "breast"),
    "spinal_cord": ("skull_base", "neck", "thyroid_level", "shoulder") + _THORAX + _UPPER_ABDOMEN + ("mid_abdomen",),
    "aorta": ("shoulder",) + _THORAX + _ABDOMEN,
    "gallbladder": ("upper_abdomen", "kidneys", "mid_abdomen"),
    "adrenal_glands": ("upper_abdomen", "kidneys"),
    "inferior_vena_cava": ("heart", "lower_thorax") + _ABDOMEN,
    "colon": _ABDOMEN + ("pelvis",),
    "rectum": _PELVIS,
    "small_intestine": _ABDOMEN + ("pelvis",),
    "stomach": ("lower_thorax",) + _UPPER_ABDOMEN + ("mid_abdomen",),
    "thymus": ("shoulder", "upper_thorax", "heart"),
    "gi_tract": ("upper_abdomen", "kidneys", "mid_abdomen"),  # duodenum in this project (models/phantoms)
    "eyes": ("orbits", "nasal_cavity", "skull_base"),
    "brain": ("brain", "skull_base", "orbits"),
    "lenses": ("orbits", "nasal_cavity", "skull_base"),
    "optic_nerves": ("orbits", "skull_base", "nasal_cavity"),
    "pituitary_gland": ("skull_base", "orbits", "nasal_cavity"),
    "trachea": ("neck", "thyroid_level", "shoulder", "upper_thorax"),
}

STATUS_SEGMENTED = "segmented"
STATUS_NOT_FOUND = "not found"
STATUS_NOT_IN_FOV = "not in field of view"


def default_threads() -> int:
    """The cores available to this process, or 1 when the machine is already busy (1-minute load average at or
    above that count): measured here, two OpenMP threads on two cores shared with other CPU-bound jobs ran the
    per-organ network 5-10x slower than one thread (threads spin-wait for each other)."""
    try:
        cores = max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - non-Linux
        cores = max(os.cpu_count() or 1, 1)
    try:
        busy = os.getloadavg()[0] >= cores
    except OSError:  # pragma: no cover
        busy = False
    return 1 if busy else cores


def _meta_get(metadata: dict, *keys, default=None):
    for scope in (metadata.get("corpusct", {}), metadata):
        if isinstance(scope, dict):
            for k in keys:
                if k in scope and scope[k] is not None:
                    return scope[k]
    return default


# --- field of view ----------------------------------------------------------------------------------------

def organ_slices(organ: str, scan_range, slice_z_mm: np.ndarray, margin_mm: float = MARGIN_MM) -> np.ndarray:
    """Volume-order slice indices on which to look for ``organ``: all slices without a scan range; else the run
    of slices from the first to the last one showing a body part of ``ORGAN_BODY_PARTS[organ]`` (an organ is
    contiguous along z, and GrayNet may leave a slice between them unnamed), extended through adjacent slices
    to which GrayNet gave no body part at all (unknown, not "elsewhere"), plus ``margin_mm`` either side.
    Empty = not in the field of view."""
    n = len(slice_z_mm)
    parts = ORGAN_BODY_PARTS.get(organ)
    if scan_range is None or parts is None:
        return np.arange(n)
    hit = np.zeros(n, bool)
    for part in parts:
        idx = scan_range.slices_of(part)
        hit[np.asarray(idx, int)] = True
    if not hit.any():
        return np.zeros(0, int)
    order = np.argsort(np.asarray(slice_z_mm, float))  # walk along z whatever the storage order
    pos = np.nonzero(hit[order])[0]
    lo, hi = int(pos.min()), int(pos.max())
    unknown = np.array([not scan_range.body_parts_per_slice[k] for k in order], bool)
    while lo > 0 and unknown[lo - 1]:
        lo -= 1
    while hi < n - 1 and unknown[hi + 1]:
        hi += 1
    z = np.asarray(slice_z_mm, float)[order]
    keep = (z >= z[lo] - margin_mm - 1e-6) & (z <= z[hi] + margin_mm + 1e-6)
    return np.sort(order[keep])


# --- per-organ model --------------------------------------------------------------------------------------

@dataclass
class OrganModel:
    """One organ's TorchScript network and its preprocessing settings (module docstring)."""

    organ: str
    module: object
    metadata: dict
    path: Path
    window: tuple[float, float]
    channels: int = 1
    threshold: float = 0.5
    activation: str = "sigmoid"  # or "softmax" / "none", decided on the first output

    @property
    def name_version(self) -> tuple[str, str]:
        return bundle_name_version(self.metadata, f"organ_{self.organ}")

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, organ: str | None = None) -> OrganModel:
        bundle_dir = Path(bundle_dir)
        module, md = load_torchscript_bundle(bundle_dir, f"organ-segmentation ({bundle_dir.name})")
        # fp16-stored weights run in fp32 on the CPU; channels-last weights and inputs let oneDNN use its NHWC
        # convolutions: 2-2.5x faster per slice here (benchmarks/bench_organ_segmentation.py), same logits to 1e-5
        module = module.float().to(memory_format=torch.channels_last)
        name = str(_meta_get(md, "organ", default=organ or bundle_dir.name))
        if organ is not None and name != organ:
            raise ModelError(f"The bundle {bundle_dir} is for {name!r}, not {organ!r}.")
        if name not in ORGAN_BY_NAME:
            raise ModelError(f"The bundle {bundle_dir} names an unknown organ {name!r}.")
        window = _meta_get(md, "window_hu", "hu_window", "window")
        window = pp.window_for(name) if window is None else (float(window[0]), float(window[1]))
        nd = md.get("network_data_format", {}).get("inputs", {}).get("image", {})
        channels = int(_meta_get(md, "channels", "in_channels", default=nd.get("num_channels", 1)))
        if channels < 1 or channels % 2 == 0:
            raise ModelError(f"The bundle {bundle_dir} declares {channels} input channels; expected 1 or an odd "
                             "number of neighbouring slices.")
        out_kind = str(_meta_get(md, "output", default=md.get("network_data_format", {}).get("outputs", {})
                                 .get("pred", {}).get("type", "logits"))).lower()
        activation = "none" if out_kind.startswith("prob") else "sigmoid"
        return cls(name, module, md, bundle_dir, window, channels, float(_meta_get(md, "threshold", default=0.5)),
                   activation)

    def _stack(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """(len(idx), C, H, W) inputs: each slice with its neighbours (edges repeated)."""
        if self.channels == 1:
            return x[idx][:, None]
        h = self.channels // 2
        nbr = np.clip(idx[:, None] + np.arange(-h, h + 1)[None], 0, len(x) - 1)
        return x[nbr]

    def predict(self, x: np.ndarray, slices: np.ndarray | None = None, batch: int = 4) -> np.ndarray:
        """Probabilities (len(slices), 224, 304) float32 for the network inputs ``x`` (z, 224, 304)
        (preprocess.to_network) at ``slices`` (default all); neighbouring-slice channels are taken from ``x``."""
        slices = np.arange(len(x)) if slices is None else np.asarray(slices, int)
        out = np.empty((len(slices), *x.shape[1:]), np.float32)
        # Without the TorchScript profiling executor's graph optimisation: it spends the first two calls of each
        # module profiling (each organ's network runs once per study) and its fused graph ran the channels-last
        # convolutions slower here (bones, 300 slices: 2.5 s first call / 2.0-2.5 s warm, against 1.6-1.7 s)
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            for s in range(0, len(slices), batch):
                idx = slices[s:s + batch]
                xb = torch.from_numpy(np.ascontiguousarray(self._stack(x, idx), np.float32))
                y = self.module(xb.contiguous(memory_format=torch.channels_last))
                if isinstance(y, (tuple, list)):
                    y = y[0]
                if y.ndim != 4 or tuple(y.shape[2:]) != pp.NET_SHAPE or y.shape[1] not in (1, 2):
                    raise ModelError(f"The {self.organ} model returned shape {tuple(y.shape)}; expected "
                                     f"(N, 1 or 2, {pp.NET_SHAPE[0]}, {pp.NET_SHAPE[1]}).")
                y = y.float()
                if y.shape[1] == 2:
                    p = torch.softmax(y, 1)[:, 1] if self.activation != "none" else y[:, 1]
                else:
                    p = torch.sigmoid(y[:, 0]) if self.activation != "none" else y[:, 0]
                out[s:s + len(idx)] = p.numpy()
        return out


def find_bundles_dir(models_dir: str | Path) -> Path:
    """The folder holding one bundle per organ: ``models_dir/organ_segmentation/bundles``, ``models_dir/bundles``
    or ``models_dir`` itself."""
    md = Path(models_dir)
    for cand in (md / "organ_segmentation" / "bundles", md / "bundles", md):
        if cand.is_dir() and any((d / "models" / "model.ts").is_file() for d in cand.iterdir() if d.is_dir()):
            return cand
    return md / "organ_segmentation" / "bundles"


def available_organs(bundles_dir: str | Path) -> list[str]:
    """Organs (ALL_ORGANS order) that have a bundle folder with a model.ts."""
    bd = Path(bundles_dir)
    return [n for n in ORGAN_BY_NAME if (bd / n / "models" / "model.ts").is_file()]


def load_organ_models(bundles_dir: str | Path, organs=None) -> dict[str, OrganModel]:
    """{organ: OrganModel} for ``organs`` (default: every organ of ALL_ORGANS with a bundle: the paper's 23 plus
    the lenses, optic nerves, pituitary gland and trachea that organ dose needs). A requested
    organ without a bundle is a ModelError naming it."""
    bd = Path(bundles_dir)
    have = available_organs(bd)
    if organs is None:
        organs = [lab.name for lab in ALL_ORGANS if lab.name in have]
    missing = [o for o in organs if o not in have]
    unknown = [o for o in organs if o not in ORGAN_BY_NAME]
    if unknown:
        raise ModelError(f"Unknown organ name(s) requested: {', '.join(unknown)}.")
    if missing:
        raise ModelError(f"No organ-segmentation bundle for {', '.join(missing)} in {bd}.")
    return {o: OrganModel.from_bundle(bd / o, o) for o in organs}


# --- whole volume -----------------------------------------------------------------------------------------

@dataclass
class OrganSegmentation:
    labels: np.ndarray  # uint8 (z, y, x) ALL_ORGANS ids, CT grid and array order
    status: dict[str, str]
    slices: dict[str, list[int]] = field(default_factory=dict)  # [first, last] slice run on (volume order)
    timing_s: dict[str, float] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # bundle name -> version
    postprocess_report: dict | None = None  # set by the anchor post-process


def _canonical_slice_index(affine_lps: np.ndarray, n: int) -> np.ndarray | None:
    """canonical slice index of each volume slice when axis 0 stays the slice axis (else None)."""
    src, flips = canonical_axes(affine_lps)
    if src[0] != 0:
        return None
    k = np.arange(n)
    return n - 1 - k if flips[0] else k


_CHUNK = 16  # slices mapped back to the CT grid at a time


# A small organ inside a larger one (the lens in the eyeball): the larger organ's model covers the small one's place
# with its own high probability, so "highest probability wins" would never let the small organ in. It takes its
# voxels at or above its threshold whatever the container's probability, and the container never takes them back.
INSIDE: dict[str, str] = {"lenses": "eyes"}


def _composite(labels_c: np.ndarray, best: np.ndarray, kc: np.ndarray, region: tuple[slice, slice],
               prob: np.ndarray, threshold: float, label_id: int, container_id: int = 0,
               nested_ids: tuple[int, ...] = ()) -> None:
    """Write one organ's probabilities ``prob`` (len(kc), rows, cols) of canonical slices ``kc`` into the label map:
    a voxel at or above ``threshold`` takes ``label_id`` when its probability (x 255, uint8) beats the one stored
    in ``best`` for the organ already there (which is then updated), or when that organ is ``container_id`` (this
    organ lies inside it, ``INSIDE``); voxels of ``nested_ids`` (organs inside this one) are never taken."""
    rows, cols = region
    zs = slice(int(kc[0]), int(kc[-1]) + 1) if kc[-1] - kc[0] + 1 == len(kc) else kc
    lab, cur = labels_c[zs, rows, cols], best[zs, rows, cols]  # views when the slices are contiguous
    p = torch.from_numpy(prob)
    mask = p >= threshold
    q = p.mul_(255.0).clamp_(1.0, 255.0).to(torch.uint8).mul_(mask)  # 0 below the threshold
    cur_t = torch.from_numpy(cur)
    lab_t = torch.from_numpy(lab)
    take = q > cur_t
    if container_id:
        take |= (q > 0) & (lab_t == container_id)
    for n in nested_ids:
        take &= lab_t != n
    lab_t.masked_fill_(take, label_id)
    torch.maximum(cur_t, q, out=cur_t)
    if not isinstance(zs, slice):
        labels_c[zs, rows, cols] = lab
        best[zs, rows, cols] = cur


def segment_organs(vol: CTVolume, models: dict[str, OrganModel], scan_range=None, *, margin_mm: float = MARGIN_MM,
                   threads: int | None = None, batch: int = 4) -> OrganSegmentation:
    """Run every model of ``models`` on its slices (module docstring); overlapping organs: the voxel goes to the
    organ with the highest probability."""
    t0 = time.perf_counter()
    torch.set_num_threads(int(threads or default_threads()))
    torch.set_flush_denormal(True)  # tiny activations must not fall onto the slow denormal path of the CPU
    hu_c, aff_c = pp.canonical(vol.hu, vol.affine_lps)
    spacing_yx = (float(np.linalg.norm(aff_c[:3, 1])), float(np.linalg.norm(aff_c[:3, 0])))
    try:
        box = pp.body_box(hu_c, spacing_yx)
    except ValueError as exc:
        raise ModelError(f"Organ segmentation: {exc}") from exc
    nz = hu_c.shape[0]
    kc_of_k = _canonical_slice_index(vol.affine_lps, vol.shape[0])
    rows, cols = pp.box_region(box, hu_c.shape)
    labels_c = np.zeros(hu_c.shape, np.uint8)
    best = np.zeros(hu_c.shape, np.uint8)  # probability (x 255) of the organ holding each voxel
    inputs: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # window -> (network inputs (nz, 224, 304), done)
    status, slices, timing = {}, {}, {"preprocess": round(time.perf_counter() - t0, 3)}
    for organ, model in models.items():
        t1 = time.perf_counter()
        ks = organ_slices(organ, scan_range, vol.slice_z_mm, margin_mm) if kc_of_k is not None else np.arange(nz)
        if not len(ks):
            status[organ] = STATUS_NOT_IN_FOV
            timing[organ] = 0.0
            continue
        kc = np.sort(kc_of_k[ks]) if kc_of_k is not None else ks
        slices[organ] = [int(ks.min()), int(ks.max())]
        key = tuple(model.window)
        if key not in inputs:
            inputs[key] = (np.empty((nz, *pp.NET_SHAPE), np.float32), np.zeros(nz, bool))
        x, done = inputs[key]
        h = model.channels // 2
        need = np.unique(np.clip(kc[:, None] + np.arange(-h, h + 1)[None], 0, nz - 1))
        todo = need[~done[need]]
        if len(todo):
            x[todo] = pp.to_network(hu_c, box, model.window, slices=todo)
            done[todo] = True
        prob = model.predict(x, kc, batch)
        container = ORGAN_BY_NAME[INSIDE[organ]].id if organ in INSIDE else 0
        nested = tuple(ORGAN_BY_NAME[o].id for o, c in INSIDE.items() if c == organ)
        found = False
        for c in range(0, len(kc), _CHUNK):  # map back and composite a few slices at a time (cache-sized arrays)
            p = prob[c:c + _CHUNK]
            region = pp.above_threshold_region(p, model.threshold, box, (rows, cols))
            if region is None:  # no voxel of these slices can reach the threshold: nothing to write
                continue
            found = True
            _composite(labels_c, best, kc[c:c + _CHUNK], region,
                       pp.from_network(p, box, (len(p), *hu_c.shape[1:]), region), model.threshold,
                       ORGAN_BY_NAME[organ].id, container_id=container, nested_ids=nested)
        status[organ] = STATUS_SEGMENTED if found else STATUS_NOT_FOUND
        timing[organ] = round(time.perf_counter() - t1, 3)
    present = torch.bincount(torch.from_numpy(labels_c).reshape(-1), minlength=256).numpy() > 0  # numpy: int64 copy
    for organ in models:  # an organ can lose all its voxels to a more confident neighbour
        if status[organ] == STATUS_SEGMENTED and not present[ORGAN_BY_NAME[organ].id]:
            status[organ] = STATUS_NOT_FOUND
    labels = np.ascontiguousarray(pp.from_canonical(labels_c, vol.affine_lps))
    timing["total"] = round(time.perf_counter() - t0, 3)
    versions = dict(m.name_version for m in models.values())
    return OrganSegmentation(labels, status, slices, timing, versions)


def bundle_versions(models_dir: str | Path, organs=None) -> dict[str, str]:
    """{bundle name: version} of the per-organ bundles that would be used (empty when none is readable)."""
    from operators.common.bundle import read_bundle_metadata

    bd = find_bundles_dir(models_dir)
    have = available_organs(bd)
    names = [lab.name for lab in ALL_ORGANS if lab.name in have] if organs is None else [o for o in organs if o in have]
    out = {}
    for o in names:
        try:
            out.update([bundle_name_version(read_bundle_metadata(bd / o), f"organ_{o}")])
        except ModelError:
            continue
    return out
