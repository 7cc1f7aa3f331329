#!/usr/bin/env bash
# Hashcash side by side, in one run: the reference's
# PaymentHashcash.MakePayment (python-passcrow 0.0.7, single-threaded by
# design) against ours on one core and on every core.
#
# Usage: scripts/bench-hashcash.sh [BITS] [RUNS]     (defaults: 11 31)
set -euo pipefail
cd "$(dirname "$0")/.."
bits=${1:-11}
runs=${2:-31}
py=$(scripts/ref-venv.sh)
cargo build -q --release --example bench_hashcash
bin=target/release/examples/bench_hashcash
echo "# $(nproc) cores, $bits-bit payments, $runs runs each" >&2
ref=$("$py" scripts/bench_hashcash_ref.py "$bits" "$runs")
one=$("$bin" "$bits" "$runs" 1)
all=$("$bin" "$bits" "$runs" 0)
echo "$ref"; echo "$one"; echo "$all"
"$py" - "$ref" "$one" "$all" <<'PY'
import json, sys
ref, one, allc = (json.loads(a) for a in sys.argv[1:4])
print("attempts/s: reference %.0f, ours 1 core %.0f (%.2fx), all cores %.0f (%.2fx)" % (
    ref["rate"], one["rate"], one["rate"] / ref["rate"], allc["rate"], allc["rate"] / ref["rate"]))
print("median seconds per payment: reference %.3f, ours 1 core %.3f, all cores %.3f" % (
    ref["median"], one["median"], allc["median"]))
PY
