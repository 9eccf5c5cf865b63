#!/bin/sh
# Build the triagebot image without Docker Hub: a Debian bookworm base from Debian packages
# (debootstrap: python3, python3-venv), then deploy/Dockerfile on top of it with buildah; finally
# start the image and check that /healthz answers.
#   sudo deploy/build-image.sh            (needs: debootstrap, buildah; root for debootstrap/chroot)
# Environment: MIRROR (default http://deb.debian.org/debian), WORK (default /var/tmp/triagebot-image),
# PORT (default 3300), BUILDAH_FLAGS (default "--storage-driver vfs").
set -eu
cd "$(dirname "$0")/.."
MIRROR=${MIRROR:-http://deb.debian.org/debian}
WORK=${WORK:-/var/tmp/triagebot-image}
PORT=${PORT:-3300}
BUILDAH_FLAGS=${BUILDAH_FLAGS:---storage-driver vfs}
BASE=localhost/triagebot-python-base:bookworm

if ! buildah $BUILDAH_FLAGS inspect --type image "$BASE" >/dev/null 2>&1; then
  rm -rf "$WORK/rootfs"
  mkdir -p "$WORK"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
    bookworm "$WORK/rootfs" "$MIRROR"
  chroot "$WORK/rootfs" apt-get clean
  rm -rf "$WORK/rootfs/var/lib/apt/lists/"*
  ctr=$(buildah $BUILDAH_FLAGS from scratch)
  buildah $BUILDAH_FLAGS copy "$ctr" "$WORK/rootfs" /
  buildah $BUILDAH_FLAGS config --env LANG=C.UTF-8 --cmd /bin/bash "$ctr"
  buildah $BUILDAH_FLAGS commit "$ctr" "$BASE"
  buildah $BUILDAH_FLAGS rm "$ctr"
fi

# Behind a TLS-intercepting proxy (EXTRA_CA_DIR holds its CA, *.crt), pip inside the build must trust
# it too: derive a base with those certificates (they end up in the local image as well).
EXTRA_CA_DIR=${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
BUILD_BASE=$BASE
if ls "$EXTRA_CA_DIR"/*.crt >/dev/null 2>&1; then
  BUILD_BASE=localhost/triagebot-python-base:bookworm-local-ca
  ctr=$(buildah $BUILDAH_FLAGS from "$BASE")
  buildah $BUILDAH_FLAGS copy "$ctr" "$EXTRA_CA_DIR" /usr/local/share/ca-certificates/
  buildah $BUILDAH_FLAGS run --isolation chroot "$ctr" -- update-ca-certificates
  buildah $BUILDAH_FLAGS config --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt "$ctr"
  buildah $BUILDAH_FLAGS commit "$ctr" "$BUILD_BASE"
  buildah $BUILDAH_FLAGS rm "$ctr"
fi

# --format docker: the OCI image format has no HEALTHCHECK
buildah $BUILDAH_FLAGS build --format docker --isolation chroot --build-arg PYTHON_IMAGE="$BUILD_BASE" \
  -f deploy/Dockerfile -t localhost/triagebot:latest .

# Start it (chroot isolation, host network) with an SQLite database and fake-free settings:
# /healthz only needs the store. HTTP mode needs the Slack settings to start, not to answer probes.
ctr=$(buildah $BUILDAH_FLAGS from localhost/triagebot:latest)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; buildah $BUILDAH_FLAGS rm "$ctr" >/dev/null' EXIT
buildah $BUILDAH_FLAGS run --isolation chroot --network host \
  --env SLACK_BOT_TOKEN=xoxb-image-check --env SLACK_SIGNING_SECRET=image-check \
  --env TRIAGE_CHANNEL=C0IMAGECHECK --env DATABASE_URL=sqlite:////tmp/triagebot.db \
  --env DATABASE_AUTO_MIGRATE=true \
  "$ctr" -- triagebot run --http --host 127.0.0.1 --port "$PORT" &
pid=$!
for _ in $(seq 1 120); do
  if python3 -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:$PORT/healthz', timeout=2).status != 200)" 2>/dev/null; then
    echo "image OK: /healthz answered 200 on port $PORT"
    exit 0
  fi
  sleep 1
done
echo "image check FAILED: /healthz did not answer within 120 s" >&2
exit 1
