# Shared by scripts/demo.sh and scripts/test.sh: dependencies and the build.
# Sourced, not run.

# The PostgreSQL major version: $PGVER if set, else the newest server installed, else the
# one this Debian release ships (15 on bookworm, 17 on trixie, 18 on sid).
default_pgver() {
    local v
    v=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sed -E 's|.*/postgresql/([0-9]+)/.*|\1|' | sort -n | tail -1)
    if [ -z "$v" ]; then
        v=$(apt-cache depends postgresql 2>/dev/null | sed -nE 's/.*Depends: postgresql-([0-9]+)$/\1/p' | head -1)
    fi
    if [ -z "$v" ]; then
        case $(. /etc/os-release && echo "${VERSION_CODENAME:-}") in
            bookworm) v=15 ;; trixie) v=17 ;; *) v=18 ;;
        esac
    fi
    echo "$v"
}
PGVER=${PGVER:-$(default_pgver)}
PGBIN=/usr/lib/postgresql/$PGVER/bin
PGXS_DIR=/usr/lib/postgresql/$PGVER/lib/pgxs
PG_CONFIG=$PGBIN/pg_config
export PATH=$PGBIN:$PATH PG_CONFIG

# What a fresh Debian machine (bookworm, trixie, sid) lacks for building, running and testing;
# libclang-rt-dev is the sanitizer and libFuzzer runtime of the suite's default clang; libcurl
# is the webhook worker's HTTP client.  scripts/test.sh adds what only the tests need.
DEPS=(make gcc clang libclang-rt-dev
      postgresql-$PGVER postgresql-server-dev-$PGVER postgresql-client-$PGVER
      postgresql-$PGVER-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl
      libcurl4-openssl-dev python3)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_deps() {
    local missing=() p
    for p in "${DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing: ${missing[*]}"
        as_root apt-get update -qq || return 1
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null || return 1
    fi
}

# Build warning-free (-Werror under -Wall -Wextra).
build() {
    echo "== building subbilling"
    mkdir -p build
    if ! make -s PG_CONFIG="$PG_CONFIG" WERROR=-Werror >build/make.log 2>&1; then
        cat build/make.log
        return 1
    fi
}

# Install into the system PostgreSQL.
install() {
    as_root make -s PG_CONFIG="$PG_CONFIG" install >/dev/null
}

# record LABEL OK NOTOK: one tier's counts, labelled with the PostgreSQL version, appended to
# $TALLY and printed.  A tier that counted nothing has not run what it was meant to: a failure.
record() {
    local label="pg$PGVER $1" ok=$2 nok=$3
    if [ "$ok" -eq 0 ] && [ "$nok" -eq 0 ]; then
        nok=1; label="$label (ran nothing)"
    fi
    echo "$label $ok $nok" >>"$TALLY"
    printf '   %-48s %5d ok %5d not ok\n' "$label" "$ok" "$nok"
}

# tally_tap LABEL OUTPUT-FILE EXIT-CODE: count TAP "ok"/"not ok" lines; a non-zero exit
# with no "not ok" line (a crash, a plan mismatch, an aborted script) is one failure.
tally_tap() {
    local ok nok
    ok=$(grep -cE '^[[:space:]]*ok [0-9]+' "$2")
    nok=$(grep -cE '^[[:space:]]*not ok [0-9]+' "$2")
    if [ "$3" -ne 0 ] && [ "$nok" -eq 0 ]; then nok=1; fi
    record "$1" "$ok" "$nok"
    if [ "$3" -ne 0 ] || [ "$nok" -ne 0 ]; then
        grep -vE '^[[:space:]]*ok [0-9]+' "$2" | head -80
    fi
}

# count_regress LABEL LOG EXIT WANTED: pg_regress's summary lines, in the format of 15
# ("test name ... ok", "     name ... FAILED") and of 16 on (TAP: "ok 1 - name", "not ok 2 + name");
# a run that did not report all WANTED tests (a format not understood, a test not run) fails.
count_regress() {
    local ok nok
    ok=$(grep -cE -e '^(test | +)?[a-z0-9_]+ +\.\.\. ok' -e '^ok [0-9]+ +[-+] ' "$2")
    nok=$(grep -cE -e '\.\.\. FAILED|\.\.\. failed' -e '^not ok [0-9]+ +[-+] ' "$2")
    if [ "$3" -ne 0 ] && [ "$nok" -eq 0 ]; then nok=1; fi
    if [ $((ok + nok)) -ne "$4" ]; then
        echo "   pg_regress reported $((ok + nok)) tests, $4 expected"
        nok=$((nok + 1))
    fi
    record "$1" "$ok" "$nok"
}
