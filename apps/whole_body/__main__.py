"""``python apps/whole_body -i DICOM_DIR -o OUT_DIR [-m MODELS]`` (no ``-i``: the built-in demo study)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from apps.launcher import ensure_stack_size, run_app  # noqa: E402

if __name__ == "__main__":
    ensure_stack_size()
    from apps.whole_body.app import WholeBodyApp

    sys.exit(run_app(WholeBodyApp, "CorpusCT whole body: range, body composition, DICOM SEG/SR and a report "
                                   "(HTML, PDF, DICOM Encapsulated PDF)"))
