#!/usr/bin/env python3
"""Fill the REFERENCE server's storage (python-passcrow 0.0.7
FileSystemStorage) with one-day escrows for the load benchmark, through
its storage layer (not over HTTP), for at most --seconds or --count rows.
Prints one JSON line: escrows stored, seconds, bytes on disk.

Used by scripts/bench-server.sh; run with the venv of scripts/ref-venv.sh.
"""
import argparse
import base64
import json
import os
import time


def du(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
                total += st.st_blocks * 512
            except OSError:
                pass
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', required=True)
    ap.add_argument('--seconds', type=float, default=60)
    ap.add_argument('--count', type=int, default=1000000)
    args = ap.parse_args()

    from passcrow.storage import FileSystemStorage
    os.makedirs(args.data, exist_ok=True)
    st = FileSystemStorage(args.data, create=True)
    st.prepare_table('escrow', ['data'])
    # A blob the size of a real escrow-data blob (~360 base64 chars).
    t0 = time.time()
    exp = int(t0) + 86400
    n = 0
    while n < args.count and time.time() - t0 < args.seconds:
        blob = base64.b64encode(os.urandom(270)).decode('ascii')
        st.insert('escrow', blob, expiration=exp)
        n += 1
    secs = time.time() - t0
    print(json.dumps({'escrows': n, 'seconds': secs,
                      'disk-bytes': du(args.data)}))


if __name__ == '__main__':
    main()
