#!/usr/bin/env bash
# The default profile's first run, timed as a new user meets it: `atlas demo --no-serve` on a fresh cache and a
# fresh Neo4j home (corpus download, model dequantisation, training, ingest and labels included; pip install and
# the Maven assembly of Neo4j not counted). Then feed the log to bench_demo.py:
#
#   bash bench/first_run.sh native 7730          # log: /tmp/first-run-native.log
#   bash bench/first_run.sh avx2 7740 avx2       # the same with every math library capped to AVX2
#   ATLAS_CACHE_DIR=/tmp/first-run-native NEO4J_URI=bolt://127.0.0.1:7730 python -m bench.bench_demo --skip-tiny \
#       --default-log /tmp/first-run-native.log --avx2-log /tmp/first-run-avx2.log
#
# Run it on an otherwise idle machine: the figure is a wall time. The Neo4j it starts keeps running (bench_demo
# reads the flow from it); stop it with ATLAS_NEO4J_HOME=/tmp/first-run-NAME/neo4j atlas db stop.
set -u
NAME=$1; PORT=$2; MODE=${3:-native}
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD ATLAS_CACHE_DIR=/tmp/first-run-$NAME ATLAS_NEO4J_HOME=/tmp/first-run-$NAME/neo4j
export ATLAS_NEO4J_BOLT_PORT=$PORT ATLAS_NEO4J_HTTP_PORT=$((PORT + 100)) ATLAS_NEO4J_HEAP=1g ATLAS_NEO4J_PAGECACHE=512m
unset NEO4J_URI
rm -rf "/tmp/first-run-$NAME" && mkdir -p "/tmp/first-run-$NAME"
if [ "$MODE" = avx2 ]; then  # the caps have one home: bench/machine.py AVX2_EMULATION
  # shellcheck disable=SC2046
  export $(.venv/bin/python -c "import sys; sys.path.insert(0, 'bench'); from machine import AVX2_EMULATION as E; print(' '.join(f'{k}={v}' for k, v in E.items()))")
fi
echo "start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg) cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
/usr/bin/time -v .venv/bin/atlas demo --no-serve > "/tmp/first-run-$NAME.log" 2>&1
rc=$?
echo "end $(date -u +%T) rc $rc load $(cut -d' ' -f1-3 /proc/loadavg); log /tmp/first-run-$NAME.log"
exit $rc
