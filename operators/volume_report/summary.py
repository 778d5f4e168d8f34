"""Pure summary of a CTVolume for results.json (no patient identifiers)."""

from __future__ import annotations

import numpy as np

from operators.common.volume import CTVolume


def volume_summary(vol: CTVolume) -> dict:
    hu = vol.hu
    z = vol.slice_z_mm
    # HU of air: the darkest 1 % of voxels sits outside the patient in any normal field of view.
    air = float(np.percentile(hu[:, :: max(1, hu.shape[1] // 128), :: max(1, hu.shape[2] // 128)], 1))
    meta = vol.meta.to_json()
    return {
        "series": {"study_instance_uid": vol.meta.study_instance_uid,
                   "series_instance_uid": vol.meta.series_instance_uid,
                   "series_description": vol.meta.series_description},
        "volume": {
            "shape_zyx": list(vol.shape),
            "spacing_mm_zyx": [round(s, 4) for s in vol.spacing_mm],
            "affine_lps": np.round(vol.affine_lps, 6).tolist(),
            "z_range_mm": [round(float(z.min()), 2), round(float(z.max()), 2)],
            "z_coverage_mm": round(float(abs(z[-1] - z[0]) + vol.spacing_mm[0]), 2),
        },
        "hu": {"p1": round(air, 1), "median": round(float(np.median(hu)), 1), "p99": round(float(np.percentile(hu, 99)), 1)},
        "acquisition": {k: v for k, v in meta.items() if k not in ("study_instance_uid", "series_instance_uid",
                                                                    "series_description")},
    }
