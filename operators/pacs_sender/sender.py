"""DICOM C-ECHO + C-STORE to a PACS with bounded retries and an on-disk spool (pure: pynetdicom, no holoscan).

    dest = PacsDestination.from_env()            # CORPUSCT_PACS_AET / _HOST / _PORT, CORPUSCT_CALLING_AET
    report = send_files(paths, dest, spool_dir="/var/spool/corpusct")   # never raises for a PACS failure
    report.ok, report.delivered, report.spooled
    report = resend_spool("/var/spool/corpusct")                          # or: python -m operators.pacs_sender resend

Delivery
* Each attempt opens one association (presentation contexts for the files' SOP classes and transfer
  syntaxes), verifies it with C-ECHO, then C-STOREs every file still pending. The files are sent as they are
  on disk (same bytes, same SOP Instance UIDs), so sending one twice stores it once: a PACS keeps one
  instance per SOP Instance UID.
* A file counts as delivered only when its C-STORE response status is Success (0x0000) or a Warning
  (0xB000 / 0xB006 / 0xB007: stored with coercion or elements discarded). No response (timeout, abort,
  connection lost) or a Failure status leaves it pending.
* Retries: up to ``RetryPolicy.max_attempts`` attempts with exponential backoff (initial delay x factor^n,
  capped at ``max_delay_s``) for connection failures, aborted associations, missing responses and transient
  statuses (0xA7xx out of resources, 0xC0xx-0xCFFF cannot understand / processing failure). Refusals that
  cannot change on retry (0xA9xx data set does not match the SOP class, 0x0122 SOP class not supported, no
  accepted presentation context) end the attempts for that file at once.

Spool
* Every file not delivered is copied into the spool folder as ``<SOPInstanceUID>.dcm`` with a manifest
  ``<SOPInstanceUID>.json`` (destination, attempts, last error, times, original file name). Copies are
  written to a temporary name and renamed, so a crash never leaves a half file; re-spooling an instance
  replaces its copy. If the spool itself cannot be written, ``PacsError`` is raised (the originals are
  untouched): nothing is dropped silently.
* ``resend_spool`` sends the spooled files (to the destination in each manifest, or an override) and
  deletes an entry only once its C-STORE was acknowledged; others keep their entry with updated attempts.

TLS: ``TLSConfig`` (CA file, client certificate/key, hostname check) builds the ssl context pynetdicom uses.
Logs name files, SOP Instance UIDs and AE titles only: never patient names, IDs or birth dates
(pynetdicom's own logger is held at WARNING because its debug output can echo dataset elements).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pydicom

from operators.common.errors import PacsError

log = logging.getLogger(__name__)
if not os.environ.get("CORPUSCT_PYNETDICOM_DEBUG"):
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)

ENV_AET = "CORPUSCT_PACS_AET"
ENV_HOST = "CORPUSCT_PACS_HOST"
ENV_PORT = "CORPUSCT_PACS_PORT"
ENV_CALLING_AET = "CORPUSCT_CALLING_AET"
ENV_TLS = "CORPUSCT_PACS_TLS"  # "1" to use TLS
ENV_TLS_CA = "CORPUSCT_PACS_TLS_CA"
ENV_TLS_CERT = "CORPUSCT_PACS_TLS_CERT"
ENV_TLS_KEY = "CORPUSCT_PACS_TLS_KEY"
ENV_TLS_CHECK_HOSTNAME = "CORPUSCT_PACS_TLS_CHECK_HOSTNAME"  # "0" to skip the hostname check
ENV_SPOOL = "CORPUSCT_PACS_SPOOL"
DEFAULT_CALLING_AET = "CORPUSCT"

WARNING_STORED = {0xB000, 0xB006, 0xB007}  # stored, with coercion / elements discarded
_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it)
os.umask(_UMASK)


# --- configuration ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TLSConfig:
    ca_file: str | None = None  # PACS certificate authority (None: the system's trust store)
    cert_file: str | None = None  # client certificate (mutual TLS), PEM
    key_file: str | None = None
    check_hostname: bool = True
    server_hostname: str | None = None  # name in the PACS certificate (default: the host)

    def ssl_args(self, host: str) -> tuple[ssl.SSLContext, str]:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        ctx.check_hostname = bool(self.check_hostname)
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx, self.server_hostname or host


@dataclass(frozen=True)
class PacsDestination:
    ae_title: str
    host: str
    port: int
    calling_ae_title: str = DEFAULT_CALLING_AET
    tls: TLSConfig | None = None

    def __post_init__(self):
        for name, aet in (("AE title", self.ae_title), ("calling AE title", self.calling_ae_title)):
            if not aet or len(aet) > 16 or "\\" in aet:
                raise ValueError(f"invalid {name} {aet!r} (1-16 characters, no backslash)")
        if not (0 < int(self.port) < 65536):
            raise ValueError(f"invalid port {self.port}")
        object.__setattr__(self, "port", int(self.port))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}{' (TLS)' if self.tls else ''}"

    @classmethod
    def from_config(cls, config: Mapping | None = None, env: Mapping[str, str] | None = None) -> PacsDestination | None:
        """From an app configuration mapping (keys ae_title, host, port, calling_ae_title, tls: {ca_file,
        cert_file, key_file, check_hostname}); missing keys come from the environment. None when no host is
        configured anywhere (sending is then disabled)."""
        env = os.environ if env is None else env
        cfg = dict(config or {})
        host = cfg.get("host") or env.get(ENV_HOST)
        if not host:
            return None
        tls_cfg = cfg.get("tls")
        if tls_cfg is None and str(env.get(ENV_TLS, "")).lower() in ("1", "true", "yes"):
            tls_cfg = {"ca_file": env.get(ENV_TLS_CA) or None, "cert_file": env.get(ENV_TLS_CERT) or None,
                       "key_file": env.get(ENV_TLS_KEY) or None,
                       "check_hostname": str(env.get(ENV_TLS_CHECK_HOSTNAME, "1")).lower() not in ("0", "false", "no")}
        tls = TLSConfig(**tls_cfg) if isinstance(tls_cfg, Mapping) else tls_cfg
        return cls(ae_title=str(cfg.get("ae_title") or env.get(ENV_AET) or "ANY-SCP"), host=str(host),
                   port=int(cfg.get("port") or env.get(ENV_PORT) or 104),
                   calling_ae_title=str(cfg.get("calling_ae_title") or env.get(ENV_CALLING_AET) or DEFAULT_CALLING_AET),
                   tls=tls)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PacsDestination | None:
        return cls.from_config(None, env)

    def to_json(self) -> dict:
        out = {"ae_title": self.ae_title, "host": self.host, "port": self.port,
               "calling_ae_title": self.calling_ae_title}
        if self.tls is not None:
            out["tls"] = asdict(self.tls)
        return out

    @classmethod
    def from_json(cls, d: Mapping) -> PacsDestination:
        tls = d.get("tls")
        return cls(d["ae_title"], d["host"], int(d["port"]), d.get("calling_ae_title", DEFAULT_CALLING_AET),
                   TLSConfig(**tls) if tls else None)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    initial_delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 30.0
    connect_timeout_s: float = 10.0  # TCP connection
    acse_timeout_s: float = 10.0  # association negotiation
    dimse_timeout_s: float = 60.0  # waiting for a C-STORE / C-ECHO response
    network_timeout_s: float = 60.0

    def delay_s(self, attempt: int) -> float:
        """Pause after the failed ``attempt`` (1-based)."""
        return min(self.initial_delay_s * self.factor ** (attempt - 1), self.max_delay_s)


def default_spool_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$CORPUSCT_PACS_SPOOL``, else ``$XDG_STATE_HOME/corpusct/pacs_spool`` (~/.local/state/...)."""
    env = os.environ if env is None else env
    if env.get(ENV_SPOOL):
        return Path(env[ENV_SPOOL])
    state = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "corpusct" / "pacs_spool"


# --- results ------------------------------------------------------------------------------------------

@dataclass
class FileOutcome:
    path: str  # file sent (spool copy for resends)
    sop_instance_uid: str
    sop_class_uid: str
    delivered: bool = False
    status: int | None = None  # last C-STORE status (None: no response)
    attempts: int = 0
    error: str = ""
    spool_path: str = ""
    transfer_syntax_uid: str = field(default="", repr=False)
    permanent: bool = False  # refused in a way a retry cannot change

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("transfer_syntax_uid")
        d["path"] = Path(self.path).name
        d["status"] = None if self.status is None else f"0x{self.status:04X}"
        return d


@dataclass
class SendReport:
    destination: str
    files: list[FileOutcome] = field(default_factory=list)
    attempts: int = 0
    echo_ok: bool = False
    elapsed_s: float = 0.0
    spool_dir: str = ""

    @property
    def delivered(self) -> list[FileOutcome]:
        return [f for f in self.files if f.delivered]

    @property
    def spooled(self) -> list[FileOutcome]:
        return [f for f in self.files if not f.delivered]

    @property
    def ok(self) -> bool:
        return all(f.delivered for f in self.files)

    def to_json(self) -> dict:
        return {"destination": self.destination, "n_files": len(self.files), "n_delivered": len(self.delivered),
                "n_spooled": len(self.spooled), "attempts": self.attempts, "echo_ok": self.echo_ok,
                "elapsed_s": round(self.elapsed_s, 3), "spool_dir": self.spool_dir,
                "files": [f.to_json() for f in self.files]}


# --- association --------------------------------------------------------------------------------------

def _header(path: Path) -> tuple[str, str, str]:
    """(SOPClassUID, SOPInstanceUID, TransferSyntaxUID) of a DICOM file."""
    ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
    ts = str(ds.file_meta.TransferSyntaxUID)
    return str(ds.SOPClassUID), str(ds.SOPInstanceUID), ts


def _make_ae(dest: PacsDestination, policy: RetryPolicy, contexts: Iterable[tuple[str, str]] = ()):
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=dest.calling_ae_title)
    ae.acse_timeout = policy.acse_timeout_s
    ae.dimse_timeout = policy.dimse_timeout_s
    ae.network_timeout = policy.network_timeout_s
    ae.connection_timeout = policy.connect_timeout_s
    ae.add_requested_context(Verification)
    uncompressed = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
    by_class: dict[str, list[str]] = {}
    for sop_class, ts in contexts:
        lst = by_class.setdefault(sop_class, [])
        if ts not in lst:
            lst.append(ts)
    n = 1
    for sop_class, tss in by_class.items():
        # one context per (class, syntax) so the PACS can accept each file's own encoding
        for ts in tss:
            alts = [ts] + ([t for t in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) if t != ts]
                           if ts in uncompressed else [])
            if n >= 127:
                raise PacsError("Too many different object types in one transfer (more than 126 presentation "
                                "contexts).")
            ae.add_requested_context(sop_class, alts)
            n += 1
    return ae


def _associate(ae, dest: PacsDestination):
    tls_args = dest.tls.ssl_args(dest.host) if dest.tls else None
    return ae.associate(dest.host, dest.port, ae_title=dest.ae_title, tls_args=tls_args)


def _assoc_failure(assoc) -> str:
    if assoc.is_rejected:
        return "association rejected by the PACS (check the AE titles and its allowed modalities)"
    if assoc.is_aborted:
        return "association aborted"
    return "no association: PACS not reachable (connection refused or timed out)"


def echo(dest: PacsDestination, policy: RetryPolicy | None = None) -> tuple[bool, str]:
    """C-ECHO: (ok, message)."""
    policy = policy or RetryPolicy()
    ae = _make_ae(dest, policy)
    try:
        assoc = _associate(ae, dest)
    except (OSError, ssl.SSLError) as ex:
        return False, f"{type(ex).__name__}: {ex}"
    if not assoc.is_established:
        return False, _assoc_failure(assoc)
    try:
        status = assoc.send_c_echo()
        ok = bool(status) and int(status.Status) == 0
        return ok, "C-ECHO success" if ok else "C-ECHO failed (no or bad response)"
    finally:
        if assoc.is_established:
            assoc.release()


def _permanent(status: int) -> bool:
    return 0xA900 <= status <= 0xA9FF or status in (0x0122, 0x0124, 0x0211)


def _attempt(items: list[FileOutcome], dest: PacsDestination, policy: RetryPolicy) -> bool:
    """One association: C-ECHO, then C-STORE each pending item. Updates the items; returns echo success."""
    ae = _make_ae(dest, policy, [(i.sop_class_uid, i.transfer_syntax_uid) for i in items])
    for it in items:
        it.attempts += 1
    try:
        assoc = _associate(ae, dest)
    except (OSError, ssl.SSLError) as ex:
        for it in items:
            it.error = f"cannot connect: {type(ex).__name__}: {ex}"
        return False
    if not assoc.is_established:
        msg = _assoc_failure(assoc)
        for it in items:
            it.error = msg
        return False
    echo_ok = False
    try:
        st = assoc.send_c_echo()
        echo_ok = bool(st) and int(st.Status) == 0
        if not echo_ok:
            for it in items:
                it.error = "C-ECHO got no success response"
            return False
        for k, it in enumerate(items):
            if not assoc.is_established or assoc.is_aborted:
                for rest in items[k:]:
                    rest.error = "association lost before sending"
                break
            try:
                status = assoc.send_c_store(Path(it.path))
            except ValueError as ex:  # no accepted presentation context for this SOP class / syntax
                it.error = f"not accepted by the PACS: {ex}"
                it.permanent = True
                continue
            except (OSError, RuntimeError) as ex:
                it.error = f"{type(ex).__name__}: {ex}"
                continue
            if not status or "Status" not in status:
                # timeout, abort or connection lost: the association is gone (pynetdicom aborts it on a
                # DIMSE timeout), even if its flags do not say so yet; do not wait on it again
                it.status = None
                it.error = "no C-STORE response (timeout, abort or connection lost)"
                for rest in items[k + 1:]:
                    rest.error = "association lost before sending"
                break
            code = int(status.Status)
            it.status = code
            if code == 0 or code in WARNING_STORED:
                it.delivered = True
                it.error = "" if code == 0 else f"stored with warning 0x{code:04X}"
            else:
                it.error = f"C-STORE failed with status 0x{code:04X}"
                if _permanent(code):
                    it.permanent = True
    finally:
        if assoc.is_established:
            try:
                assoc.release()
            except Exception:  # noqa: BLE001 - the peer may be gone: nothing more to do
                assoc.abort()
    return echo_ok


def _deliver(items: list[FileOutcome], dest: PacsDestination, policy: RetryPolicy, report: SendReport,
             sleep=time.sleep) -> None:
    for attempt in range(1, max(1, policy.max_attempts) + 1):
        pending = [i for i in items if not i.delivered and not i.permanent]
        if not pending:
            return
        report.attempts = attempt
        report.echo_ok = _attempt(pending, dest, policy) or report.echo_ok
        still = [i for i in pending if not i.delivered and not i.permanent]
        n_ok = len(pending) - len([i for i in pending if not i.delivered])
        log.info("PACS %s attempt %d: %d of %d file(s) stored", dest, attempt, n_ok, len(pending))
        if still and attempt < policy.max_attempts:
            delay = policy.delay_s(attempt)
            log.warning("PACS %s: %d file(s) not acknowledged (%s); retrying in %.1f s", dest, len(still),
                        still[0].error, delay)
            sleep(delay)


def _outcomes(paths: Sequence[str | Path]) -> list[FileOutcome]:
    out, seen = [], set()
    for p in paths:
        p = Path(p)
        try:
            sop_class, sop_uid, ts = _header(p)
        except Exception as ex:  # noqa: BLE001
            raise PacsError(f"Result file {p.name} is not a readable DICOM file ({type(ex).__name__}); "
                            "nothing was sent.") from None
        if sop_uid in seen:
            continue
        seen.add(sop_uid)
        out.append(FileOutcome(str(p), sop_uid, sop_class, transfer_syntax_uid=ts))
    return out


# --- spool --------------------------------------------------------------------------------------------

def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class SpoolEntry:
    file: Path
    manifest_path: Path
    manifest: dict

    @property
    def sop_instance_uid(self) -> str:
        return self.manifest["sop_instance_uid"]

    @property
    def destination(self) -> PacsDestination:
        return PacsDestination.from_json(self.manifest["destination"])


class Spool:
    """Folder of undelivered files: ``<SOPInstanceUID>.dcm`` + ``<SOPInstanceUID>.json`` manifest."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _atomic_write(self, data_src: Path | None, text: str | None, target: Path) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=self.folder)
        os.close(fd)
        try:
            if data_src is not None:
                shutil.copyfile(data_src, tmp)
            else:
                Path(tmp).write_text(text or "")
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def add(self, outcome: FileOutcome, dest: PacsDestination) -> SpoolEntry:
        """Copy the file into the spool (unless it is already the spool copy) and write its manifest."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = outcome.sop_instance_uid
            target = self.folder / f"{name}.dcm"
            src = Path(outcome.path)
            if src.resolve() != target.resolve():
                self._atomic_write(src, None, target)
            man_path = self.folder / f"{name}.json"
            old = json.loads(man_path.read_text()) if man_path.exists() else {}
            manifest = {
                "sop_instance_uid": outcome.sop_instance_uid,
                "sop_class_uid": outcome.sop_class_uid,
                "file": target.name,
                "original_name": old.get("original_name", src.name),
                "size_bytes": target.stat().st_size,
                "destination": dest.to_json(),
                "attempts": int(old.get("attempts", 0)) + outcome.attempts,
                "last_error": outcome.error,
                "last_status": None if outcome.status is None else f"0x{outcome.status:04X}",
                "first_spooled": old.get("first_spooled", _now_iso()),
                "last_attempt": _now_iso(),
            }
            self._atomic_write(None, json.dumps(manifest, indent=1) + "\n", man_path)
        except OSError as ex:
            raise PacsError(f"Result file {Path(outcome.path).name} could not be delivered and the spool folder "
                            f"{self.folder} cannot be written ({ex.strerror or ex}); the file stays where it "
                            "is.") from None
        outcome.spool_path = str(target)
        return SpoolEntry(target, man_path, manifest)

    def entries(self) -> list[SpoolEntry]:
        out = []
        if not self.folder.is_dir():
            return out
        for man in sorted(self.folder.glob("*.json")):
            try:
                manifest = json.loads(man.read_text())
            except (OSError, ValueError):
                log.warning("Spool manifest %s is unreadable: left in place", man.name)
                continue
            f = self.folder / manifest.get("file", man.stem + ".dcm")
            if not f.exists():
                log.warning("Spool manifest %s has no file %s: left in place", man.name, f.name)
                continue
            out.append(SpoolEntry(f, man, manifest))
        return out

    def remove(self, entry: SpoolEntry) -> None:
        entry.file.unlink(missing_ok=True)
        entry.manifest_path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self.entries())


# --- public API ---------------------------------------------------------------------------------------

def send_files(paths: Sequence[str | Path], dest: PacsDestination, *, spool_dir: str | Path | None = None,
               policy: RetryPolicy | None = None, sleep=time.sleep) -> SendReport:
    """C-ECHO + C-STORE ``paths`` to ``dest`` with retries; files not acknowledged go to the spool
    (``spool_dir``, default ``default_spool_dir()``). Raises ``PacsError`` only for unreadable inputs or an
    unwritable spool; check ``report.ok``."""
    policy = policy or RetryPolicy()
    spool = Spool(spool_dir if spool_dir is not None else default_spool_dir())
    t0 = time.monotonic()
    items = _outcomes(paths)
    report = SendReport(str(dest), items, spool_dir=str(spool.folder))
    try:
        if items:
            _deliver(items, dest, policy, report, sleep)
    except Exception as ex:  # noqa: BLE001 - whatever went wrong, the files still go to the spool below
        for it in items:
            if not it.delivered:
                it.error = it.error or f"sender error: {type(ex).__name__}: {ex}"
        raise
    finally:
        for it in items:
            if not it.delivered:
                spool.add(it, dest)
    report.elapsed_s = time.monotonic() - t0
    if report.spooled:
        log.error("PACS %s: %d of %d file(s) not delivered, kept in the spool %s (%s)", dest,
                  len(report.spooled), len(items), spool.folder, report.spooled[0].error)
    else:
        log.info("PACS %s: %d file(s) delivered in %.1f s", dest, len(items), report.elapsed_s)
    return report


def resend_spool(spool_dir: str | Path, dest: PacsDestination | None = None, *, policy: RetryPolicy | None = None,
                 sleep=time.sleep) -> SendReport:
    """Send every spooled file (to its manifest's destination, or ``dest``); delete the entries whose C-STORE
    was acknowledged, update the manifests of the others. Returns one report over all entries."""
    policy = policy or RetryPolicy()
    spool = Spool(spool_dir)
    t0 = time.monotonic()
    entries = spool.entries()
    groups: dict[PacsDestination, list[SpoolEntry]] = {}
    for e in entries:
        groups.setdefault(dest or e.destination, []).append(e)
    total = SendReport(str(dest) if dest else ", ".join(str(d) for d in groups) or "-", spool_dir=str(spool.folder))
    for d, ents in groups.items():
        items = _outcomes([e.file for e in ents])
        by_uid = {e.sop_instance_uid: e for e in ents}
        rep = SendReport(str(d), items)
        _deliver(items, d, policy, rep, sleep)
        total.attempts = max(total.attempts, rep.attempts)
        total.echo_ok = total.echo_ok or rep.echo_ok
        for it in items:
            entry = by_uid.get(it.sop_instance_uid)
            if it.delivered:
                if entry is not None:
                    spool.remove(entry)
            else:
                spool.add(it, d)
        total.files.extend(items)
    total.elapsed_s = time.monotonic() - t0
    log.info("Spool %s: %d of %d file(s) delivered, %d left", spool.folder, len(total.delivered), len(total.files),
             len(total.spooled))
    return total
