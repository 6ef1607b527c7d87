#!/usr/bin/env bash
# The workflow engine side by side with the peers users would pick instead: ATE's workflow
# bench, then DBOS Transact and procrastinate on the same PostgreSQL, in one run.
#
#   ATE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/ate_test benches/peers/run.sh
#
# The peers are installed into a throwaway virtualenv (pinned versions), removed at the
# end. Run it alone on the machine: the figures are timings. PEERS_RUNS and PEERS_SAMPLES
# shrink the peers' workloads (defaults: 4,000 steps, 200 samples, as ATE's bench).
set -euo pipefail
: "${ATE_TEST_POSTGRES_URL:?set ATE_TEST_POSTGRES_URL to the PostgreSQL to measure on}"
cd "$(dirname "$0")/../.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install --quiet --disable-pip-version-check \
    "dbos==3.4.0" "procrastinate==3.10.0" "psycopg[binary]==3.3.9"
echo "== ATE (benches/benches/workflow.rs)"
cargo bench --locked -p benches --bench workflow
echo "== DBOS Transact and procrastinate (benches/peers/peers.py)"
"$scratch/venv/bin/python" benches/peers/peers.py
