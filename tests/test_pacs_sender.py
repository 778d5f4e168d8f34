"""PACS sender logic against an in-process pynetdicom storage SCP on localhost (fast, no Orthanc): success,
warning statuses, transient and permanent failures, retries with bounded backoff, an association aborted
mid-transfer, an unreachable PACS, the spool and its manifests, resend, TLS, the command line."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from operators.common.errors import PacsError
from operators.pacs_sender import (
    PacsDestination,
    RetryPolicy,
    Spool,
    TLSConfig,
    echo,
    resend_spool,
    send_files,
)
from operators.pacs_sender.__main__ import main as cli

FAST = RetryPolicy(max_attempts=3, initial_delay_s=0.01, factor=2.0, max_delay_s=0.05, acse_timeout_s=5,
                   dimse_timeout_s=5, network_timeout_s=5, connect_timeout_s=2)


class LocalSCP:
    """Storage SCP whose C-STORE status is chosen per call by ``status(sop_uid, n_seen_before)``."""

    def __init__(self, status=lambda uid, n: 0x0000, ssl_context=None, abort_on_call: int | None = None):
        self.status = status
        self.received: list[str] = []  # SOP Instance UIDs stored (success or warning status)
        self._seen: dict[str, int] = {}  # C-STORE requests per SOP Instance UID
        self.calls = 0
        self.abort_on_call = abort_on_call
        self._lock = threading.Lock()
        ae = AE(ae_title="TESTSCP")
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(Verification)
        self.server = ae.start_server(("127.0.0.1", 0), block=False, ssl_context=ssl_context,
                                      evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        self.port = self.server.server_address[1]

    def _on_store(self, event):
        with self._lock:
            self.calls += 1
            if self.abort_on_call is not None and self.calls == self.abort_on_call:
                event.assoc.abort()
                return 0xA700
            uid = str(event.request.AffectedSOPInstanceUID)
            code = self.status(uid, self._seen.get(uid, 0))
            self._seen[uid] = self._seen.get(uid, 0) + 1
            if code in (0x0000, 0xB000, 0xB007):
                self.received.append(uid)
            return code

    def dest(self, **kw) -> PacsDestination:
        return PacsDestination("TESTSCP", "127.0.0.1", self.port, "CORPUSCT_T", **kw)

    def close(self):
        self.server.shutdown()


@pytest.fixture
def scp_factory():
    made = []

    def make(**kw) -> LocalSCP:
        s = LocalSCP(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture(scope="module")
def files(demo_study) -> list[Path]:
    return list(demo_study.series["axial"].paths[:6])


def _uid(p: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_destination_from_env_and_config():
    env = {"CORPUSCT_PACS_AET": "PACS1", "CORPUSCT_PACS_HOST": "pacs.example", "CORPUSCT_PACS_PORT": "11112",
           "CORPUSCT_CALLING_AET": "CT_AI"}
    d = PacsDestination.from_env(env)
    assert (d.ae_title, d.host, d.port, d.calling_ae_title, d.tls) == ("PACS1", "pacs.example", 11112, "CT_AI", None)
    assert PacsDestination.from_env({}) is None
    d2 = PacsDestination.from_config({"host": "h", "port": 104, "tls": {"ca_file": "/ca.pem"}}, env)
    assert d2.host == "h" and d2.ae_title == "PACS1" and d2.tls == TLSConfig(ca_file="/ca.pem")
    d3 = PacsDestination.from_env({**env, "CORPUSCT_PACS_TLS": "1", "CORPUSCT_PACS_TLS_CA": "/x.pem"})
    assert d3.tls is not None and d3.tls.ca_file == "/x.pem" and d3.tls.check_hostname
    assert PacsDestination.from_json(d3.to_json()) == d3
    with pytest.raises(ValueError):
        PacsDestination("A" * 17, "h", 104)
    with pytest.raises(ValueError):
        PacsDestination("A", "h", 0)


def test_backoff_is_exponential_and_bounded():
    p = RetryPolicy(initial_delay_s=1, factor=2, max_delay_s=5)
    assert [p.delay_s(a) for a in range(1, 6)] == [1, 2, 4, 5, 5]


def test_send_success_and_warning_status(scp_factory, files, tmp_path):
    uids = [_uid(f) for f in files]
    scp = scp_factory(status=lambda uid, n: 0xB000 if uid == uids[0] else 0x0000)
    assert echo(scp.dest(), FAST) == (True, "C-ECHO success")
    rep = send_files(files, scp.dest(), spool_dir=tmp_path / "spool", policy=FAST)
    assert rep.ok and rep.attempts == 1 and rep.echo_ok
    assert sorted(scp.received) == sorted(uids)
    assert rep.files[0].status == 0xB000 and "warning" in rep.files[0].error
    assert Spool(tmp_path / "spool").entries() == []
    # sending the same files again: same SOP Instance UIDs (the PACS keeps one instance per UID)
    rep2 = send_files(files[:2], scp.dest(), spool_dir=tmp_path / "spool", policy=FAST)
    assert [f.sop_instance_uid for f in rep2.files] == uids[:2]


def test_transient_failure_is_retried_with_backoff(scp_factory, files, tmp_path):
    scp = scp_factory(status=lambda uid, n: 0xA700 if n == 0 else 0x0000)  # out of resources once, then fine
    slept = []
    rep = send_files(files, scp.dest(), spool_dir=tmp_path / "spool", policy=FAST, sleep=slept.append)
    assert rep.ok and rep.attempts == 2 and slept == [FAST.delay_s(1)]
    assert all(f.attempts == 2 for f in rep.files)
    assert sorted(scp.received) == sorted(_uid(f) for f in files)


def test_persistent_failure_goes_to_spool_with_manifest(scp_factory, files, tmp_path):
    scp = scp_factory(status=lambda uid, n: 0xA700)
    slept = []
    spool_dir = tmp_path / "spool"
    rep = send_files(files[:3], scp.dest(), spool_dir=spool_dir, policy=FAST, sleep=slept.append)
    assert not rep.ok and len(rep.spooled) == 3 and rep.attempts == FAST.max_attempts
    assert slept == [FAST.delay_s(1), FAST.delay_s(2)]
    entries = {e.sop_instance_uid: e for e in Spool(spool_dir).entries()}
    assert sorted(entries) == sorted(_uid(f) for f in files[:3])
    for f in files[:3]:
        e = entries[_uid(f)]
        assert e.file.read_bytes() == f.read_bytes() and f.exists()  # a copy; the original is untouched
        m = json.loads(e.manifest_path.read_text())
        assert m["attempts"] == 3 and "0xA700" in m["last_error"] and m["last_status"] == "0xA700"
        assert m["destination"] == scp.dest().to_json() and m["original_name"] == f.name


def test_permanent_refusal_is_not_retried(scp_factory, files, tmp_path):
    scp = scp_factory(status=lambda uid, n: 0xA900)  # data set does not match SOP class
    slept = []
    rep = send_files(files[:2], scp.dest(), spool_dir=tmp_path / "spool", policy=FAST, sleep=slept.append)
    assert len(rep.spooled) == 2 and rep.attempts == 1 and slept == []
    assert all(f.attempts == 1 for f in rep.files)


def test_association_aborted_mid_transfer_then_retried(scp_factory, files, tmp_path):
    scp = scp_factory(abort_on_call=3)
    t0 = time.monotonic()
    rep = send_files(files, scp.dest(), spool_dir=tmp_path / "spool", policy=FAST, sleep=lambda s: None)
    assert time.monotonic() - t0 < FAST.dimse_timeout_s  # the abort is noticed at once, not at a timeout
    assert rep.ok and rep.attempts == 2
    assert sorted(scp.received) == sorted(_uid(f) for f in files)  # each stored once
    assert sum(f.attempts == 1 for f in rep.files) == 2  # the two before the abort went through at once


def test_unreachable_pacs_spools_everything_then_resend_delivers_once(scp_factory, files, tmp_path):
    spool_dir = tmp_path / "spool"
    down = PacsDestination("TESTSCP", "127.0.0.1", _free_port(), "CORPUSCT_T")
    rep = send_files(files, down, spool_dir=spool_dir, policy=FAST, sleep=lambda s: None)
    assert not rep.echo_ok and len(rep.spooled) == len(files)
    assert "connect" in rep.files[0].error or "association" in rep.files[0].error
    assert len(Spool(spool_dir).entries()) == len(files)
    # resend to the manifests' destination: still down -> entries stay, attempts accumulate
    rep = resend_spool(spool_dir, policy=RetryPolicy(max_attempts=1, connect_timeout_s=2))
    assert len(rep.spooled) == len(files)
    assert {e.manifest["attempts"] for e in Spool(spool_dir).entries()} == {FAST.max_attempts + 1}
    # the PACS comes back (on another port: override the destination)
    scp = scp_factory()
    rep = resend_spool(spool_dir, scp.dest(), policy=FAST)
    assert rep.ok and len(rep.delivered) == len(files)
    assert Spool(spool_dir).entries() == [] and not list(spool_dir.iterdir())
    assert sorted(scp.received) == sorted(_uid(f) for f in files)
    assert resend_spool(spool_dir, scp.dest(), policy=FAST).files == []


def test_unwritable_spool_raises_and_keeps_the_original(files, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    down = PacsDestination("TESTSCP", "127.0.0.1", _free_port())
    with pytest.raises(PacsError, match="spool folder"):
        send_files(files[:1], down, spool_dir=blocker / "spool", policy=RetryPolicy(max_attempts=1))
    assert files[0].exists()


def test_unreadable_input_is_refused_before_sending(tmp_path):
    bad = tmp_path / "x.dcm"
    bad.write_bytes(b"not dicom")
    with pytest.raises(PacsError, match="not a readable DICOM"):
        send_files([bad], PacsDestination("A", "127.0.0.1", 104), spool_dir=tmp_path / "s")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not available to make a test CA")
def test_tls(scp_factory, files, tmp_path):
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    scp = scp_factory(ssl_context=server_ctx)
    rep = send_files(files[:2], scp.dest(tls=TLSConfig(ca_file=str(cert), server_hostname="localhost")),
                     spool_dir=tmp_path / "spool", policy=FAST)
    assert rep.ok and sorted(scp.received) == sorted(_uid(f) for f in files[:2])
    # a client that does not trust the certificate does not send anything
    rep = send_files(files[2:3], scp.dest(tls=TLSConfig(ca_file=None)), spool_dir=tmp_path / "spool2",
                     policy=RetryPolicy(max_attempts=1))
    assert not rep.ok and len(Spool(tmp_path / "spool2").entries()) == 1


def test_cli_send_resend_list(scp_factory, files, tmp_path, capsys, monkeypatch):
    spool = tmp_path / "spool"
    port = _free_port()
    rc = cli(["send", *map(str, files[:2]), "--spool", str(spool), "--aet", "TESTSCP", "--host", "127.0.0.1",
              "--port", str(port), "--attempts", "1"])
    out = json.loads(capsys.readouterr().out)
    assert rc == PacsError.exit_code and out["n_spooled"] == 2 and out["n_left_in_spool"] == 2
    assert cli(["list", "--spool", str(spool)]) == 0
    assert json.loads(capsys.readouterr().out)["n_entries"] == 2
    scp = scp_factory()
    monkeypatch.setenv("CORPUSCT_PACS_HOST", "127.0.0.1")
    monkeypatch.setenv("CORPUSCT_PACS_PORT", str(scp.port))
    monkeypatch.setenv("CORPUSCT_PACS_AET", "TESTSCP")
    assert cli(["echo"]) == 0
    capsys.readouterr()
    rc = cli(["resend", "--spool", str(spool), "--port", str(scp.port)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["n_delivered"] == 2 and out["n_left_in_spool"] == 0
