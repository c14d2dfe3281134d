# Throwaway Debian chroots for the PostgreSQL versions the host does not carry (scripts/test.sh).
# Sourced, not run; needs root.  One chroot per Debian suite, made once with debootstrap from
# the Debian archive the host's apt uses and reused while it is present:
#
#   $SUBBILLING_CHROOTS/<suite>   default /var/cache/subbilling-chroots
#
# A run copies the source tree into the chroot and runs scripts/test.sh there, in a private
# mount namespace (unshare), so /proc, /sys and /dev are unmounted when it ends, whatever
# happens.  Remove the directory to start from scratch.

SUBBILLING_CHROOTS=${SUBBILLING_CHROOTS:-/var/cache/subbilling-chroots}

# suite_for VERSION: the Debian suite whose default PostgreSQL is VERSION.
suite_for() {
    case $1 in
        15) echo bookworm ;;
        17) echo trixie ;;
        18) echo sid ;;
        *) return 1 ;;
    esac
}

# debian_mirror: the host's Debian archive (first non-security URI of its apt sources).
debian_mirror() {
    local m
    m=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
            | awk '{print $2}' | grep -v -e security -e '^$' | head -1)
    [ -n "$m" ] || m=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1}' | grep -v security | head -1)
    echo "${m:-http://deb.debian.org/debian}"
}

# in_chroot DIR COMMAND...: run COMMAND in the chroot with /proc, /sys and /dev mounted in a
# private mount namespace (the mounts go away with it).
in_chroot() {
    local dir=$1; shift
    unshare --mount --propagation private -- bash -c '
        d=$1; shift
        mount -t proc proc "$d/proc" && mount -t sysfs sysfs "$d/sys" &&
        mount --rbind /dev "$d/dev" || exit 1
        exec chroot "$d" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
    ' in_chroot "$dir" "$@"
}

# chroot_ensure VERSION: print the chroot's directory, making it first if it is missing.
# Making it: debootstrap (minbase), then the build and test dependencies of scripts/lib.sh
# for VERSION.  Made under a temporary name and renamed when complete, so a broken attempt is
# never reused.  Progress goes to stderr, the logs to DIR.log.
chroot_ensure() {
    local version=$1 suite dir mirror t0
    suite=$(suite_for "$version") || { echo "no Debian suite known for PostgreSQL $version" >&2; return 1; }
    dir=$SUBBILLING_CHROOTS/$suite
    if [ -e "$dir/.subbilling-ready" ]; then echo "$dir"; return 0; fi
    mkdir -p "$SUBBILLING_CHROOTS"
    mirror=$(debian_mirror)
    t0=$(date +%s)
    echo "== making the $suite chroot for PostgreSQL $version from $mirror (once; kept in $dir)" >&2
    if ! command -v debootstrap >/dev/null; then
        as_root apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
            || return 1
    fi
    rm -rf "$dir.new"
    if ! debootstrap --variant=minbase "$suite" "$dir.new" "$mirror" >"$dir.log" 2>&1; then
        tail -20 "$dir.log" >&2; return 1
    fi
    cp /etc/resolv.conf /etc/hosts "$dir.new/etc/"
    # A host whose archive is a fixed snapshot tells apt not to reject expired Release files;
    # the chroot reads the same archive, so it gets the same setting.
    if apt-config dump 2>/dev/null | grep -q '^Acquire::Check-Valid-Until "false"'; then
        echo 'Acquire::Check-Valid-Until "false";' >"$dir.new/etc/apt/apt.conf.d/99subbilling-snapshot"
    fi
    mkdir -p "$dir.new/root/lib"
    cp scripts/lib.sh "$dir.new/root/lib/"
    if ! in_chroot "$dir.new" "PGVER=$version" bash -c ". /root/lib/lib.sh && ensure_deps" >>"$dir.log" 2>&1; then
        tail -20 "$dir.log" >&2; return 1
    fi
    rm -rf "$dir.new/root/lib" "$dir.new/var/cache/apt/archives/"*.deb
    touch "$dir.new/.subbilling-ready"
    mv "$dir.new" "$dir"
    echo "   $suite chroot made in $(( $(date +%s) - t0 )) s" >&2
    echo "$dir"
}
