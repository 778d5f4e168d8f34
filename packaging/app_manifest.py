"""MAP manifests for a CorpusCT app: /etc/holoscan/app.json and pkg.json from ``apps/<app>/app.yaml``.

The field names are those `monai-deploy package` (holoscan-cli 4.2.0, ``holoscan_cli/packager``) writes:

* app.json: apiVersion, command, environment, input {path, formats}, output {path, formats}, liveness,
  readiness, sdk, sdkVersion, timeout, version, workingDirectory
* pkg.json: apiVersion, applicationRoot, modelRoot, models {name: path}, resources {cpu, gpu, memory,
  gpuMemory[, sharedMemory]}, version, platformConfig

app.yaml is the holoscan-cli application configuration (``application: title, version, input-formats,
output-formats``; ``resources``) plus CorpusCT keys the CLI ignores: ``application.models`` (bundles under
models/ the app needs), ``application.timeout`` (seconds, 0 = none) and ``configuration`` (the app's settings).

    python packaging/app_manifest.py APP --out DIR [--variant cpu|cuda]   # writes DIR/app.json, DIR/pkg.json
    python packaging/app_manifest.py APP --models                          # prints the model names
    python packaging/app_manifest.py --validate DIR                        # checks DIR/app.json, pkg.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
API_VERSION = "1.0.0"  # holoscan_cli.common.constants.DefaultValues.API_VERSION (MAP/HAP version)
SDK = "monai-deploy"  # holoscan_cli SdkType.MonaiDeploy
APP_DIR, MODELS_DIR, WORK_DIR = "/opt/holoscan/app", "/opt/holoscan/models", "/var/holoscan"
INPUT_DIR, OUTPUT_DIR = f"{WORK_DIR}/input", f"{WORK_DIR}/output"
APP_JSON, PKG_JSON = "/etc/holoscan/app.json", "/etc/holoscan/pkg.json"
# Units holoscan-cli's runner parses (holoscan_cli/runner/resources.py), Kubernetes style.
MEMORY_RE = re.compile(r"^\d+(\.\d+)?\s*(Mi|MiB|Gi|GiB|MB|GB)$")
FORMATS = {"file", "network", "stream"}
PLATFORM_CONFIGS = {"igpu", "dgpu"}

ENVIRONMENT = {
    "HOLOSCAN_APPLICATION": APP_DIR,
    "HOLOSCAN_INPUT_PATH": INPUT_DIR,
    "HOLOSCAN_OUTPUT_PATH": OUTPUT_DIR,
    "HOLOSCAN_WORKDIR": WORK_DIR,
    "HOLOSCAN_MODEL_PATH": MODELS_DIR,
    "HOLOSCAN_CONFIG_PATH": f"{WORK_DIR}/app.yaml",
    "HOLOSCAN_APP_MANIFEST_PATH": APP_JSON,
    "HOLOSCAN_PKG_MANIFEST_PATH": PKG_JSON,
    "HOLOSCAN_DOCS_PATH": "/opt/holoscan/docs",
    "HOLOSCAN_LOGS_PATH": f"{WORK_DIR}/logs",
}

APP_KEYS = {"apiVersion": str, "command": str, "environment": dict, "input": dict, "output": dict,
            "liveness": (dict, type(None)), "readiness": (dict, type(None)), "sdk": str, "sdkVersion": str,
            "timeout": int, "version": str, "workingDirectory": str}
PKG_KEYS = {"apiVersion": str, "applicationRoot": str, "modelRoot": str, "models": dict, "resources": dict,
            "version": str}


class ManifestError(ValueError):
    pass


def app_names(root: Path | None = None) -> list[str]:
    root = root or ROOT
    return sorted(p.parent.name for p in (root / "apps").glob("*/app.yaml"))


def load_app_yaml(app: str, root: Path | None = None) -> dict:
    root = root or ROOT
    path = root / "apps" / app / "app.yaml"
    if not path.is_file():
        raise ManifestError(f"{path} does not exist")
    cfg = yaml.safe_load(path.read_text())
    errors = check_app_yaml(cfg, app, root)
    if errors:
        raise ManifestError(f"{path}: " + "; ".join(errors))
    return cfg


def check_app_yaml(cfg, app: str, root: Path | None = None) -> list[str]:
    """Errors in an app.yaml (empty list: fine). Same required keys as holoscan-cli's ApplicationConfiguration."""
    root = root or ROOT
    if not isinstance(cfg, dict):
        return ["not a mapping"]
    errs = []
    a, r = cfg.get("application"), cfg.get("resources")
    if not isinstance(a, dict):
        errs.append("missing 'application'")
        a = {}
    if not isinstance(r, dict):
        errs.append("missing 'resources'")
        r = {}
    if not str(a.get("title", "")).strip():
        errs.append("application.title is missing or empty")
    if not isinstance(a.get("version"), str) or not a["version"].strip():
        errs.append("application.version must be a non-empty string (quote it: '0.1.0')")
    for key in ("input-formats", "output-formats"):
        fmts = _formats(a, key)
        if not fmts or not set(fmts) <= FORMATS:
            errs.append(f"application.{key} must be a list from {sorted(FORMATS)}")
    for m in a.get("models", []) or []:
        if not is_bundle_or_collection(root / "models" / m):
            errs.append(f"model '{m}' is not a bundle under models/ (no configs/metadata.json, nor bundles/<name>/ "
                        "bundles)")
    if not isinstance(a.get("timeout", 0), int) or a.get("timeout", 0) < 0:
        errs.append("application.timeout must be an integer >= 0 (seconds)")
    errs += [f"resources.{e}" for e in check_resources(r)]
    return errs


def check_resources(r: dict) -> list[str]:
    errs = []
    cpu, gpu = r.get("cpu"), r.get("gpu")
    if isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or cpu <= 0:
        errs.append("cpu must be a number > 0")
    if isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0:
        errs.append("gpu must be an integer >= 0")
    for key in ("memory", "gpuMemory"):
        if not isinstance(r.get(key), str) or not MEMORY_RE.match(r[key]):
            errs.append(f"{key} must be a size such as '2Gi' or '512Mi' (Mi, MiB, Gi, GiB, MB, GB)")
    if "sharedMemory" in r and (not isinstance(r["sharedMemory"], str) or not MEMORY_RE.match(r["sharedMemory"])):
        errs.append("sharedMemory must be a size such as '1Gi'")
    return errs


def _formats(a: dict, key: str):
    camel = {"input-formats": "inputFormats", "output-formats": "outputFormats"}[key]
    return a.get(key, a.get(camel))


def sdk_version(root: Path | None = None) -> str:
    root = root or ROOT
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    for d in deps:
        m = re.match(r"^monai-deploy-app-sdk\s*==\s*([\w.]+)", d)
        if m:
            return m.group(1)
    raise ManifestError("pyproject.toml does not pin monai-deploy-app-sdk")


def app_manifest(app: str, root: Path | None = None) -> dict:
    root = root or ROOT
    cfg = load_app_yaml(app, root)
    a = cfg["application"]
    return {
        "apiVersion": API_VERSION,
        "command": json.dumps(["python3", APP_DIR]),  # holoscan-cli: a JSON array as a string
        "environment": dict(ENVIRONMENT),
        "input": {"path": "input/", "formats": _formats(a, "input-formats")},
        "liveness": None,
        "output": {"path": "output/", "formats": _formats(a, "output-formats")},
        "readiness": None,
        "sdk": SDK,
        "sdkVersion": sdk_version(root),
        "timeout": int(a.get("timeout", 0)),
        "version": a["version"],
        "workingDirectory": WORK_DIR,
    }


def pkg_manifest(app: str, variant: str = "cpu", root: Path | None = None) -> dict:
    root = root or ROOT
    cfg = load_app_yaml(app, root)
    a = cfg["application"]
    pkg = {
        "apiVersion": API_VERSION,
        "applicationRoot": APP_DIR,
        "modelRoot": MODELS_DIR,
        "models": {m: f"{MODELS_DIR}/{m}" for m in a.get("models", []) or []},
        "resources": dict(cfg["resources"]),
        "version": a["version"],
    }
    if variant == "cuda":
        pkg["platformConfig"] = "dgpu"
    return pkg


def validate(app_json: dict, pkg_json: dict) -> list[str]:
    """Errors against the MAP manifest fields (empty list: valid)."""
    errs = []
    for name, doc, keys in (("app.json", app_json, APP_KEYS), ("pkg.json", pkg_json, PKG_KEYS)):
        for key, typ in keys.items():
            if key not in doc:
                errs.append(f"{name}: missing '{key}'")
            elif not isinstance(doc[key], typ) or isinstance(doc[key], bool):
                errs.append(f"{name}: '{key}' has type {type(doc[key]).__name__}")
    if errs:
        return errs
    try:
        cmd = json.loads(app_json["command"])
        if not (isinstance(cmd, list) and cmd and all(isinstance(c, str) for c in cmd)):
            raise ValueError
    except ValueError:
        errs.append("app.json: 'command' must be a JSON array of strings")
    for io in ("input", "output"):
        d = app_json[io]
        if not isinstance(d.get("path"), str) or not isinstance(d.get("formats"), list) \
                or not set(d["formats"]) <= FORMATS:
            errs.append(f"app.json: '{io}' needs path (str) and formats (list from {sorted(FORMATS)})")
    for var in ENVIRONMENT:
        if not isinstance(app_json["environment"].get(var), str):
            errs.append(f"app.json: environment lacks {var}")
    if app_json["timeout"] < 0:
        errs.append("app.json: timeout < 0")
    for name, doc in (("app.json", app_json), ("pkg.json", pkg_json)):
        if doc["apiVersion"] != API_VERSION:
            errs.append(f"{name}: apiVersion {doc['apiVersion']} != {API_VERSION}")
    if app_json["version"] != pkg_json["version"]:
        errs.append("app.json and pkg.json versions differ")
    for m, p in pkg_json["models"].items():
        if not isinstance(p, str) or not p.startswith(pkg_json["modelRoot"]):
            errs.append(f"pkg.json: model {m} path {p} is not under modelRoot")
    errs += [f"pkg.json: resources.{e}" for e in check_resources(pkg_json["resources"])]
    if "platformConfig" in pkg_json and pkg_json["platformConfig"] not in PLATFORM_CONFIGS:
        errs.append(f"pkg.json: platformConfig must be one of {sorted(PLATFORM_CONFIGS)}")
    return errs


def is_bundle_or_collection(path: Path) -> bool:
    """A MONAI bundle (configs/metadata.json), or a collection of them under bundles/<name>/ (the per-organ
    segmentation models)."""
    if (path / "configs" / "metadata.json").is_file():
        return True
    return any((b / "configs" / "metadata.json").is_file() for b in (path / "bundles").glob("*"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("app", nargs="?")
    p.add_argument("--out", type=Path, help="write app.json and pkg.json here")
    p.add_argument("--variant", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--models", action="store_true", help="print the model bundle names, one a line")
    p.add_argument("--validate", type=Path, metavar="DIR", help="validate DIR/app.json and DIR/pkg.json")
    args = p.parse_args(argv)
    try:
        if args.validate:
            errs = validate(json.loads((args.validate / "app.json").read_text()),
                            json.loads((args.validate / "pkg.json").read_text()))
            for e in errs:
                print(e, file=sys.stderr)
            return 1 if errs else 0
        if not args.app:
            p.error("APP is required")
        if args.models:
            print("\n".join(load_app_yaml(args.app)["application"].get("models", []) or []))
            return 0
        app_json, pkg_json = app_manifest(args.app), pkg_manifest(args.app, args.variant)
        errs = validate(app_json, pkg_json)
        if errs:
            raise ManifestError("; ".join(errs))
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "app.json").write_text(json.dumps(app_json, indent=2) + "\n")
            (args.out / "pkg.json").write_text(json.dumps(pkg_json, indent=2) + "\n")
        else:
            print(json.dumps({"app.json": app_json, "pkg.json": pkg_json}, indent=2))
        return 0
    except ManifestError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
