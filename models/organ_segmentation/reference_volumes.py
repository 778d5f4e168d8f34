"""Reference adult organ volumes (mL) from the ICRP-110 phantoms AM and AF, for the volume plausibility check of
operators/organ_segmentation/results.py: each organ's voxels of ``icrp110.organ_labels`` (the same organ
mapping the training data uses) times the phantom's voxel volume.

    python -m models.organ_segmentation.reference_volumes      # writes operators/organ_segmentation/data/...

ICRP-110's organs hold ICRP-89 reference masses (Publication 89), so these are reference adults of 176 cm / 73 kg
(M) and 163 cm / 60 kg (F), not population ranges.
"""

from __future__ import annotations

import json

import numpy as np

from models.phantoms import icrp110
from operators.common.labels import ALL_ORGANS
from operators.organ_segmentation.results import REFERENCE_VOLUMES


def reference_volumes(data_dir: str | None = None) -> dict[str, dict[str, float]]:
    """{organ: {"M": mL, "F": mL}} for every ALL_ORGANS organ that both phantoms hold."""
    out: dict[str, dict[str, float]] = {}
    for phantom, sex in (("AM", "M"), ("AF", "F")):
        lab = icrp110.organ_labels(phantom, data_dir)
        _, aff = icrp110.load_organ_ids(phantom, data_dir)
        voxel_ml = abs(float(np.linalg.det(aff[:3, :3]))) / 1000.0
        counts = np.bincount(lab.ravel(), minlength=256)
        for organ in ALL_ORGANS:
            if counts[organ.id]:
                out.setdefault(organ.name, {})[sex] = round(float(counts[organ.id]) * voxel_ml, 1)
    return {k: v for k, v in out.items() if len(v) == 2}


def main() -> None:
    table = {"source": "ICRP Publication 110 adult reference phantoms AM / AF (ICRP-89 reference masses), organ "
                       "voxels of models.phantoms.icrp110.organ_labels x voxel volume; "
                       "python -m models.organ_segmentation.reference_volumes",
             "volumes_ml": reference_volumes()}
    REFERENCE_VOLUMES.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE_VOLUMES.write_text(json.dumps(table, indent=1) + "\n")
    print("wrote", REFERENCE_VOLUMES)


if __name__ == "__main__":
    main()
