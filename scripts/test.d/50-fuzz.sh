#!/usr/bin/env bash
# Fuzzing (scripts/fuzz.sh): every fuzz target, two at a time, from the
# checked-in corpus (fuzz/corpus/) after the kept crash inputs
# (fuzz/regressions/); fails on any crash.
#
# The whole step, build included, is held to FUZZ_STEP_BUDGET seconds
# (300): the build is timed and the time left is shared out among the
# targets (at most FUZZ_STEP_MAX, 40 s, each; 9 targets two at a time are
# 5 rounds). Measured on the 2-core machine: nothing changed, the build is
# 1 s and the targets get 40 s each (about 4 minutes in all); after a
# change in src/, rebuilding libpasscrow and the 9 targets took 91 s, so
# they get 33 s each (the whole step: 5 minutes). A cold build (a new
# machine: every dependency built for nightly with ASan; 10 minutes here
# while other builds shared the cores, 7.5 minutes of CPU) alone exceeds
# the budget; the targets then only replay their corpus and fuzz 2 s each.
#
# Skipped, saying so, when no nightly toolchain is installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

budget=${FUZZ_STEP_BUDGET:-300}
max_each=${FUZZ_STEP_MAX:-40}
min_each=2

if ! command -v rustup >/dev/null || ! rustup run "${FUZZ_TOOLCHAIN:-nightly}" rustc --version >/dev/null 2>&1; then
    echo "fuzz step skipped: no nightly toolchain (fuzzing skipped: no nightly toolchain)"
    exit 0
fi

t0=$(date +%s)
scripts/fuzz.sh --build-only
build=$(($(date +%s) - t0))

n=$(scripts/fuzz.sh --list | wc -l)
rounds=$(((n + 1) / 2))
# Each round takes about 2 s more than asked (start-up, corpus replay);
# 25 s for the rest (fuzz.sh's own checks, the summary) and a margin.
left=$((budget - build - 25 - 3 * rounds))
each=$((left / rounds))
[ "$each" -le "$max_each" ] || each=$max_each
[ "$each" -ge "$min_each" ] || each=$min_each
echo "fuzz build took ${build} s; fuzzing $n targets ${each} s each, two at a time"
scripts/fuzz.sh "$each"
echo "fuzz step: $(($(date +%s) - t0)) s in all (budget ${budget} s)"
