#!/usr/bin/env bash
# The main job on an embedded default: install what is missing, build, start a throwaway
# cluster with shared_preload_libraries = 'subbilling', load the demo business (demo/*.sql,
# in name order) and show what it produces, on the PostgreSQL installed (the newest, or PGVER;
# on a machine without one, the version its Debian release ships).  The worker starts disabled; demo/30_billing.sql
# turns it on once the business is loaded, so every run bills the same data.  The cluster is dropped when the demo ends.
#
#   bash scripts/demo.sh
set -u
cd "$(dirname "$0")/.."
. scripts/lib.sh
DEPS+=(gnuplot-nox)   # the demo draws MRR over 12 months (demo/90_kpis.sql); not a test dependency

ensure_deps || { echo "could not install dependencies"; exit 1; }
build || exit 1
exec 9>/tmp/subbilling-test.lock
flock 9
install || exit 1

echo "== throwaway cluster with shared_preload_libraries = 'subbilling'"
pg_virtualenv -t -v $PGVER \
    -o shared_preload_libraries=subbilling -o subbilling.naptime=1 -o subbilling.worker_enabled=off \
    bash -c '
        set -e
        export PGOPTIONS="-c client_min_messages=warning"
        psql -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION subbilling CASCADE"
        for f in demo/*.sql; do
            psql -X -q -v ON_ERROR_STOP=1 --pset=footer=off -f "$f"
        done'
rc=$?
echo "== demo finished (exit $rc); the throwaway cluster has been dropped, no server is left running"
exit $rc
