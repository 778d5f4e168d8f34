"""Command-line entry shared by every CorpusCT app: ``python apps/<app> -i DICOM_DIR -o OUT_DIR [-m MODELS]``.

* Paths come from the arguments, else from the MAP environment (``HOLOSCAN_INPUT_PATH``,
  ``HOLOSCAN_OUTPUT_PATH``, ``HOLOSCAN_MODEL_PATH``), as the SDK's own apps do.
* No input at all runs the app on the built-in demo study (a procedural phantom, generated on the fly).
* Results are written to a staging folder inside OUT and moved into OUT only when the app succeeded:
  a failed run leaves no partial output.
* A ``CorpusCTError`` ends the run with its message on stderr and the family's non-zero exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from operators.common.errors import BadInputError, CorpusCTError

STACK_BYTES = 32 * 1024 * 1024  # Holoscan recommends a 32 MB stack (MAPs run with --ulimit stack=33554432)
log = logging.getLogger("corpusct")


def ensure_stack_size() -> None:
    """Re-exec the interpreter with a 32 MB stack limit if the current one is smaller and may be raised.

    The main thread's and default thread stack size are fixed at process start, so the limit must be
    raised before exec, not afterwards.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if soft == resource.RLIM_INFINITY or soft >= STACK_BYTES or os.environ.get("CORPUSCT_STACK_SET"):
        return
    if hard != resource.RLIM_INFINITY and hard < STACK_BYTES:
        return
    resource.setrlimit(resource.RLIMIT_STACK, (STACK_BYTES, hard))
    os.environ["CORPUSCT_STACK_SET"] = "1"
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("-i", "--input", default=os.environ.get("HOLOSCAN_INPUT_PATH") or None,
                   help="folder of DICOM files (default: $HOLOSCAN_INPUT_PATH, else the built-in demo study)")
    p.add_argument("-o", "--output", default=os.environ.get("HOLOSCAN_OUTPUT_PATH") or "output",
                   help="output folder (default: $HOLOSCAN_OUTPUT_PATH, else ./output)")
    p.add_argument("-m", "--model", default=os.environ.get("HOLOSCAN_MODEL_PATH") or None,
                   help="models folder (default: $HOLOSCAN_MODEL_PATH, else the repository's models/)")
    p.add_argument("-l", "--log-level", default=os.environ.get("CORPUSCT_LOG_LEVEL", "INFO"))
    return p.parse_args(argv)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def make_demo_study(workdir: Path) -> Path:
    """Write the built-in demo study (procedural phantom) and return its DICOM folder."""
    from models.phantoms import demo_study

    log.info("No input given: running on the built-in demo study (procedural phantom, not patient data)")
    return demo_study(workdir)


def publish(staging: Path, output: Path) -> list[Path]:
    """Move everything from the staging folder into the output folder (same file system: atomic renames)."""
    moved = []
    for item in sorted(staging.iterdir()):
        target = output / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(item, target)
        moved.append(target)
    staging.rmdir()
    return moved


def run_app(app_factory, description: str, argv: list[str] | None = None) -> int:
    """Resolve paths, build the app with ``app_factory(input_dir, staging_dir, models_dir)``, run it and
    publish its outputs. Returns the process exit code."""
    args = parse_args(description, argv)
    configure_logging(args.log_level)
    output = Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".corpusct-staging-", dir=output))
    demo_tmp = None
    t0 = time.monotonic()
    try:
        if args.input:
            input_dir = Path(args.input).resolve()
            if not input_dir.is_dir():
                raise BadInputError(f"Input folder {input_dir} does not exist or is not a folder.")
        else:
            demo_tmp = Path(tempfile.mkdtemp(prefix="corpusct-demo-"))
            input_dir = make_demo_study(demo_tmp)
        models_dir = Path(args.model).resolve() if args.model else Path(__file__).resolve().parents[1] / "models"
        app = app_factory(input_dir, staging, models_dir)
        app.run()
        outputs = publish(staging, output)
        log.info("Finished in %.1f s; %d result(s) in %s", time.monotonic() - t0, len(outputs), output)
        return 0
    except CorpusCTError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        log.error("%s: %s", type(exc).__name__, exc)
        print(f"ERROR: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # an unexpected failure: keep the traceback, still no partial output
        shutil.rmtree(staging, ignore_errors=True)
        log.exception("Internal error")
        print(f"ERROR: internal error ({type(exc).__name__}: {exc}); no results were written.", file=sys.stderr)
        return 1
    finally:
        if demo_tmp is not None:
            shutil.rmtree(demo_tmp, ignore_errors=True)
