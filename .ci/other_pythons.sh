#!/usr/bin/env bash
# The torch-free test run on every other interpreter this machine has: each
# CPython >= 3.9 that pyenv lists (besides the one .ci/run already used) and
# PyPy (Debian's pypy3, installed here when missing).  For each one, as a new
# user would: a fresh venv, a plain `pip install` of a copy of this checkout,
# an import check that warns about nothing and names the expected backend
# ("compiled" on CPython with a GIL, "pure" on PyPy and free-threaded CPython),
# the test suite without torch or ignite, and the speed report of an empty
# iteration against a plain loop.
#
# Usage: bash .ci/other_pythons.sh [MAIN_PYTHON]  (MAIN_PYTHON is skipped)
# Two interpreters run at a time (this machine has two cores); each one's
# output goes to a log that is printed whole when it finishes.  Exits non-zero
# when any interpreter fails, after all have run.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
MAIN_PYTHON=${1:-}
main_version=""
if [ -n "$MAIN_PYTHON" ]; then
    main_version=$("$MAIN_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastignite-pythons.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# Fewer examples per property test: five interpreters share the time budget.
export FASTIGNITE_HYPOTHESIS_PROFILE=light

# -- the interpreters ---------------------------------------------------------------------

interpreters=()
if command -v pyenv >/dev/null 2>&1; then
    for version in $(pyenv versions --bare 2>/dev/null); do
        python="$(pyenv root)/versions/$version/bin/python"
        [ -x "$python" ] || continue
        # requires-python >= 3.9; only CPython builds (pyenv may list others).
        short=$("$python" -c 'import platform, sys; print("%d.%d" % sys.version_info[:2] if platform.python_implementation() == "CPython" and sys.version_info >= (3, 9) else "")' 2>/dev/null) || continue
        [ -n "$short" ] || continue
        [ "$short" = "$main_version" ] && continue
        interpreters+=("$python")
    done
fi

if ! command -v pypy3 >/dev/null 2>&1 || ! pypy3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "== installing Debian's pypy3 and pypy3-venv"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pypy3 pypy3-venv >/dev/null \
        || echo "== could not install pypy3 (this run fails)"
fi
interpreters+=("$(command -v pypy3 || echo pypy3)")

# -- one interpreter ----------------------------------------------------------------------

run_one() {
    local python=$1 name=$2 dir="$WORK/$2"
    mkdir -p "$dir"
    local impl expected require
    # setup.py builds the compiled twin on CPython with a GIL only: free-threaded
    # CPython (3.13t...) gets the pure twin, as PyPy does.
    impl=$("$python" -c 'import platform, sysconfig; print(platform.python_implementation() + ("-free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""))') || return 1
    if [ "$impl" = CPython ]; then expected=compiled; require=1; else expected=pure; require=0; fi
    echo "== $name: $("$python" --version 2>&1) ($impl) at $python, expecting the $expected backend"
    # A copy of the checkout without build products, so that parallel builds
    # of the same sources never share a generated file.
    mkdir -p "$dir/src"
    tar -C "$ROOT" --exclude=./.git --exclude=./build --exclude='*.so' --exclude='*.egg-info' \
        --exclude='./src/fastignite/*.c' -cf - . | tar -C "$dir/src" -xf - || return 1
    "$python" -m venv "$dir/venv" || return 1
    local py="$dir/venv/bin/python"
    "$py" -m pip install -q --upgrade pip || return 1
    "$py" -m pip install -q "$dir/src" pytest pytest-benchmark hypothesis || return 1
    (
        cd "$dir/src" || exit 1
        backend=$(FASTIGNITE_REQUIRE_COMPILED=$require "$py" -W error::RuntimeWarning -c \
            'import fastignite; print(fastignite.BACKEND)') || exit 1
        echo "== $name: fastignite.BACKEND = $backend"
        [ "$backend" = "$expected" ] || { echo "== $name: FAIL, expected $expected"; exit 1; }
        FASTIGNITE_REQUIRE_COMPILED=$require "$py" -m pytest tests -q -p no:cacheprovider || exit 1
        # Reported, not judged: timing on a shared machine belongs in benchmarks.
        FASTIGNITE_REQUIRE_COMPILED=$require "$py" benchmarks/speed_check.py --allow-pure --repeats 7 --max-ratio 1000 || true
    )
}

status=0
pids=() names=()
finish() {  # wait for the oldest job, print its log
    local pid=${pids[0]} name=${names[0]}
    pids=("${pids[@]:1}") names=("${names[@]:1}")
    if wait "$pid"; then result="passed"; else result="FAILED"; status=1; fi
    cat "$WORK/$name.log"
    echo "== $name: $result"
}
for python in "${interpreters[@]}"; do
    name=$(basename "$(dirname "$(dirname "$python")")")
    [ "$name" = "/" ] || [ "$name" = "usr" ] && name=$(basename "$python")
    run_one "$python" "$name" >"$WORK/$name.log" 2>&1 &
    pids+=($!) names+=("$name")
    [ ${#pids[@]} -ge 2 ] && finish
done
while [ ${#pids[@]} -gt 0 ]; do finish; done
exit $status
