"""``python apps/body_composition -i DICOM_DIR -o OUT_DIR [-m MODELS]`` (no ``-i``: the built-in demo study)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from apps.launcher import ensure_stack_size, run_app  # noqa: E402

if __name__ == "__main__":
    ensure_stack_size()
    from apps.body_composition.app import BodyCompositionApp

    sys.exit(run_app(BodyCompositionApp, "CorpusCT body composition: 7-class 3D U-Net, waist and L3 metrics, flags"))
