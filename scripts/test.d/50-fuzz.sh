#!/usr/bin/env bash
# Fuzzing (scripts/fuzz.sh): every fuzz target, two at a time, from the
# checked-in corpus (fuzz/corpus/) after the kept crash inputs
# (fuzz/regressions/); fails on any crash.
#
# The whole step, build included, is held to FUZZ_STEP_BUDGET seconds
# (300): the build is timed and the time left is shared out among the
# targets (at most FUZZ_STEP_MAX, 40 s, each). A warm build takes seconds,
# so the targets get their 40 s each (5 rounds of 2 on 2 cores: about
# 3.5 minutes in all). A cold build (a new machine: every dependency for
# nightly with ASan, about 10 minutes on 2 cores) alone exceeds the
# budget; the targets then only replay their corpus and fuzz 2 s each.
#
# Skipped, saying so, when no nightly toolchain is installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

budget=${FUZZ_STEP_BUDGET:-300}
max_each=${FUZZ_STEP_MAX:-40}
min_each=2

if ! command -v rustup >/dev/null || ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz step skipped: no nightly toolchain (fuzzing skipped: no nightly toolchain)"
    exit 0
fi

t0=$(date +%s)
scripts/fuzz.sh --build-only
build=$(($(date +%s) - t0))

n=$(scripts/fuzz.sh --list | wc -l)
rounds=$(((n + 1) / 2))
# A few seconds per round for start-up and the corpus replay, 10 for the rest.
left=$((budget - build - 10 - 3 * rounds))
each=$((left / rounds))
[ "$each" -le "$max_each" ] || each=$max_each
[ "$each" -ge "$min_each" ] || each=$min_each
echo "fuzz build took ${build} s; fuzzing $n targets ${each} s each, two at a time"
scripts/fuzz.sh "$each"
echo "fuzz step: $(($(date +%s) - t0)) s in all (budget ${budget} s)"
