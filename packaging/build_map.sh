#!/usr/bin/env bash
# Build and run one CorpusCT MAP offline:  packaging/build_map.sh APP     (make map APP=<app>)
#  1. starts dockerd if no engine answers;
#  2. base image: $BASE_IMAGE if set, else python:3.11-slim-bookworm if present or pullable, else a local
#     debootstrap image (packaging/make_base_image.sh, cached);
#  3. brings the torch CPU wheel (/opt/wheels), a host-built pyradiomics-bhklab wheel and the machine's extra CA certificates
#     (/usr/local/share/ca-certificates) into build/map-extras (git-ignored; builder stage only);
#  4. docker build -t corpusct/APP:VERSION; checks the manifests, the user and the layout in the image;
#  5. docker run on the demo study (input read-only, output mounted) and checks the outputs.
# Writes build/map/APP/summary.json (build/run seconds, image size).
set -euo pipefail
cd "$(dirname "$0")/.."
APP="${1:?usage: packaging/build_map.sh APP}"
VARIANT="${VARIANT:-cpu}"
PY="${PY:-.venv/bin/python}"; [ -x "$PY" ] || PY=python3
WORK="build/map/$APP"; EXTRAS="build/map-extras"; STUDY="${STUDY:-build/demo/study}"
LOCAL_BASE="corpusct/base:bookworm-py311"; PUBLIC_BASE="python:3.11-slim-bookworm"
[ -f "apps/$APP/app.yaml" ] || { echo "apps/$APP/app.yaml not found" >&2; exit 2; }

# Docker client: Debian's (20.10) with BuildKit; another client on PATH only with the classic builder.
if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; export DOCKER_BUILDKIT=1
else DOCKER=docker; export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"; fi
export DOCKER

if ! $DOCKER info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { echo "no Docker engine and no dockerd (apt-get install docker.io)" >&2; exit 1; }
  mkdir -p build/map; echo "== starting dockerd (log build/map/dockerd.log)"
  nohup dockerd >build/map/dockerd.log 2>&1 &
  for _ in $(seq 1 30); do $DOCKER info >/dev/null 2>&1 && break; sleep 1; done
  $DOCKER info >/dev/null 2>&1 || { echo "dockerd did not start: see build/map/dockerd.log" >&2; exit 1; }
fi

if [ -z "${BASE_IMAGE:-}" ]; then
  if $DOCKER image inspect "$PUBLIC_BASE" >/dev/null 2>&1; then BASE_IMAGE="$PUBLIC_BASE"
  elif $DOCKER image inspect "$LOCAL_BASE" >/dev/null 2>&1; then BASE_IMAGE="$LOCAL_BASE"
  elif timeout 30 $DOCKER pull -q "$PUBLIC_BASE" >/dev/null 2>&1; then BASE_IMAGE="$PUBLIC_BASE"
  else echo "== no registry reachable: making $LOCAL_BASE with debootstrap"
       packaging/make_base_image.sh "$LOCAL_BASE"; BASE_IMAGE="$LOCAL_BASE"; fi
fi
echo "== base image $BASE_IMAGE"

mkdir -p "$EXTRAS/wheels" "$EXTRAS/certs" "$WORK"
if [ "$VARIANT" = cpu ]; then
  for w in /opt/wheels/torch-2.13.0+cpu-cp311-*.whl; do
    [ -f "$w" ] && { [ -f "$EXTRAS/wheels/${w##*/}" ] || ln -f "$w" "$EXTRAS/wheels/" 2>/dev/null || cp "$w" "$EXTRAS/wheels/"; }
  done
fi
# Requirements published only as a C sdist (pyradiomics-bhklab) are built into wheels here, with the host's
# compiler: the slim MAP builder stage has no gcc. pip in the image prefers these wheels.
if grep -q '^pyradiomics-bhklab' "apps/$APP/requirements.txt" && ! ls "$EXTRAS"/wheels/pyradiomics_bhklab-*.whl >/dev/null 2>&1; then
  .venv/bin/python -m pip wheel -q --no-deps -w "$EXTRAS/wheels" "$(grep -o '^pyradiomics-bhklab==[0-9.]*' "apps/$APP/requirements.txt")"
fi
rm -f "$EXTRAS/certs/"*.crt
cp /usr/local/share/ca-certificates/*.crt "$EXTRAS/certs/" 2>/dev/null || true

VERSION="$(grep -m1 -E '^\s+version:' "apps/$APP/app.yaml" | sed -E "s/.*version:\s*['\"]?([^'\" #]+).*/\1/")"
IMAGE="corpusct/$APP:$VERSION"; [ "$VARIANT" = cpu ] || IMAGE="$IMAGE-$VARIANT"
echo "== docker build $IMAGE"
t0=$(date +%s.%N)
$DOCKER build -t "$IMAGE" --build-arg APP="$APP" --build-arg VARIANT="$VARIANT" \
  --build-arg BASE_IMAGE="$BASE_IMAGE" . >"$WORK/build.log" 2>&1 \
  || { tail -n 20 "$WORK/build.log"; echo "docker build failed: see $WORK/build.log" >&2; exit 1; }
t_build=$(echo "$(date +%s.%N) - $t0" | bc)
size=$($DOCKER image inspect -f '{{.Size}}' "$IMAGE")

echo "== checking the image layout and manifests"
rm -rf "$WORK/manifests"; mkdir -p "$WORK/manifests"
cid=$($DOCKER create "$IMAGE")
$DOCKER cp "$cid:/etc/holoscan/app.json" "$WORK/manifests/app.json"
$DOCKER cp "$cid:/etc/holoscan/pkg.json" "$WORK/manifests/pkg.json"
$DOCKER rm "$cid" >/dev/null
"$PY" packaging/app_manifest.py --validate "$WORK/manifests"
$DOCKER run --rm --entrypoint /bin/sh "$IMAGE" -c '
  set -e; [ "$(id -u)" = 1000 ] && [ "$(id -un)" = holoscan ]
  test -f /opt/holoscan/app/__main__.py -a -d /opt/holoscan/models -a -f /var/holoscan/app.yaml
  test -w /var/holoscan/output
  ! ls /usr/local/share/ca-certificates/*.crt /tmp/extras >/dev/null 2>&1
  ! command -v gcc >/dev/null; ! ls /root/.cache/pip >/dev/null 2>&1
  for m in $(python3 -c "import json; print(\" \".join(json.load(open(\"/etc/holoscan/pkg.json\"))[\"models\"].values()))"); do test -d "$m"; done'

[ -d "$STUDY/dicom" ] || "$PY" -m models.phantoms demo --out "$STUDY" --region abdomen
OUT="$WORK/out"; rm -rf "$OUT"; mkdir -p "$OUT"; chmod 777 "$OUT"
echo "== docker run on $STUDY/dicom"
t0=$(date +%s.%N)
$DOCKER run --rm --ulimit stack=33554432 -v "$PWD/$STUDY/dicom:/var/holoscan/input:ro" \
  -v "$PWD/$OUT:/var/holoscan/output" "$IMAGE" >"$WORK/run.log" 2>&1 \
  || { tail -n 20 "$WORK/run.log"; echo "MAP run failed: see $WORK/run.log" >&2; exit 1; }
tail -n 2 "$WORK/run.log"
t_run=$(echo "$(date +%s.%N) - $t0" | bc)

echo "== checking outputs"
"$PY" - "$APP" "$OUT" <<'PY'
import json, sys
from pathlib import Path
sys.path.insert(0, "packaging")
import app_manifest as m
app, out = sys.argv[1], Path(sys.argv[2])
expected = m.load_app_yaml(app)["application"].get("outputs") or ["results.json"]
missing = [f for f in expected if not (out / f).is_file() or (out / f).stat().st_size == 0]
if missing:
    sys.exit(f"missing outputs: {missing} (have {sorted(p.name for p in out.iterdir())})")
for f in expected:
    if f.endswith(".json"):
        json.loads((out / f).read_text())
if any(p.name.startswith(".corpusct-staging") for p in out.iterdir()):
    sys.exit("staging folder left behind")
print("outputs ok:", ", ".join(expected))
PY
printf '{"app": "%s", "image": "%s", "base_image": "%s", "build_s": %.1f, "image_bytes": %s, "run_s": %.1f}\n' \
  "$APP" "$IMAGE" "$BASE_IMAGE" "$t_build" "$size" "$t_run" | tee "$WORK/summary.json"
