"""``python apps/organ_segmentation -i DICOM_DIR -o OUT_DIR [-m MODELS]`` (no ``-i``: the built-in demo study).

Settings from the environment (the MAP launcher passes only folders): ``CORPUSCT_ORGANS`` (comma-separated organ
names; default every organ with a bundle), ``CORPUSCT_ORGAN_STL=1`` (STL meshes), ``CORPUSCT_ORGAN_BUNDLE_CONFIG``
(JSON file ``{"bundle": DIR, "label_mapping": {"1": "liver", ...}, "options": {...}}`` for a site's MONAI bundle)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from apps.launcher import ensure_stack_size, run_app  # noqa: E402

if __name__ == "__main__":
    ensure_stack_size()
    from apps.organ_segmentation.app import OrganSegmentationApp

    sys.exit(run_app(OrganSegmentationApp, "CorpusCT organ segmentation: 23 organs (2D Res-UNet per organ), "
                     "anchor post-process, DICOM SEG"))
