"""Stage one app inside the MAP builder stage (run by the Dockerfile; no third-party imports but PyYAML).

    python3 packaging/stage_app.py APP VARIANT

From the sources copied to /opt/holoscan/app: writes /stage/etc/holoscan/{app.json,pkg.json} (validated),
/stage/var/holoscan/app.yaml, the model bundles the app lists (app.yaml application.models) to
/opt/holoscan/models/<name> (weights, configs, model card; the Python package stays in the app), their model
cards to /opt/holoscan/docs, and /opt/holoscan/app/__main__.py so that the MAP command is
`python3 /opt/holoscan/app`, as for a Python-module app packaged by `monai-deploy package`.
"""

import shutil
import sys
from pathlib import Path

APP_ROOT = Path("/opt/holoscan/app")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import app_manifest as m  # noqa: E402


def main(app: str, variant: str, stage: Path = Path("/stage")) -> None:
    m.ROOT = APP_ROOT
    if m.main([app, "--out", str(stage / "etc/holoscan"), "--variant", variant]) != 0:
        raise SystemExit(f"invalid manifests for {app}")
    (stage / "var/holoscan").mkdir(parents=True, exist_ok=True)
    shutil.copy2(APP_ROOT / "apps" / app / "app.yaml", stage / "var/holoscan/app.yaml")
    models_root, docs = Path(m.MODELS_DIR), Path("/opt/holoscan/docs")
    models_root.mkdir(parents=True, exist_ok=True)
    docs.mkdir(parents=True, exist_ok=True)
    for name in m.load_app_yaml(app, APP_ROOT)["application"].get("models") or []:
        src = APP_ROOT / "models" / name
        for part in ("configs", "models", "docs", "bundles"):  # bundles/: a collection (per-organ models)
            if (src / part).is_dir():
                shutil.copytree(src / part, models_root / name / part)
        if (src / "docs").is_dir():
            shutil.copytree(src / "docs", docs / name)
    # Bundles' weights live in /opt/holoscan/models only: drop them from the code copy.
    for weights in [*(APP_ROOT / "models").glob("*/models"), *(APP_ROOT / "models").glob("*/bundles")]:
        shutil.rmtree(weights)
    (APP_ROOT / "__main__.py").write_text(
        f'"""MAP entry point (python3 /opt/holoscan/app): runs apps/{app}."""\n'
        "import runpy\n\n"
        f'runpy.run_path("/opt/holoscan/app/apps/{app}", run_name="__main__")\n')
    for cache in list(APP_ROOT.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
