# Shared by scripts/demo.sh and scripts/test.sh: dependencies and the build.
# Sourced, not run.

PGVER=15
PGBIN=/usr/lib/postgresql/$PGVER/bin
PGXS_DIR=/usr/lib/postgresql/$PGVER/lib/pgxs
PG_CONFIG=$PGBIN/pg_config
export PATH=$PGBIN:$PATH PG_CONFIG

# What a fresh Debian bookworm machine lacks for building, running and testing.
DEPS=(make gcc clang libclang-rt-14-dev
      postgresql-$PGVER postgresql-server-dev-$PGVER postgresql-client-$PGVER
      postgresql-$PGVER-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl)

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

# record LABEL OK NOTOK: one tier's counts, appended to $TALLY and printed.
record() {
    echo "$1 $2 $3" >>"$TALLY"
    printf '   %-40s %5d ok %5d not ok\n' "$1" "$2" "$3"
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
