"""Radiomics features of organ ROIs (papers/radiomics-fcn-organ-dose.txt): pyradiomics (the
``pyradiomics-bhklab`` build, imported as ``radiomics``), image and mask resampled to 1 x 1 x 5 mm
(``resampledPixelSpacing``), the 107 standard features of the original image (no filters): shape (14),
first order (18), GLCM (24), GLRLM (16), GLSZM (16), GLDM (14), NGTDM (5).

A tiny or empty mask gives a status and NaN features, never an exception. Pure domain code (no holoscan).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from operators.common.labels import organ_mask

RESAMPLED_SPACING_MM = (1.0, 1.0, 5.0)  # x, y, z (pyradiomics order)
# pyradiomics' shape class is O(n^2) in mesh vertices (maximum diameters): 7 s for a liver at 1 x 1 x 5 mm,
# 160 s for a trunk outline. Shape is computed on a coarser resampling (organs 2 x 2 x 5 mm, body 4 x 4 x 5 mm)
# and the body gets shape + first order only; all other organ features use the paper's 1 x 1 x 5 mm.
SHAPE_SPACING_MM = (2.0, 2.0, 5.0)
BODY_SPACING_MM = (4.0, 4.0, 5.0)
BODY_FIRSTORDER_SPACING_MM = (2.0, 2.0, 5.0)
MIN_VOXELS = 8  # on the original grid: below this an ROI is "too_small"
FEATURE_CLASSES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
BODY = "body"  # the pseudo-organ "body": the patient outline (largest component above -500 HU)

_extractors: dict = {}


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
        from radiomics import featureextractor

        radiomics.setVerbosity(logging.ERROR)
        _silence()
        ex = featureextractor.RadiomicsFeatureExtractor(resampledPixelSpacing=list(spacing_mm),
                                                        interpolator="sitkBSpline", binWidth=25,
                                                        additionalInfo=False, minimumROIDimensions=2)
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
    # crop to the ROI (+ margin for the resampling and texture neighbourhoods) before handing it to pyradiomics
    zz, yy, xx = (np.nonzero(mask.any(axis=ax))[0] for ax in ((1, 2), (0, 2), (0, 1)))
    pad = (2, 8, 8)
    sl = tuple(slice(max(a[0] - p, 0), a[-1] + p + 1) for a, p in zip((zz, yy, xx), pad, strict=True))
    try:
        img = _sitk(hu[sl], spacing_zyx_mm, np.float32)
        msk = _sitk(mask[sl].astype(np.uint8), spacing_zyx_mm, np.uint8)
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


def body_mask(hu: np.ndarray) -> np.ndarray:
    """The patient outline: the largest connected component above -500 HU, holes filled per slice (so that
    lungs and bowel gas are inside); the couch, a separate component, is left out."""
    fg = np.asarray(hu) > -500.0
    lab, n = ndimage.label(fg)
    if n == 0:
        return np.zeros(fg.shape, bool)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    body = lab == int(np.argmax(sizes))
    for k in range(body.shape[0]):
        body[k] = ndimage.binary_fill_holes(body[k])
    return body


def region_features(hu: np.ndarray, spacing_zyx_mm, label_map: np.ndarray, organs, include_body: bool = True,
                    cache: dict | None = None, wanted: dict[str, set[str]] | None = None) -> dict[str, OrganFeatures]:
    """Features of each organ in ``organs`` (names of labels.ALL_ORGANS, masks via labels.organ_mask) and of
    the body outline. ``cache``: optional dict reused across calls (e.g. z-crops of one CT), keyed by organ,
    voxel count and HU sum. ``wanted``: {roi: feature names} to compute only those (None: all 107 per ROI; a
    ROI missing from ``wanted`` gets none)."""
    if cache is not None and wanted is not None:
        raise ValueError("region_features: the cache holds full feature sets; use it without 'wanted'")
    res = {}
    for name in organs:
        m = organ_mask(label_map, name)
        key = None
        if cache is not None:
            # the same organ voxels (count and HU sum) give the same features in a cropped copy of the CT
            key = (name, int(m.sum()), round(float(np.asarray(hu, np.float64)[m].sum()), 3))
            if key in cache:
                res[name] = cache[key]
                continue
        res[name] = organ_features(hu, spacing_zyx_mm, m, name, None if wanted is None else wanted.get(name, set()))
        if cache is not None:
            cache[key] = res[name]
    if include_body:
        res[BODY] = organ_features(hu, spacing_zyx_mm, body_mask(hu), BODY,
                                   None if wanted is None else wanted.get(BODY, set()))
    return res


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
