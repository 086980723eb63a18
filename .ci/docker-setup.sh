#!/usr/bin/env bash
# Prepare a real Docker daemon for the image tests and `coderbundle images build`.
#
#  1. install docker.io, debootstrap and (when Debian has it) docker-registry with apt-get;
#  2. start dockerd (overlay2) in the background unless a daemon already answers;
#  3. build a local upstream image from Debian packages (debootstrap + docker import),
#     because no image can be pulled on this machine;
#  4. start Debian's registry on 127.0.0.1:5000 for the push tests.
#
# Idempotent: a second run finds everything in place and returns within seconds.
# Apt sources are taken from this machine's own configuration, never hard-coded.
set -euo pipefail

# Debian 13 "trixie" (stable): its docker.io (26.1, API 1.45) talks to current
# daemons and it ships the buildx and compose plugins, which bookworm lacks.
SUITE="${CODERBUNDLE_UPSTREAM_SUITE:-trixie}"
UPSTREAM_IMAGE="${CODERBUNDLE_UPSTREAM_IMAGE:-coderbundle-upstream/debian:$SUITE}"
STATE_DIR="${CODERBUNDLE_DOCKER_STATE:-/var/tmp/coderbundle-docker}"
REGISTRY_ADDR="127.0.0.1:5000"
export DEBIAN_FRONTEND=noninteractive

log() { printf 'docker-setup: %s\n' "$*" >&2; }

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if ! command -v docker-registry >/dev/null \
     && apt-cache show docker-registry >/dev/null 2>&1; then
    missing+=(docker-registry)
  fi
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

daemon_answers() { docker info >/dev/null 2>&1; }

start_dockerd() {
  if daemon_answers; then
    log "daemon already answers"
    return
  fi
  mkdir -p "$STATE_DIR"
  log "starting dockerd (overlay2), log in $STATE_DIR/dockerd.log"
  nohup dockerd --storage-driver=overlay2 >"$STATE_DIR/dockerd.log" 2>&1 &
  echo $! >"$STATE_DIR/dockerd.pid"
  for _ in $(seq 1 60); do
    daemon_answers && return
    sleep 1
  done
  tail -n 30 "$STATE_DIR/dockerd.log" >&2
  log "dockerd did not answer within 60 s"
  exit 1
}

# The first "URIs:" (deb822) or "deb" line of this machine's apt configuration.
debian_mirror() {
  local uri
  uri=$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | head -n1 || true)
  if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
  fi
  [[ -n "$uri" ]] || { log "no apt mirror configured"; exit 1; }
  printf '%s\n' "$uri"
}

# This machine's Debian codename (the suite its apt sources name).
host_suite() {
  (. /etc/os-release 2>/dev/null && printf '%s\n' "${VERSION_CODENAME:-}")
}

# Copy one apt source into the image, naming $SUITE where this machine's names
# its own codename (bookworm-updates -> trixie-updates, ...); mirrors are kept.
copy_source() {
  local file=$1 dest=$2 host
  host=$(host_suite)
  if [[ -n "$host" && "$host" != "$SUITE" ]]; then
    sed -E "s/\b${host}\b/${SUITE}/g" "$file" >"$dest"
  else
    cp "$file" "$dest"
  fi
}

copy_apt_sources() {
  local target=$1 f
  rm -f "$target/etc/apt/sources.list"
  [[ -f /etc/apt/sources.list ]] && copy_source /etc/apt/sources.list "$target/etc/apt/sources.list"
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    # Only Debian's own archive: third-party repositories need keys the image lacks.
    grep -q 'debian-archive-keyring' "$f" || continue
    copy_source "$f" "$target/etc/apt/sources.list.d/$(basename "$f")"
  done
  return 0
}

# What Debian's official images do so apt stays small inside containers.
tune_rootfs() {
  local target=$1
  printf '#!/bin/sh\nexit 101\n' >"$target/usr/sbin/policy-rc.d"
  chmod 755 "$target/usr/sbin/policy-rc.d"
  cat >"$target/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
CONF
  printf 'Acquire::GzipIndexes "true";\n' >"$target/etc/apt/apt.conf.d/docker-gzip-indexes"
  printf 'APT::AutoRemove::SuggestsImportant "false";\n' \
    >"$target/etc/apt/apt.conf.d/docker-autoremove-suggests"
  rm -rf "$target"/var/lib/apt/lists/* "$target"/var/cache/apt/*.bin "$target"/tmp/*
}

build_upstream() {
  if docker image inspect --format '{{json .Config.Env}}' "$UPSTREAM_IMAGE" 2>/dev/null \
     | grep -q '"PATH='; then
    log "upstream image $UPSTREAM_IMAGE present"
    return
  fi
  local target mirror
  target=$(mktemp -d /var/tmp/coderbundle-rootfs.XXXXXX)
  mirror=$(debian_mirror)
  log "debootstrap $SUITE from the configured mirror into $target"
  debootstrap --variant=minbase "$SUITE" "$target" "$mirror" >"$target.log" 2>&1 \
    || { tail -n 30 "$target.log" >&2; exit 1; }
  copy_apt_sources "$target"
  tune_rootfs "$target"
  log "importing as $UPSTREAM_IMAGE"
  tar --numeric-owner -C "$target" -c . \
    | docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$UPSTREAM_IMAGE" >/dev/null
  rm -rf "$target" "$target.log"
}

start_registry() {
  command -v docker-registry >/dev/null || { log "no docker-registry package; push tests skip"; return; }
  if curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
    log "registry answers on $REGISTRY_ADDR"
    return
  fi
  mkdir -p "$STATE_DIR/registry"
  cat >"$STATE_DIR/registry.yml" <<CONF
version: 0.1
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
http:
  addr: $REGISTRY_ADDR
CONF
  log "starting docker-registry on $REGISTRY_ADDR"
  nohup docker-registry serve "$STATE_DIR/registry.yml" >"$STATE_DIR/registry.log" 2>&1 &
  for _ in $(seq 1 20); do
    curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && return
    sleep 0.5
  done
  log "docker-registry did not answer; see $STATE_DIR/registry.log"
}

install_packages
start_dockerd
build_upstream
start_registry
log "ready: $(docker version --format '{{.Server.Version}}') with upstream $UPSTREAM_IMAGE"
