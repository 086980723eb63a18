#!/usr/bin/env bash
# Build all six workspace images as CI can: `nox -s images` (hadolint, then
# `coderbundle images build`) on the daemon and upstream image that
# .ci/docker-setup.sh prepared.  .ci/run calls it before the tests, so the
# image tests and the start test (tests/test_image_start.py) find every image.
#
# CI reaches only package registries, so the downloads come from there
# (CODERBUNDLE_DOWNLOAD_SOURCE=registries: Node.js from PyPI, Go, kubectl, Helm
# and golangci-lint from the Go module proxy, each pinned and checked; see
# docs/images.md).  Behind a TLS-intercepting proxy the machine's locally added
# CA certificates go into the images (CODERBUNDLE_EXTRA_CA_CERT).
#
# Tags are content addresses: a second run with nothing changed builds nothing
# and takes seconds.  Exports nothing; prints where the manifest is.
set -euo pipefail
cd "$(dirname "$0")/.."

export CODERBUNDLE_DOWNLOAD_SOURCE="${CODERBUNDLE_DOWNLOAD_SOURCE:-registries}"
export CODERBUNDLE_UPSTREAM_IMAGE="${CODERBUNDLE_UPSTREAM_IMAGE:-coderbundle-upstream/debian:${CODERBUNDLE_UPSTREAM_SUITE:-trixie}}"

shopt -s nullglob
local_cas=(/usr/local/share/ca-certificates/*.crt)
if ((${#local_cas[@]})) && [ -z "${CODERBUNDLE_EXTRA_CA_CERT:-}" ]; then
  mkdir -p build
  cat "${local_cas[@]}" > build/extra-ca.pem
  export CODERBUNDLE_EXTRA_CA_CERT="$PWD/build/extra-ca.pem"
fi

python3 -m nox --version >/dev/null 2>&1 || python3 -m pip install --quiet "nox>=2024.10.9"
python3 -m nox -s images -- "$@"
echo "images: built or found all requested; see build/images.json" >&2
