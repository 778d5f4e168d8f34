"""A real PACS for the tests: Orthanc (Debian package) inside a private network namespace.

Orthanc has no bind-address option (its DICOM and HTTP ports listen on all interfaces), so each instance runs
in its own network namespace that has nothing but loopback (``ip netns add corpusct-pacs-<pid>-<n>``). Every
client runs inside the same namespace through ``ip netns exec``: our sender's command line
(``python -m operators.pacs_sender``), the test app, dcmtk's ``echoscu``/``storescu`` and ``curl`` for
Orthanc's REST API. Orthanc is stopped by its PID and the namespace deleted on teardown.

    with OrthancServer(tmp_path) as pacs:          # or the ``orthanc`` / ``orthanc_factory`` fixtures
        pacs.run([".venv/bin/python", "-m", "operators.pacs_sender", "send", ...], env=pacs.client_env())
        pacs.count_instances(); pacs.sop_instance_uids(); pacs.download(sop_uid, path)

The module also holds ``ResultsTestApp``: the real study loader, series selector and series-to-volume
operators, the demo study's ground-truth organ labels (stand-in for the segmentation model), the four DICOM
writers and the PACS sender, run as ``python tests/orthanc_fixture.py -i DICOM -o OUT --labels LABELS``.

Tests skip (with the reason) where Orthanc is not installed or network namespaces are not permitted.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
ORTHANC_AET = "ORTHANC"
DICOM_PORT = 4242
HTTP_PORT = 8042
_counter = itertools.count()


def netns_unavailable_reason() -> str | None:
    """None when Orthanc can be run in a private network namespace here, else why not."""
    if shutil.which("Orthanc") is None:
        return "Orthanc not installed (apt-get install orthanc; .ci/run installs it)"
    if shutil.which("ip") is None:
        return "iproute2 'ip' command not available: network namespaces cannot be created"
    name = f"corpusct-probe-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return f"network namespaces not permitted here (ip netns add: {r.stderr.strip() or r.returncode})"
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    return None


class OrthancServer:
    """Orthanc in a fresh network namespace with its storage in ``workdir``."""

    def __init__(self, workdir: Path, aet: str = ORTHANC_AET, dicom_port: int = DICOM_PORT,
                 http_port: int = HTTP_PORT):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.aet, self.dicom_port, self.http_port = aet, dicom_port, http_port
        self.netns = f"corpusct-pacs-{os.getpid()}-{next(_counter)}"
        self.proc: subprocess.Popen | None = None
        self.config_path = self.workdir / "orthanc.json"
        self.log_path = self.workdir / "orthanc.log"
        self._ns_created = False

    # --- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> OrthancServer:
        try:
            self.create_namespace()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def create_namespace(self) -> None:
        subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True)
        self._ns_created = True
        subprocess.run(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"], check=True,
                       capture_output=True)

    def write_config(self) -> None:
        cfg = {
            "Name": "CorpusCT test PACS",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "DicomCheckCalledAet": False,
            "DicomCheckModalityHost": False,
            "OverwriteInstances": False,
            "StorageCompression": False,
            "SaveJobs": False,
            "Plugins": [],
            "DicomScpTimeout": 30,
            "HttpTimeout": 30,
            "StableAge": 1,
        }
        self.config_path.write_text(json.dumps(cfg, indent=1))

    def start(self, timeout_s: float = 20.0) -> None:
        self.write_config()
        log = open(self.log_path, "ab")
        # `ip netns exec` execs Orthanc: the Popen PID is Orthanc's own PID
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.netns, "Orthanc", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start (code {self.proc.returncode}); log:\n{self.log_tail()}")
            try:
                if self.rest("/system").get("DicomAet") == self.aet:
                    return
            except (RuntimeError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"Orthanc did not answer on HTTP within {timeout_s} s; log:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        """Stop Orthanc by its PID (SIGTERM: clean shutdown; SIGKILL: a crash / power cut)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def close(self) -> None:
        try:
            self.stop(signal.SIGKILL)  # its storage is thrown away: no need for Orthanc's slow clean shutdown
        finally:
            if self._ns_created:
                subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)
                self._ns_created = False

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    # --- clients inside the namespace -------------------------------------------------------------------
    def ns_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def client_env(self, **extra) -> dict:
        env = dict(os.environ)
        env.update({"CORPUSCT_PACS_AET": self.aet, "CORPUSCT_PACS_HOST": "127.0.0.1",
                    "CORPUSCT_PACS_PORT": str(self.dicom_port), "CORPUSCT_CALLING_AET": "CORPUSCT_TEST",
                    "PYTHONPATH": str(REPO)})
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def run(self, argv: list[str], timeout: float = 300, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.ns_argv(argv), capture_output=True, text=True, timeout=timeout,
                              env=env or self.client_env(), cwd=str(REPO), **kw)

    def popen(self, argv: list[str], env: dict | None = None, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.ns_argv(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env or self.client_env(), cwd=str(REPO), **kw)

    def sender(self, *args: str, timeout: float = 300, env: dict | None = None) -> tuple[int, dict, str]:
        """Run ``python -m operators.pacs_sender ARGS`` in the namespace: (exit code, JSON summary, stderr)."""
        r = self.run([PYTHON, "-m", "operators.pacs_sender", *args], timeout=timeout, env=env)
        try:
            summary = json.loads(r.stdout) if r.stdout.strip() else {}
        except ValueError:
            summary = {"raw": r.stdout}
        return r.returncode, summary, r.stderr

    # --- REST API ---------------------------------------------------------------------------------------
    def rest(self, path: str, method: str = "GET", data: str | None = None):
        argv = ["curl", "-sS", "-f", "--max-time", "20", "-X", method, f"http://127.0.0.1:{self.http_port}{path}"]
        if data is not None:
            argv += ["--data-binary", data]
        r = subprocess.run(self.ns_argv(argv), capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"REST {method} {path} failed: {r.stderr.strip()}")
        return json.loads(r.stdout) if r.stdout.strip() else None

    def count_instances(self) -> int:
        return int(self.rest("/statistics")["CountInstances"])

    def instances(self) -> list[dict]:
        return self.rest("/instances?expand")

    def sop_instance_uids(self) -> list[str]:
        """SOP Instance UID of every stored instance (one entry per stored instance: duplicates would show)."""
        return [i["MainDicomTags"]["SOPInstanceUID"] for i in self.instances()]

    def instance_id(self, sop_instance_uid: str) -> str:
        hits = [h for h in self.rest("/tools/lookup", "POST", sop_instance_uid) if h["Type"] == "Instance"]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} instances with SOP Instance UID {sop_instance_uid}")
        return hits[0]["ID"]

    def tags(self, sop_instance_uid: str) -> dict:
        return self.rest(f"/instances/{self.instance_id(sop_instance_uid)}/simplified-tags")

    def download(self, sop_instance_uid: str, out_path: Path) -> Path:
        oid = self.instance_id(sop_instance_uid)
        r = subprocess.run(self.ns_argv(["curl", "-sS", "-f", "-o", str(out_path),
                                         f"http://127.0.0.1:{self.http_port}/instances/{oid}/file"]),
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"download of {sop_instance_uid} failed: {r.stderr.strip()}")
        return out_path


# --- pytest fixtures (import them into a test module to use them) ---------------------------------------

@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """One Orthanc per test module (empty at the start of the module)."""
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with OrthancServer(tmp_path_factory.mktemp("orthanc")) as pacs:
        yield pacs


@pytest.fixture
def orthanc_factory(tmp_path):
    """Make fresh Orthanc instances (each in its own namespace) inside one test; all closed at the end."""
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    made: list[OrthancServer] = []

    def make(name: str = "pacs") -> OrthancServer:
        pacs = OrthancServer(tmp_path / name)
        made.append(pacs)
        pacs.create_namespace()
        pacs.start()
        return pacs

    yield make
    for pacs in made:
        pacs.close()


# --- a small app that writes every output type and sends it ---------------------------------------------

def _results_app_class():
    import numpy as np
    from holoscan.conditions import CountCondition
    from monai.deploy.core import Application, Operator, OperatorSpec

    from operators.common.labels import ORGANS
    from operators.common.volume import load_nifti
    from operators.dicom_output.common import to_volume_grid
    from operators.dicom_output.operator import (
        OrganVolumeSRWriterOperator,
        PDFWriterOperator,
        RTDoseWriterOperator,
        SegWriterOperator,
    )
    from operators.dicom_output.pdf import render_text_pdf
    from operators.dicom_output.rtdose import DoseGrid
    from operators.pacs_sender.operator import PacsSenderOperator
    from operators.series_selector.operator import CTSeriesSelectorOperator
    from operators.series_to_volume.operator import SeriesToVolumeOperator
    from operators.study_loader.operator import CTStudyLoaderOperator

    class GroundTruthOperator(Operator):
        """Stand-in for the models: ground-truth organ labels on the CT grid, a toy dose grid, a PDF."""

        def __init__(self, fragment, *args, labels_dir: Path, **kw):
            self.labels_dir = Path(labels_dir)
            super().__init__(fragment, *args, **kw)

        def setup(self, spec: OperatorSpec):
            spec.input("ct_volume")
            spec.output("label_map")
            spec.output("dose_grid")
            spec.output("pdf_bytes")

        def compute(self, op_input, op_output, context):
            vol = op_input.receive("ct_volume")
            lab, aff = load_nifti(self.labels_dir / "organs.nii.gz")
            lab = to_volume_grid(lab, aff, vol.affine_lps, vol.shape).astype(np.uint8)
            dose_gy = 0.01 * np.clip(vol.hu + 1000.0, 0, None) / 1000.0
            op_output.emit(lab, "label_map")
            op_output.emit(DoseGrid(dose_gy, vol.affine_lps, n_histories=10**6, uncertainty_percent=2.0), "dose_grid")
            op_output.emit(render_text_pdf("CorpusCT test report", ["demo study", "ground-truth labels"]), "pdf_bytes")

    class ResultsTestApp(Application):
        def __init__(self, input_dir: Path, output_dir: Path, models_dir: Path | None = None, *,
                     labels_dir: Path | None = None, spool_dir: Path | None = None):
            self.input_dir, self.output_dir = Path(input_dir), Path(output_dir)
            self.labels_dir = Path(labels_dir or os.environ["CORPUSCT_TEST_LABELS"])
            self.spool_dir = spool_dir or os.environ.get("CORPUSCT_PACS_SPOOL")
            super().__init__()

        def compose(self):
            loader = CTStudyLoaderOperator(self, CountCondition(self, 1), input_folder=self.input_dir,
                                           name="study_loader")
            selector = CTSeriesSelectorOperator(self, name="series_selector")
            to_volume = SeriesToVolumeOperator(self, name="series_to_volume")
            truth = GroundTruthOperator(self, labels_dir=self.labels_dir, name="ground_truth")
            mv = {"phantom_ground_truth": "1"}
            seg = SegWriterOperator(self, output_folder=self.output_dir, label_table=ORGANS, model_versions=mv,
                                    algorithm_name="phantom ground truth", name="seg_writer")
            sr = OrganVolumeSRWriterOperator(self, output_folder=self.output_dir, model_versions=mv, name="sr_writer")
            dose = RTDoseWriterOperator(self, output_folder=self.output_dir, name="rtdose_writer")
            pdf = PDFWriterOperator(self, output_folder=self.output_dir, name="pdf_writer")
            sender = PacsSenderOperator(self, spool_dir=self.spool_dir,
                                        input_names=("seg_files", "sr_files", "dose_files", "pdf_files"),
                                        name="pacs_sender")
            self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
            self.add_flow(selector, to_volume, {("study_selected_series_list", "study_selected_series_list")})
            self.add_flow(to_volume, truth, {("ct_volume", "ct_volume")})
            for op in (seg, sr, dose, pdf):
                self.add_flow(to_volume, op, {("ct_volume", "ct_volume")})
            self.add_flow(truth, seg, {("label_map", "label_map")})
            self.add_flow(truth, sr, {("label_map", "label_map")})
            self.add_flow(seg, sr, {("seg", "seg")})
            self.add_flow(truth, dose, {("dose_grid", "dose_grid")})
            self.add_flow(truth, pdf, {("pdf_bytes", "pdf_bytes")})
            self.add_flow(seg, sender, {("dicom_files", "seg_files")})
            self.add_flow(sr, sender, {("dicom_files", "sr_files")})
            self.add_flow(dose, sender, {("dicom_files", "dose_files")})
            self.add_flow(pdf, sender, {("dicom_files", "pdf_files")})

    return ResultsTestApp


if __name__ == "__main__":  # python tests/orthanc_fixture.py -i DICOM -o OUT (labels: $CORPUSCT_TEST_LABELS)
    sys.path.insert(0, str(REPO))
    from apps.launcher import ensure_stack_size, run_app

    ensure_stack_size()
    sys.exit(run_app(_results_app_class(), "CorpusCT results-to-PACS test app"))
