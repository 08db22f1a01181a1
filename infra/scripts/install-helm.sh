#!/usr/bin/env bash
# Install a pinned Helm 3 into ${SOCLE_TOOLS_DIR:-$HOME/.cache/socle/tools}/bin/helm.
#
# Helm is compiled from its Go module (helm.sh/helm/v3), fetched through the Go module
# proxy: our machines reach package registries only, not Helm's release downloads. The
# build sets the same version and Kubernetes-version linker flags as Helm's own Makefile,
# so `helm version` and the Kubernetes version `helm template` assumes are those of the
# release binary.
#
# Idempotent: when the pinned version is already installed it does nothing. Progress goes
# to stderr; the last line on stdout is the path of the helm binary.
#
# Environment:
#   SOCLE_TOOLS_DIR      where tools live (default: ~/.cache/socle/tools)
#   SOCLE_HELM_VERSION   Helm version to install (default: the pinned one below)
#   GO                   Go command to build with (default: go on PATH); Go >= 1.21 fetches
#                        the toolchain Helm's go.mod asks for from the module proxy if needed.
set -euo pipefail

HELM_VERSION="${SOCLE_HELM_VERSION:-v3.21.4}"
TOOLS_DIR="${SOCLE_TOOLS_DIR:-$HOME/.cache/socle/tools}"
BIN_DIR="$TOOLS_DIR/bin"
HELM="$BIN_DIR/helm"
GO="${GO:-go}"

log() { printf '[install-helm] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

installed_version() {
    [[ -x "$HELM" ]] || return 0
    "$HELM" version --template '{{ .Version }}' 2>/dev/null || true
}

mkdir -p "$BIN_DIR"

# One installer at a time (parallel test workers, two terminals).
exec 9>"$BIN_DIR/.helm.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi

if [[ "$(installed_version)" == "$HELM_VERSION" ]]; then
    log "helm $HELM_VERSION already installed"
    printf '%s\n' "$HELM"
    exit 0
fi

command -v "$GO" >/dev/null 2>&1 \
    || die "Go is needed to build Helm from its module (apt-get install golang-go, or set GO=/path/to/go)"

module="helm.sh/helm/v3"
start=$SECONDS
log "building helm $HELM_VERSION with $("$GO" version) (cold: about 1-3 minutes on 2 cores)"

# Helm's Makefile derives the default Kubernetes version from its client-go dependency
# (v0.X.Y -> 1.X); read it from the go.mod of the pinned release.
log "fetching $module@$HELM_VERSION from the Go module proxy"
gomod="$("$GO" mod download -json "$module@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
[[ -n "$gomod" && -f "$gomod" ]] || die "could not download $module@$HELM_VERSION"
client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")"
[[ "$client_go" =~ ^v0\.([0-9]+)\. ]] || die "no k8s.io/client-go version in $gomod"
k8s_minor="${BASH_REMATCH[1]}"

ldflags="-s -w -X $module/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X $module/$pkg.k8sVersionMajor=1 -X $module/$pkg.k8sVersionMinor=$k8s_minor"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "compiling (Kubernetes 1.$k8s_minor libraries)"
CGO_ENABLED=0 GOBIN="$work" \
    "$GO" install -trimpath -ldflags "$ldflags" "$module/cmd/helm@$HELM_VERSION" >"$work/build.log" 2>&1 &
build=$!
next_report=$((SECONDS + 15))
while kill -0 "$build" 2>/dev/null; do
    sleep 1
    if ((SECONDS >= next_report)); then
        log "still compiling... $((SECONDS - start)) s"
        next_report=$((SECONDS + 15))
    fi
done
if ! wait "$build"; then
    cat "$work/build.log" >&2
    die "go install of $module/cmd/helm@$HELM_VERSION failed"
fi

built_version="$("$work/helm" version --template '{{ .Version }}')"
[[ "$built_version" == "$HELM_VERSION" ]] || die "built helm reports $built_version, expected $HELM_VERSION"
mv -f "$work/helm" "$HELM"
log "installed helm $HELM_VERSION in $((SECONDS - start)) s"
printf '%s\n' "$HELM"
