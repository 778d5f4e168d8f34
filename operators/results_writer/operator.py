"""JSON results writer operator: one input port per result file.

``JSONResultsWriterOperator(fragment, output_folder=..., files={"selection_report": "selection_report.json"})``
creates an input port per key; each received value (a dict, or an object with ``to_json()``) is written as
pretty JSON to ``output_folder/<file name>``. The app launcher publishes the folder only on success.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from monai.deploy.core import Fragment, Operator, OperatorSpec


def _default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(value, path: Path) -> Path:
    if hasattr(value, "to_json"):
        value = value.to_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, default=_default) + "\n")
    return path


class JSONResultsWriterOperator(Operator):
    def __init__(self, fragment: Fragment, *args, output_folder: Path, files: dict[str, str], **kwargs):
        self.output_folder = Path(output_folder)
        self.files = dict(files)
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        for port in self.files:
            spec.input(port)

    def compute(self, op_input, op_output, context):
        for port, name in self.files.items():
            path = write_json(op_input.receive(port), self.output_folder / name)
            self._log.info("Wrote %s", path.name)
