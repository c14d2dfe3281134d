# TAP helpers of the shell tests (test/upgrade.sh, test/dump_restore.sh): sourced, not run.
# They count in $n and $failed; a test ends with [ "$n" -eq PLANNED ] && [ "$failed" -eq 0 ].
n=0
failed=0
ok() {      # ok CONDITION-EXIT-CODE DESCRIPTION
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
is() {      # is GOT WANTED DESCRIPTION
    n=$((n + 1))
    if [ "$1" = "$2" ]; then echo "ok $n - $3"; else
        echo "not ok $n - $3"; echo "#   got:    '$1'"; echo "#   wanted: '$2'"; failed=$((failed + 1))
    fi
}
