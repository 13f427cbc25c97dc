#!/usr/bin/env bash
# Builds the binaries that the local test clusters run, from the Go module
# proxy, once, into a cache outside the work tree keyed by version. A second
# run finds them and returns in seconds.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# Prometheus 3.x is published to the module proxy as v0.3xx; promtool checks the chart's alerts.
PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"
GO_MIN="1.26"

CACHE="${GPUFLEET_CACHE:-$HOME/.cache/gpufleet}"
BIN="$CACHE/bin"
WORK="$CACHE/build"
mkdir -p "$BIN" "$WORK"

started=$(date +%s)
step() { printf '\033[1m[tools %4ss]\033[0m %s\n' "$(( $(date +%s) - started ))" "$*"; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

if ! command -v go >/dev/null 2>&1; then
  die "Go is not installed. Install Go >= $GO_MIN (https://go.dev/doc/install or 'apt-get install golang-go') and run 'make tools' again."
fi
go_have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$GO_MIN" "$go_have" | sort -V | head -1)" != "$GO_MIN" ]; then
  die "Go $go_have is too old; Go >= $GO_MIN is needed. Either install a newer Go, or run 'GOTOOLCHAIN=go1.27.3 make tools' so Go fetches one through the module proxy."
fi

# name-version marks a finished build; a half-built binary never carries it.
have() { [ -x "$BIN/$1-$2" ]; }
link() { ln -sf "$1-$2" "$BIN/$1"; }

export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"

# --- kwok and kwokctl ------------------------------------------------------
if have kwokctl "$KWOK_VERSION" && have kwok "$KWOK_VERSION"; then
  step "kwok/kwokctl $KWOK_VERSION: cached"
else
  step "kwok/kwokctl $KWOK_VERSION: go install (about a minute)"
  tmp="$WORK/kwok-$KWOK_VERSION"; mkdir -p "$tmp"
  GOBIN="$tmp" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  mv "$tmp/kwok" "$BIN/kwok-$KWOK_VERSION"; mv "$tmp/kwokctl" "$BIN/kwokctl-$KWOK_VERSION"
fi
link kwok "$KWOK_VERSION"; link kwokctl "$KWOK_VERSION"

# --- helm ------------------------------------------------------------------
if have helm "$HELM_VERSION"; then
  step "helm $HELM_VERSION: cached"
else
  step "helm $HELM_VERSION: go install (a few minutes)"
  tmp="$WORK/helm-$HELM_VERSION"; mkdir -p "$tmp"
  GOBIN="$tmp" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$tmp/helm" "$BIN/helm-$HELM_VERSION"
fi
link helm "$HELM_VERSION"

# --- promtool and prometheus ----------------------------------------------
# promtool checks the chart's alerts; the server itself runs beside each dev fleet
# (`gpufleet dev up`), scraping the operator with the chart's rules. Same module, same
# version: after promtool, the Go build cache makes prometheus about 1.5 minutes. Built
# without the `builtinassets` tag: the HTTP API is complete, the web UI is not embedded.
prom_cmd() {
  local name=$1 note=$2
  if have "$name" "$PROMTOOL_VERSION"; then
    step "$name $PROMTOOL_VERSION: cached"
  else
    step "$name $PROMTOOL_VERSION: go install ($note)"
    tmp="$WORK/$name-$PROMTOOL_VERSION"; mkdir -p "$tmp"
    GOBIN="$tmp" go install -ldflags "-s -w" "github.com/prometheus/prometheus/cmd/$name@$PROMTOOL_VERSION"
    mv "$tmp/$name" "$BIN/$name-$PROMTOOL_VERSION"
  fi
  link "$name" "$PROMTOOL_VERSION"
}
prom_cmd promtool "about 10 minutes cold"
prom_cmd prometheus "after promtool: about 1.5 minutes"

# --- etcd ------------------------------------------------------------------
# server/v3 is a main package whose go.mod has relative replaces, so it needs
# a helper module that pins its sibling modules at the same release.
if have etcd "$ETCD_VERSION"; then
  step "etcd $ETCD_VERSION: cached"
else
  step "etcd $ETCD_VERSION: building (a few minutes)"
  mod="$WORK/etcd-$ETCD_VERSION"; mkdir -p "$mod"
  cat >"$mod/go.mod" <<GOMOD
module gpufleet.local/etcdbuild

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
GOMOD
  printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$mod/tools.go"
  (cd "$mod" && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true
   cd "$mod" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "etcd.out" go.etcd.io/etcd/server/v3)
  mv "$mod/etcd.out" "$BIN/etcd-$ETCD_VERSION"
fi
link etcd "$ETCD_VERSION"

# --- kube-apiserver, kube-controller-manager, kube-scheduler; kubemark ------
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler)
# kubemark (hollow kubelets) comes from the same module at the same version, but
# has a "have" check of its own: a cache made before it was added builds kubemark
# alone, reusing the Go build cache of the packages it shares with the others.
K8S_ALL_CMDS=("${K8S_CMDS[@]}" kubemark)
mod="$WORK/kubernetes-$K8S_VERSION"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# The helper module that builds k8s.io/kubernetes commands at K8S_VERSION, for
# all of K8S_ALL_CMDS; made again when it was made for another list (modules.txt
# records the list), e.g. by a build-tools.sh from before kubemark.
k8s_module() {
  if [ -f "$mod/go.sum" ] && [ "$(cat "$mod/cmds.txt" 2>/dev/null)" = "${K8S_ALL_CMDS[*]}" ]; then
    return
  fi
  mkdir -p "$mod"
  staging_version="v0.${K8S_VERSION#v1.}"
  # k8s.io/kubernetes requires its staging modules at v0.0.0; pin each to its
  # published release or resolution fails with "unknown revision v0.0.0".
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >"$mod/download.json"
  gomod=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' "$mod/download.json")
  staging=$(awk '$2=="=>" && $3 ~ /^\.\/staging/ {print $1}' "$gomod")
  [ -n "$staging" ] || die "found no staging modules in $gomod"
  {
    printf 'module gpufleet.local/k8sbuild\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
    for m in $staging; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
    printf ')\n'
  } >"$mod/go.mod"
  printf 'package tools\n\nimport (\n' >"$mod/tools.go"
  for c in "${K8S_ALL_CMDS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c" >>"$mod/tools.go"; done
  printf ')\n' >>"$mod/tools.go"
  step "kubernetes: resolving modules"
  (cd "$mod" && GOFLAGS=-mod=mod go mod tidy)
  printf '%s\n' "${K8S_ALL_CMDS[*]}" >"$mod/cmds.txt"
}

all=1; for c in "${K8S_CMDS[@]}"; do have "$c" "$K8S_VERSION" || all=0; done
if [ "$all" = 1 ]; then
  step "kubernetes $K8S_VERSION: cached"
else
  step "kubernetes $K8S_VERSION: building ${K8S_CMDS[*]} (cold: 20-40 minutes on 2 cores)"
  k8s_module
  out="$mod/out"; mkdir -p "$out"
  pkgs=(); for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  step "kubernetes: compiling (progress every 100 packages; full log in $mod/build.log)"
  if ! (cd "$mod" && go build -v -trimpath -ldflags "$ld" -o "$out/" "${pkgs[@]}" 2>&1 \
        | tee "$mod/build.log" \
        | awk -v s="$started" '{n++; if (n % 100 == 0) { printf "  ... %d packages compiled (%ds)\n", n, systime()-s; fflush() }}'); then
    tail -30 "$mod/build.log" >&2
    die "build of ${K8S_CMDS[*]} failed (log above, full log in $mod/build.log)"
  fi
  for c in "${K8S_CMDS[@]}"; do
    [ -x "$out/$c" ] || die "build of $c produced no binary; see $mod/build.log"
  done
  for c in "${K8S_CMDS[@]}"; do mv "$out/$c" "$BIN/$c-$K8S_VERSION"; done
fi
for c in "${K8S_CMDS[@]}"; do link "$c" "$K8S_VERSION"; done

if have kubemark "$K8S_VERSION"; then
  step "kubemark $K8S_VERSION: cached"
else
  step "kubemark $K8S_VERSION: building (after the control plane: about 2 minutes on 2 cores, 160 packages)"
  k8s_module
  out="$mod/out"; mkdir -p "$out"
  if ! (cd "$mod" && go build -v -trimpath -ldflags "$ld" -o "$out/kubemark" k8s.io/kubernetes/cmd/kubemark 2>&1 \
        | tee "$mod/build-kubemark.log" \
        | awk -v s="$started" '{n++; if (n % 100 == 0) { printf "  ... %d packages compiled (%ds)\n", n, systime()-s; fflush() }}'); then
    tail -30 "$mod/build-kubemark.log" >&2
    die "build of kubemark failed (log above, full log in $mod/build-kubemark.log)"
  fi
  [ -x "$out/kubemark" ] || die "build of kubemark produced no binary; see $mod/build-kubemark.log"
  mv "$out/kubemark" "$BIN/kubemark-$K8S_VERSION"
fi
link kubemark "$K8S_VERSION"

step "done: $("$BIN/kube-apiserver" --version) (and kubemark) · etcd $ETCD_VERSION · kwok $KWOK_VERSION · helm $HELM_VERSION · promtool and prometheus $PROMTOOL_VERSION in $BIN"
