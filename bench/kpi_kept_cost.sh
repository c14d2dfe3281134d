#!/usr/bin/env bash
# What keeping the aging rows and the per-period usage costs recording usage and booking
# payments (bench/kpi_kept_cost.sql): on a database that bench/kpis.sh built and kept (KEEP=1),
# kept tables filled (kpi_rebuild_kept, as bench/kpis.sh runs it).  Every timed run rolls back.
#   PGHOST=/tmp PGPORT=5432 DB=subbilling_bench_kpis bash bench/kpi_kept_cost.sh [CALLS [RUNS]]
#                            CALLS record_usage and register_payment calls (default 1000),
#                            best of RUNS (default 3)
set -eu
cd "$(dirname "$0")/.."
psql -X -d "${DB:-subbilling_bench_kpis}" -v calls="${1:-1000}" -v runs="${2:-3}" -f bench/kpi_kept_cost.sql
