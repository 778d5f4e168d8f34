"""Command line of the PACS sender (destination from options, else the CORPUSCT_PACS_* environment).

    python -m operators.pacs_sender echo   [--aet A --host H --port P --calling-aet C]
    python -m operators.pacs_sender send   FILE_OR_DIR... [--spool DIR] [destination options]
    python -m operators.pacs_sender resend --spool DIR [destination options: override the manifests']
    python -m operators.pacs_sender list   --spool DIR

Prints a JSON summary on stdout. Exit codes: 0 everything delivered (or echo answered), 5 something is
(still) in the spool or the PACS did not answer, 2 bad usage / no destination configured.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from operators.common.errors import PacsError

from .sender import (
    PacsDestination,
    RetryPolicy,
    Spool,
    TLSConfig,
    default_spool_dir,
    echo,
    resend_spool,
    send_files,
)


def _destination(args, required: bool) -> PacsDestination | None:
    cfg = {k: v for k, v in (("ae_title", args.aet), ("host", args.host), ("port", args.port),
                             ("calling_ae_title", args.calling_aet)) if v}
    if args.tls:
        cfg["tls"] = TLSConfig(ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key,
                               check_hostname=not args.tls_no_hostname_check)
    if not cfg and not required:
        return None
    dest = PacsDestination.from_config(cfg)
    if dest is None and required:
        raise SystemExit("no PACS destination: give --host/--port/--aet or set CORPUSCT_PACS_HOST/_PORT/_AET")
    return dest


def _files(items: list[str]) -> list[Path]:
    out: list[Path] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".")))
        else:
            out.append(p)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m operators.pacs_sender", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["echo", "send", "resend", "list"])
    p.add_argument("files", nargs="*", help="files or folders to send (send)")
    p.add_argument("--spool", help="spool folder (default: $CORPUSCT_PACS_SPOOL or ~/.local/state/corpusct/pacs_spool)")
    p.add_argument("--aet", help="called AE title (PACS)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--calling-aet")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--tls-ca")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--tls-no-hostname-check", action="store_true")
    p.add_argument("--attempts", type=int, default=4, help="attempts per file (default 4)")
    p.add_argument("--delay", type=float, default=1.0, help="first retry delay in s, doubled each time (default 1)")
    p.add_argument("--max-delay", type=float, default=30.0)
    p.add_argument("-l", "--log-level", default="INFO")
    args = p.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    policy = RetryPolicy(max_attempts=args.attempts, initial_delay_s=args.delay, max_delay_s=args.max_delay)
    spool_dir = Path(args.spool) if args.spool else default_spool_dir()
    try:
        if args.command == "echo":
            ok, msg = echo(_destination(args, True), policy)
            print(json.dumps({"ok": ok, "message": msg}))
            return 0 if ok else PacsError.exit_code
        if args.command == "list":
            entries = Spool(spool_dir).entries()
            print(json.dumps({"spool_dir": str(spool_dir), "n_entries": len(entries),
                              "entries": [e.manifest for e in entries]}, indent=1))
            return 0
        if args.command == "send":
            files = _files(args.files)
            if not files:
                raise SystemExit("send: no files given")
            report = send_files(files, _destination(args, True), spool_dir=spool_dir, policy=policy)
        else:
            report = resend_spool(spool_dir, _destination(args, False), policy=policy)
    except PacsError as ex:
        print(f"ERROR: {ex}", file=sys.stderr)
        return ex.exit_code
    summary = report.to_json()
    summary["n_left_in_spool"] = len(Spool(spool_dir).entries())
    print(json.dumps(summary, indent=1))
    return 0 if report.ok else PacsError.exit_code


if __name__ == "__main__":
    sys.exit(main())
