"""PACS sender operator: sends the DICOM files the writers produced (``operators.pacs_sender.sender``).

    PacsSenderOperator(app, input_names=("seg_files", "sr_files"), destination=None, spool_dir=None)

Inputs: one port per name in ``input_names``; each receives a path, a list of paths, or written-object
results (anything with ``.path``). Output ``pacs_report`` (``SendReport.to_json()``; no receiver needed).

Destination: ``destination`` (a ``PacsDestination`` or an app-configuration mapping with ae_title, host,
port, calling_ae_title, tls), completed from CORPUSCT_PACS_AET / _HOST / _PORT and CORPUSCT_CALLING_AET. With
no host configured anywhere, nothing is sent (the results stay in the output folder) and the report says so.
Files that are not acknowledged are kept in the spool (``spool_dir``, else $CORPUSCT_PACS_SPOOL, else
~/.local/state/corpusct/pacs_spool); then ``PacsError`` is raised (exit code 5) unless
``raise_on_spool=False``: the message names the spool and the ``resend`` command.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from operators.common.errors import PacsError

from .sender import PacsDestination, RetryPolicy, default_spool_dir, send_files


def _paths(value) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [Path(value)]
    if hasattr(value, "path"):
        return [Path(value.path)]
    out: list[Path] = []
    for v in value:
        out.extend(_paths(v))
    return out


class PacsSenderOperator(Operator):
    def __init__(self, fragment: Fragment, *args, input_names: Sequence[str] = ("dicom_files",),
                 destination: PacsDestination | Mapping | None = None, spool_dir: str | Path | None = None,
                 retry: RetryPolicy | None = None, raise_on_spool: bool = True, **kwargs):
        self.input_names = tuple(input_names)
        self.destination = destination if isinstance(destination, PacsDestination) else \
            PacsDestination.from_config(destination)
        self.spool_dir = Path(spool_dir) if spool_dir else default_spool_dir()
        self.retry = retry or RetryPolicy()
        self.raise_on_spool = raise_on_spool
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        for name in self.input_names:
            spec.input(name)
        spec.output("pacs_report").condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        files: list[Path] = []
        for name in self.input_names:
            files.extend(_paths(op_input.receive(name)))
        op_output.emit(self.send(files), "pacs_report")

    def send(self, files: Sequence[Path]) -> dict:
        if self.destination is None:
            self._log.info("No PACS configured (CORPUSCT_PACS_HOST unset): %d result file(s) not sent", len(files))
            return {"destination": None, "n_files": len(files), "n_delivered": 0, "n_spooled": 0,
                    "skipped": "no PACS destination configured"}
        report = send_files(files, self.destination, spool_dir=self.spool_dir, policy=self.retry)
        if report.spooled and self.raise_on_spool:
            raise PacsError(
                f"{len(report.spooled)} of {len(report.files)} result file(s) could not be delivered to the PACS "
                f"{self.destination} ({report.spooled[0].error}). They are kept in {self.spool_dir}; send them "
                f"later with: python -m operators.pacs_sender resend --spool {self.spool_dir}")
        return report.to_json()
