#!/usr/bin/env bash
# The docs tier can fail: test/docs.pl must fail on a wrong output block, on an error no output
# block shows, and when no block ran, and pass a page that runs as shown; and META.json,
# CHANGELOG.md and LICENSE agree with the version of subbilling.control.  TAP output.
# Against the server that PG* variables point at, from the repository root.
set -u
cd "$(dirname "$0")/.."
n=0; bad=0
check() {   # DESCRIPTION EXPECTED-EXIT(0|1) PAGE
    local out rc
    out=$(perl test/docs.pl "$3" 2>&1); rc=$?
    n=$((n + 1))
    if { [ "$2" -eq 0 ] && [ $rc -eq 0 ]; } || { [ "$2" -ne 0 ] && [ $rc -ne 0 ] && grep -q '^not ok' <<<"$out"; }; then
        echo "ok $n - $1"
    else
        echo "not ok $n - $1 (exit $rc)"; sed 's/^/# /' <<<"$out"; bad=$((bad + 1))
    fi
}
check "a page that runs as shown passes" 0 test/docs/right_output.md
check "a wrong output block fails" 1 test/docs/wrong_output.md
check "an error in a block without output fails" 1 test/docs/hidden_error.md
check "zero blocks run fails" 1 test/docs/no_sql.md
out=$(perl test/docs.pl test/docs/wrong_output.md 2>&1)
n=$((n + 1))
if grep -q '^# - 2.49 SEK' <<<"$out" && grep -q '^# + 2.50 SEK' <<<"$out"; then echo "ok $n - the failure shows a diff"
else echo "not ok $n - the failure shows a diff"; sed 's/^/# /' <<<"$out"; bad=$((bad + 1)); fi
# the release files agree with the control file's version
ver=$(sed -n "s/^default_version = '\(.*\)'/\1/p" subbilling.control)
meta=$(perl -MJSON::PP -e 'local $/; open my $f, "<", "META.json" or die; my $m = decode_json(<$f>);
    print join(" ", $m->{version}, $m->{provides}{subbilling}{version}, $m->{license})' 2>&1)
n=$((n + 1))
if [ "$meta" = "$ver.0 $ver.0 postgresql" ]; then echo "ok $n - META.json is valid JSON for version $ver, PostgreSQL License"
else echo "not ok $n - META.json: got '$meta' for version $ver"; bad=$((bad + 1)); fi
n=$((n + 1))
if grep -q "^## $ver " CHANGELOG.md && grep -q '^PostgreSQL License' LICENSE; then echo "ok $n - CHANGELOG.md has $ver, LICENSE is the PostgreSQL License"
else echo "not ok $n - CHANGELOG.md lacks $ver or LICENSE is not the PostgreSQL License"; bad=$((bad + 1)); fi
echo "1..$n"
[ $bad -eq 0 ]
