"""Times python-passcrow 0.0.7's PaymentHashcash.MakePayment.

Usage: python bench_hashcash_ref.py BITS RUNS
Prints one JSON line like examples/bench_hashcash.rs. Attempts are read
from the counter in each token (the reference counts from 1).
"""
import json
import statistics
import sys
import time

from passcrow.payments import PaymentHashcash
from passcrow.proto import PaymentScheme


def main():
    bits = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 21
    policy = PaymentScheme()
    policy.scheme = 'hashcash'
    policy.scheme_id = 'hashcash-%d' % bits
    policy.hashcash_bits = bits
    data = 'A' * 344
    times, attempts = [], 0
    t0 = time.time()
    for r in range(runs):
        t = time.time()
        token = PaymentHashcash.MakePayment(policy, '%s%d' % (data, r))
        times.append(time.time() - t)
        attempts += int(token.split(':', 1)[1].split('-')[0], 16)
    total = time.time() - t0
    print(json.dumps({
        'impl': 'python-passcrow 0.0.7', 'bits': bits, 'threads': 1,
        'runs': runs, 'attempts': attempts, 'seconds': round(total, 3),
        'rate': round(attempts / total, 1),
        'median': round(statistics.median(times), 4)}))


if __name__ == '__main__':
    main()
