"""Volume report operator: writes ``results.json`` (volume summary + provenance) and ``preview.png``."""

from __future__ import annotations

import logging
from pathlib import Path

from monai.deploy.core import Fragment, Operator, OperatorSpec

from operators.common.provenance import provenance
from operators.common.render import render_overview
from operators.results_writer.operator import write_json

from .summary import volume_summary


class VolumeReportOperator(Operator):
    def __init__(self, fragment: Fragment, *args, output_folder: Path, app_name: str, **kwargs):
        self.output_folder, self.app_name = Path(output_folder), app_name
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("ct_volume")

    def compute(self, op_input, op_output, context):
        vol = op_input.receive("ct_volume")
        write_json({**volume_summary(vol), "provenance": provenance(self.app_name)}, self.output_folder / "results.json")
        render_overview(vol.hu, vol.affine_lps, self.output_folder / "preview.png",
                        title=f"{vol.meta.series_description or 'CT'}: {vol.shape[0]} slices")
        self._log.info("Wrote results.json and preview.png")
