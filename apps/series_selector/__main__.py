"""``python apps/series_selector -i DICOM_DIR -o OUT_DIR`` (no ``-i``: the built-in demo study)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from apps.launcher import ensure_stack_size, run_app  # noqa: E402

if __name__ == "__main__":
    ensure_stack_size()
    from apps.series_selector.app import SeriesSelectorApp

    sys.exit(run_app(SeriesSelectorApp, "CorpusCT series selector: choose the CT series and load it as HU volume"))
