"""Radiomics features of organ ROIs (papers/radiomics-fcn-organ-dose.txt): pyradiomics (the
``pyradiomics-bhklab`` build, imported as ``radiomics``), image and mask resampled to 1 x 1 x 5 mm
(``resampledPixelSpacing``), the 107 standard features of the original image (no filters): shape (14),
first order (18), GLCM (24), GLRLM (16), GLSZM (16), GLDM (14), NGTDM (5).

A tiny or empty mask gives a status and NaN features, never an exception. Pure domain code (no holoscan).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from operators.common.labels import organ_mask
from operators.common.morphology import patient_outline

RESAMPLED_SPACING_MM = (1.0, 1.0, 5.0)  # x, y, z (pyradiomics order)
# pyradiomics' shape class is O(n^2) in mesh vertices (maximum diameters): 7 s for a liver at 1 x 1 x 5 mm,
# 160 s for a trunk outline. Shape is computed on a coarser resampling (organs 2 x 2 x 5 mm, body 4 x 4 x 5 mm)
# and the body gets shape + first order only; all other organ features use the paper's 1 x 1 x 5 mm.
SHAPE_SPACING_MM = (2.0, 2.0, 5.0)
BODY_SPACING_MM = (4.0, 4.0, 5.0)
BODY_FIRSTORDER_SPACING_MM = (2.0, 2.0, 5.0)
MIN_VOXELS = 8  # on the original grid: below this an ROI is "too_small"
ROI_PAD = (2, 8, 8)  # voxels (z, y, x) kept around an ROI's box for the resampling and texture neighbourhoods
FEATURE_CLASSES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
BODY = "body"  # the pseudo-organ "body": the patient outline (morphology.patient_outline)

# pyradiomics shape features that do not need the surface mesh (principal axes of the voxel centres, voxel count).
# The mesh and its maximum-diameter search (O(n^2) in vertices) cost 16 s for a 1.9-million-voxel ROI at 2 x 2 x 5 mm;
# when only these are wanted the mesh is skipped (``_axes_only_extractor_class``), with the same values (tested).
MESH_FREE_SHAPE = frozenset({"MajorAxisLength", "MinorAxisLength", "LeastAxisLength", "Elongation", "Flatness",
                             "VoxelVolume"})

_extractors: dict = {}


def _axes_only_shape_class():
    """pyradiomics' RadiomicsShape with the segment initialisation minus the mesh: its own code for the padded
    mask, voxel coordinates and eigenvalues (radiomics/shape.py), and NaN for what needs the mesh."""
    import SimpleITK as sitk
    from radiomics import shape as rshape

    class AxesOnlyShape(rshape.RadiomicsShape):
        def _initSegmentBasedCalculation(self):
            self.pixelSpacing = np.array(self.inputImage.GetSpacing()[::-1])
            cpif = sitk.ConstantPadImageFilter()
            cpif.SetPadLowerBound([1, 1, 1])
            cpif.SetPadUpperBound([1, 1, 1])
            self.inputMask = cpif.Execute(self.inputMask)
            self.maskArray = sitk.GetArrayFromImage(self.inputMask) == self.label
            self.labelledVoxelCoordinates = np.where(self.maskArray != 0)
            self.SurfaceArea, self.Volume, self.diameters = np.nan, np.nan, np.full(4, np.nan)
            n = len(self.labelledVoxelCoordinates[0])
            coordinates = np.array(self.labelledVoxelCoordinates, dtype="int").transpose((1, 0))
            physical = coordinates * self.pixelSpacing[None, :]
            physical -= np.mean(physical, axis=0)
            physical /= np.sqrt(n)
            covariance = np.dot(physical.T.copy(), physical)
            self.eigenValues = np.linalg.eigvals(covariance)
            machine_errors = np.bitwise_and(self.eigenValues < 0, self.eigenValues > -1e-10)
            self.eigenValues[machine_errors] = 0
            self.eigenValues.sort()

    return AxesOnlyShape


@functools.cache
def _axes_only_extractor_class():
    from radiomics import featureextractor, imageoperations

    shape_cls = _axes_only_shape_class()

    class AxesOnlyExtractor(featureextractor.RadiomicsFeatureExtractor):
        """Computes the shape class without its mesh when every enabled shape feature is mesh-free."""

        def computeShape(self, image, mask, boundingBox, **kwargs):
            names = self.enabledFeatures.get("shape")
            if not names or not set(names) <= MESH_FREE_SHAPE or mask.GetDimension() != 3:
                return super().computeShape(image, mask, boundingBox, **kwargs)
            cropped_image, cropped_mask = imageoperations.cropToTumorMask(image, mask, boundingBox)
            shape = shape_cls(cropped_image, cropped_mask, **kwargs)
            for name in names:
                shape.enableFeatureByName(name)
            return {f"original_shape_{k}": v for k, v in shape.execute().items()}

    return AxesOnlyExtractor


def _silence():
    for name in ("radiomics", "radiomics.featureextractor", "radiomics.imageoperations"):
        logging.getLogger(name).setLevel(logging.ERROR)


def extractor(classes=FEATURE_CLASSES, spacing_mm=RESAMPLED_SPACING_MM, only: dict | None = None):
    """A pyradiomics extractor with the paper's settings for ``classes`` (built once per process); ``only``
    {class: (feature, ...)} restricts a class to those features (pyradiomics names without the prefix)."""
    only = {c: tuple(sorted(only[c])) for c in classes if c in only} if only else {}
    key = (tuple(classes), tuple(spacing_mm), tuple(sorted(only.items())))
    if key not in _extractors:
        import radiomics

        radiomics.setVerbosity(logging.ERROR)
        _silence()
        ex = _axes_only_extractor_class()(resampledPixelSpacing=list(spacing_mm), interpolator="sitkBSpline",
                                          binWidth=25, additionalInfo=False, minimumROIDimensions=2)
        ex.disableAllFeatures()
        ex.enableFeaturesByName(**{c: list(only.get(c, ())) for c in classes})  # empty list: the whole class
        ex.disableAllImageTypes()
        ex.enableImageTypeByName("Original")
        _extractors[key] = ex
    return _extractors[key]


def _plan(organ: str, wanted: set[str] | None = None):
    """(classes, resampled spacing, {class: features}) runs for one ROI; ``wanted`` (full feature names) keeps
    only the classes and features asked for (None: all 107)."""
    runs = ([(("shape",), BODY_SPACING_MM), (("firstorder",), BODY_FIRSTORDER_SPACING_MM)] if organ == BODY
            else [(("shape",), SHAPE_SPACING_MM), (FEATURE_CLASSES[1:], RESAMPLED_SPACING_MM)])
    if wanted is None:
        return [(classes, spacing, None) for classes, spacing in runs]
    by_class: dict[str, list[str]] = {}
    for name in wanted:
        _, cls, feat = name.split("_", 2)
        by_class.setdefault(cls, []).append(feat)
    out = []
    for classes, spacing in runs:
        keep = tuple(c for c in classes if c in by_class)
        if keep:
            out.append((keep, spacing, {c: by_class[c] for c in keep}))
    return out


def feature_names() -> list[str]:
    """The 107 feature names, e.g. ``original_shape_MeshVolume``, in a fixed order."""
    from radiomics import getFeatureClasses

    classes = getFeatureClasses()
    names = []
    for c in FEATURE_CLASSES:
        cls = classes[c]
        for f, deprecated in sorted(cls.getFeatureNames().items()):
            if not deprecated:
                names.append(f"original_{c}_{f}")
    return names


@dataclass
class OrganFeatures:
    organ: str
    status: str  # ok | empty | too_small | failed: <reason>
    values: dict = field(default_factory=dict)  # feature name -> float (NaN when not ok)
    voxels: int = 0
    seconds: float = 0.0


def _sitk(arr: np.ndarray, spacing_zyx, dtype):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(arr, dtype=dtype))
    img.SetSpacing((float(spacing_zyx[2]), float(spacing_zyx[1]), float(spacing_zyx[0])))
    return img


def roi_crop(hu: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``hu`` and ``mask`` cut to the mask's box plus ``ROI_PAD`` (within the array): what pyradiomics is given.
    Cropping twice gives the same arrays, so a cropped ROI yields the same features as the whole volume."""
    zz, yy, xx = (np.nonzero(mask.any(axis=ax))[0] for ax in ((1, 2), (0, 2), (0, 1)))
    if zz.size == 0:
        return hu[:0, :0, :0], mask[:0, :0, :0]
    sl = tuple(slice(max(a[0] - p, 0), a[-1] + p + 1) for a, p in zip((zz, yy, xx), ROI_PAD, strict=True))
    return hu[sl], mask[sl]


def organ_features(hu: np.ndarray, spacing_zyx_mm, mask: np.ndarray, organ: str = "",
                   wanted: set[str] | None = None) -> OrganFeatures:
    """The 107 features of one ROI, or only the ``wanted`` ones (full names; the others are NaN): a network that
    reads 100 selected features needs a fraction of the texture classes. ``hu`` (z, y, x) float, ``mask`` bool on
    the same grid."""
    names = feature_names()
    plan = _plan(organ, None if wanted is None else set(wanted))
    nan = dict.fromkeys(names, float("nan"))
    mask = np.asarray(mask, bool)
    n = int(mask.sum())
    if n == 0:
        return OrganFeatures(organ, "empty", nan, 0)
    if n < MIN_VOXELS:
        return OrganFeatures(organ, "too_small", nan, n)
    t = time.perf_counter()
    hu_roi, mask_roi = roi_crop(hu, mask)
    try:
        img = _sitk(hu_roi, spacing_zyx_mm, np.float32)
        msk = _sitk(mask_roi.astype(np.uint8), spacing_zyx_mm, np.uint8)
        out = {}
        for classes, spacing, only in plan:
            out.update(extractor(classes, spacing, only).execute(img, msk, label=1))
    except Exception as e:  # pyradiomics raises ValueError / RuntimeError on degenerate ROIs
        return OrganFeatures(organ, f"failed: {type(e).__name__}: {str(e)[:120]}", nan, n,
                             time.perf_counter() - t)
    vals = {k: float(np.asarray(out[k])) for k in names if k in out}
    expected = set(names) if wanted is None else set(wanted) & set(names)
    expected = {k for k in expected if k.split("_")[1] in {c for classes, _, _ in plan for c in classes}}
    missing = [k for k in sorted(expected) if k not in vals]
    for k in names:
        vals.setdefault(k, float("nan"))
    status = "ok" if not missing else f"failed: {len(missing)} features missing"
    return OrganFeatures(organ, status, vals, n, time.perf_counter() - t)


@dataclass(frozen=True)
class RoiJob:
    """One ROI's feature extraction, cut to the ROI (small enough to hand to a worker process)."""

    organ: str
    hu: np.ndarray
    mask: np.ndarray
    spacing_zyx_mm: tuple
    wanted: frozenset | None = None

    @classmethod
    def of(cls, hu, spacing_zyx_mm, mask, organ: str, wanted=None) -> RoiJob:
        hu_roi, mask_roi = roi_crop(hu, np.asarray(mask, bool))
        return cls(organ, np.ascontiguousarray(hu_roi, np.float32), mask_roi, tuple(float(v) for v in spacing_zyx_mm),
                   None if wanted is None else frozenset(wanted))

    def run(self) -> OrganFeatures:
        return organ_features(self.hu, self.spacing_zyx_mm, self.mask, self.organ, self.wanted)

    def parts(self) -> list[RoiJob]:
        """The job as one job per extractor run of its plan (shape / the other classes), each asking for that
        run's features only: independent work that can go to different processes (``merge`` joins them)."""
        wanted = set(feature_names()) if self.wanted is None else set(self.wanted)
        out = []
        for classes, _, _ in _plan(self.organ, None if self.wanted is None else wanted):
            sub = frozenset(k for k in wanted if k.split("_")[1] in classes)
            if sub:
                out.append(RoiJob(self.organ, self.hu, self.mask, self.spacing_zyx_mm, sub))
        return out or [self]


def merge(parts: list[OrganFeatures]) -> OrganFeatures:
    """One ROI's features from its parts (``RoiJob.parts``): each part's own features, the first failure's status."""
    first = parts[0]
    values = dict(first.values)
    for p in parts[1:]:
        values.update({k: v for k, v in p.values.items() if not np.isnan(v)})
    bad = [p.status for p in parts if p.status != "ok"]
    return OrganFeatures(first.organ, bad[0] if bad else "ok", values, first.voxels, sum(p.seconds for p in parts))


def default_workers() -> int:
    """Feature worker processes: $CORPUSCT_FEATURE_WORKERS, else the CPU cores this process may use (at most 4)."""
    env = os.environ.get("CORPUSCT_FEATURE_WORKERS", "").strip()
    if env:
        return max(int(env), 1)
    return max(min(len(os.sched_getaffinity(0)), 4), 1)


def run_jobs(jobs: dict, workers: int = 1) -> dict:
    """``{key: RoiJob}`` -> ``{key: OrganFeatures}``. pyradiomics' C code holds the GIL, so parallel extraction
    needs processes: with ``workers`` > 1 the jobs go, largest ROI first, to that many spawned processes (spawn,
    not fork: the caller may be a multi-threaded Holoscan graph)."""
    if workers <= 1 or len(jobs) <= 1:
        return {k: j.run() for k, j in jobs.items()}
    # each ROI's extractor runs as separate tasks (the body's shape alone is the longest task of a region),
    # largest ROI first
    tasks = [(k, part) for k in sorted(jobs, key=lambda k: -int(jobs[k].mask.sum())) for part in jobs[k].parts()]
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [(k, pool.submit(RoiJob.run, part)) for k, part in tasks]
        done: dict = {}
        for k, f in futures:
            done.setdefault(k, []).append(f.result())
    return {k: merge(done[k]) for k in jobs}


def region_jobs(hu: np.ndarray, spacing_zyx_mm, label_map: np.ndarray, organs, include_body: bool = True,
                wanted: dict[str, set[str]] | None = None) -> dict[str, RoiJob]:
    """One RoiJob per organ of ``organs`` (names of labels.ALL_ORGANS, masks via labels.organ_mask) and for the
    body outline of ``hu`` (``patient_outline``: of this crop, as a region scan shows it). ``wanted``: {roi:
    feature names} to compute only those (None: all 107 per ROI; a ROI missing from ``wanted`` gets none)."""
    pick = (lambda roi: None) if wanted is None else (lambda roi: wanted.get(roi, set()))
    jobs = {name: RoiJob.of(hu, spacing_zyx_mm, organ_mask(label_map, name), name, pick(name)) for name in organs}
    if include_body:
        jobs[BODY] = RoiJob.of(hu, spacing_zyx_mm, patient_outline(hu), BODY, pick(BODY))
    return jobs


def region_features(hu: np.ndarray, spacing_zyx_mm, label_map: np.ndarray, organs, include_body: bool = True,
                    cache: dict | None = None, wanted: dict[str, set[str]] | None = None,
                    workers: int = 1) -> dict[str, OrganFeatures]:
    """Features of each organ in ``organs`` and of the body outline (``region_jobs``), in ``workers`` processes.
    ``cache``: optional dict reused across calls (e.g. z-crops of one CT), keyed by ROI, voxel count and HU sum
    (the same ROI voxels give the same features in a cropped copy of the CT)."""
    if cache is not None and wanted is not None:
        raise ValueError("region_features: the cache holds full feature sets; use it without 'wanted'")
    jobs = region_jobs(hu, spacing_zyx_mm, label_map, organs, include_body, wanted)
    if cache is None:
        return run_jobs(jobs, workers)
    keys = {roi: (roi, int(j.mask.sum()), round(float(np.asarray(j.hu, np.float64)[j.mask].sum()), 3))
            for roi, j in jobs.items()}
    todo = {roi: j for roi, j in jobs.items() if keys[roi] not in cache}
    cache.update({keys[roi]: f for roi, f in run_jobs(todo, workers).items()})
    return {roi: cache[keys[roi]] for roi in jobs}


def feature_vector(feats: dict[str, OrganFeatures], rois) -> tuple[np.ndarray, list[str]]:
    """Concatenated features of ``rois`` in order, names ``<roi>:<feature>``; NaN where an ROI is missing."""
    names = feature_names()
    vec, cols = [], []
    for r in rois:
        f = feats.get(r)
        for k in names:
            vec.append(f.values.get(k, np.nan) if f is not None else np.nan)
            cols.append(f"{r}:{k}")
    return np.asarray(vec, float), cols
