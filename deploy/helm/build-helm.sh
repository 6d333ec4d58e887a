#!/usr/bin/env bash
# Build the real `helm` from the Go module proxy (no binary downloads reach our machines) into the cache,
# once: ${ATLAS_CACHE_DIR:-~/.cache/feature-atlas}/tools/helm-<version>/helm. Prints its path.
# CI runs it before pytest; tests/unit/deploy/test_helm_chart.py renders the chart with it.
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.16.4}
dir="${ATLAS_CACHE_DIR:-$HOME/.cache/feature-atlas}/tools/helm-$HELM_VERSION"
if [ ! -x "$dir/helm" ]; then
  GO=$(command -v go || echo /usr/local/go/bin/go)
  [ -x "$GO" ] || { echo "error: go not found: install Go 1.22+ to build helm $HELM_VERSION (or put helm on PATH and set ATLAS_HELM)" >&2; exit 1; }
  mkdir -p "$dir"
  start=$(date +%s)
  # Go's module and build caches for this one build (~2 GiB) live in a scratch folder removed afterwards:
  # only the binary is kept, and CI machines have little disk to spare.
  scratch=$(mktemp -d)
  trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT
  GOCACHE="$scratch/build" GOMODCACHE="$scratch/mod" GOBIN="$dir" GOFLAGS=-trimpath CGO_ENABLED=0 \
    "$GO" install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  echo "built helm $HELM_VERSION in $(( $(date +%s) - start )) s" >&2
fi
echo "$dir/helm"
