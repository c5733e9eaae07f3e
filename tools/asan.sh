#!/usr/bin/env bash
# tools/asan.sh -- build fastce with AddressSanitizer + UndefinedBehaviorSanitizer
# and run the test suite (fuzz tests included) under it.
#
# Usage, from the repository root:
#
#     bash tools/asan.sh                      # the whole default test suite
#     bash tools/asan.sh tests/test_fuzz.py   # any pytest arguments instead
#     FASTCE_FUZZ_EXAMPLES=2000 bash tools/asan.sh tests/test_fuzz.py
#
# What it does:
#   1. copies the working tree (tracked and untracked-but-not-ignored files,
#      no build outputs) into a scratch directory, so the checkout and its
#      in-place extensions are left alone;
#   2. makes a virtual environment there (with --system-site-packages, so an
#      installed numpy / torch / pytest are reused; missing ones come from pip);
#   3. builds fastce into it with gcc's sanitizers:
#          CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined
#                  -fno-omit-frame-pointer -g"
#      (setuptools puts CFLAGS on every compile line and LDFLAGS on every link
#      line; the script checks that every extension module really is
#      instrumented: it must link libasan and call __asan_report_*);
#   4. runs pytest from outside the source tree (so the instrumented install
#      is what gets imported) with libasan and libubsan preloaded into the
#      uninstrumented Python interpreter:
#          LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
#          ASAN_OPTIONS=detect_leaks=0:...   (CPython's own allocations at exit
#                                             are not fastce's leaks)
#          PYTHONMALLOC=malloc               (every allocation goes through ASan)
#      Any out-of-bounds access, use-after-free or undefined behaviour in a
#      kernel aborts the run with a report naming the file and line.
#
# Exit status: pytest's (non-zero on any failure or sanitizer abort).
# Environment: PYTHON (interpreter, default python3), CC (default gcc),
# FASTCE_ASAN_DIR (scratch directory to reuse; default a fresh mktemp -d),
# FASTCE_ASAN_KEEP=1 keeps the scratch directory afterwards,
# FASTCE_ASAN_REUSE=1 (with FASTCE_ASAN_DIR) skips the copy and the build and
# reruns the tests of the previous build there.
# Needs gcc with libasan/libubsan (Debian: libgcc-12-dev, installed with gcc).
# Takes a few minutes (the build plus the suite at sanitizer speed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
export CC=${CC:-gcc}

LIBASAN=$("$CC" -print-file-name=libasan.so)
LIBUBSAN=$("$CC" -print-file-name=libubsan.so)
for lib in "$LIBASAN" "$LIBUBSAN"; do
    if [ ! -e "$lib" ]; then
        echo "asan.sh: $CC has no $(basename "$lib") (install gcc's sanitizer runtimes)" >&2
        exit 2
    fi
done

WORK=${FASTCE_ASAN_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/fastce-asan.XXXXXX")}
mkdir -p "$WORK"
if [ "${FASTCE_ASAN_KEEP:-0}" != 1 ] && [ -z "${FASTCE_ASAN_DIR:-}" ]; then
    trap 'rm -rf "$WORK"' EXIT
fi
SRC=$WORK/src
VENV=$WORK/venv
VPY=$VENV/bin/python
BUILD_LOG=$WORK/build.log
copy_and_build() {
    rm -rf "$SRC"
    mkdir -p "$SRC"

    echo "== asan.sh: copying $ROOT to $SRC"
    if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # tracked files plus untracked files that are not ignored (build outputs are)
        (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
            | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
            | tar --null -T - -cf -) | tar -xf - -C "$SRC"
    else
        (cd "$ROOT" && tar --exclude=./build --exclude='*.so' --exclude='*.egg-info' \
            --exclude=__pycache__ --exclude=.git -cf - .) | tar -xf - -C "$SRC"
    fi
    # never pick up in-place extensions or Cython output from the checkout
    find "$SRC" \( -name '*.so' -o -name '__pycache__' -o -name 'build' \) -prune \
        -exec rm -rf {} +

    if [ ! -x "$VENV/bin/python" ]; then
        echo "== asan.sh: creating $VENV"
        "$PY" -m venv --system-site-packages "$VENV"
    fi
    "$VPY" -m pip install --quiet --disable-pip-version-check \
        "setuptools>=64" "Cython>=3.0" "numpy>=2.0" pytest hypothesis threadpoolctl

    SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
    echo "== asan.sh: building fastce with $SAN_FLAGS"
    (
        cd "$SRC"
        CFLAGS="$SAN_FLAGS" LDFLAGS="-fsanitize=address,undefined" \
            "$VPY" -m pip install --no-build-isolation --no-deps --force-reinstall \
            --no-cache-dir -v . >"$BUILD_LOG" 2>&1
    ) || { tail -50 "$BUILD_LOG"; echo "asan.sh: build failed (log: $BUILD_LOG)" >&2; exit 1; }

    # every compile of a kernel source must carry the sanitizer flags
    n_all=$(grep -c -- " -c fastce/_kernels/" "$BUILD_LOG" || true)
    n_compiles=$(grep -- " -c fastce/_kernels/" "$BUILD_LOG" \
        | grep -c -- "-fsanitize=address,undefined" || true)
    echo "== asan.sh: $n_compiles of $n_all kernel compile commands carry -fsanitize"
    if [ "$n_all" -eq 0 ] || [ "$n_compiles" -ne "$n_all" ]; then
        echo "asan.sh: sanitizer flags did not reach every kernel compile (log: $BUILD_LOG)" >&2
        exit 1
    fi
}

if [ "${FASTCE_ASAN_REUSE:-0}" = 1 ] && [ -x "$VPY" ] && [ -d "$SRC/tests" ]; then
    echo "== asan.sh: reusing the build in $WORK"
else
    copy_and_build
fi

cd "$WORK"   # outside the source tree: import the instrumented install
PKG=$("$VPY" -c 'import os, fastce._kernels as k; print(os.path.dirname(k.__file__))' \
      2>/dev/null || true)
if [ -z "$PKG" ]; then
    PKG=$(LD_PRELOAD="$LIBASAN" ASAN_OPTIONS=detect_leaks=0 "$VPY" -c \
          'import os, fastce._kernels as k; print(os.path.dirname(k.__file__))')
fi
n_so=0
for so in "$PKG"/*.so; do
    n_so=$((n_so + 1))
    # (no grep -q in a pipeline: with pipefail its early exit fails the pipe)
    if [ "$(readelf -d "$so" | grep -c 'libasan')" -eq 0 ]; then
        echo "asan.sh: $so does not link libasan" >&2; exit 1
    fi
    if [ "$(nm -D "$so" | grep -c '__asan_report')" -eq 0 ]; then
        echo "asan.sh: $so is not instrumented" >&2; exit 1
    fi
done
echo "== asan.sh: $n_so extension modules instrumented in $PKG"

export LD_PRELOAD="$LIBASAN $LIBUBSAN"
REPORTS=$WORK/reports
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
# reports go to files too: pytest captures stderr, and a sanitizer abort kills
# the process before pytest can show what it captured
export ASAN_OPTIONS="log_path=$REPORTS/asan:detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:allow_user_segv_handler=1:print_summary=1"
export UBSAN_OPTIONS="log_path=$REPORTS/ubsan:print_stacktrace=1:halt_on_error=1:print_summary=1"
export PYTHONMALLOC=malloc
export PYTHONFAULTHANDLER=1
# the bit-exact test pins the release build's bits; here it checks the rest
export FASTCE_INSTRUMENTED_BUILD=1

"$VPY" -c 'import fastce; fastce.show_config()'
if [ "$#" -eq 0 ]; then
    set -- "$SRC/tests"
else
    # pytest arguments given relative to the repository root
    args=()
    for a in "$@"; do
        if [ -e "$SRC/$a" ] || [ -e "$SRC/${a%%::*}" ]; then args+=("$SRC/$a"); else args+=("$a"); fi
    done
    set -- "${args[@]}"
fi
echo "== asan.sh: running pytest $* under ASan + UBSan"
status=0
# --capture=sys: pytest captures Python-level output only, so a sanitizer's
# report (written straight to file descriptor 2) reaches the terminal even
# when it kills the process
"$VPY" -m pytest -p no:cacheprovider -q --capture=sys --rootdir "$SRC" \
    -c "$SRC/pyproject.toml" "$@" || status=$?
for report in "$REPORTS"/*; do
    [ -e "$report" ] || continue
    echo "== asan.sh: sanitizer report $(basename "$report"):"
    cat "$report"
    if [ "$status" -eq 0 ]; then status=1; fi
done
if [ "$status" -eq 0 ]; then
    echo "== asan.sh: clean (no sanitizer report, all tests passed)"
else
    echo "== asan.sh: FAILED with status $status (a sanitizer abort shows its report above)"
fi
exit "$status"
