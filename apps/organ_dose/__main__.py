"""``python apps/organ_dose -i DICOM_DIR -o OUT_DIR [-m MODELS] [--mc]`` (no ``-i``: the built-in demo study).

``--mc`` (or ``CORPUSCT_ORGAN_DOSE_MC=1``) also runs the Monte Carlo reference and writes RT Dose;
``CORPUSCT_MC_HISTORIES`` sets its histories (default 2e6)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from apps.launcher import ensure_stack_size, run_app  # noqa: E402

if __name__ == "__main__":
    if "--mc" in sys.argv:
        sys.argv.remove("--mc")
        os.environ["CORPUSCT_ORGAN_DOSE_MC"] = "1"
    ensure_stack_size()
    from apps.organ_dose.app import OrganDoseApp

    sys.exit(run_app(OrganDoseApp, "CorpusCT organ dose: radiomics network per region (Monte Carlo with --mc), "
                     "TID 1500 SR"))
