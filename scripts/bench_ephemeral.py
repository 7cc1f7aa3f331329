"""Ephemeral protect and recover, ours against python-passcrow 0.0.7, side
by side in one run (driven by scripts/bench-ephemeral.sh; run it with the
reference venv's python).

    bench_ephemeral.py --ours-cli PATH --server-url URL --codes FILE
                       --ref-client tests/support/ref_client.py
                       --work DIR [--rounds N] [--one-core]

Each round, for each side (the order alternates): `protect -E` of a small
file with two identities (2-of-2, one-day escrows: free), then the two
steps of recovering from SERVER:USER_KEY as a newcomer does them: ask for
the code (`recover SERVER:KEY`), then give it (`recover SERVER:KEY CODE`,
which restores the pack). Wall time and peak RSS of each command come from
wait4(); the code is read from the server's delivery file between the two
steps (not timed). Prints one JSON line per command and a table.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def run_measured(cmd, env=None):
    """Run cmd, measuring wall time and the child's own peak RSS."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    # Read everything first (no deadlock on full pipes), then reap with
    # wait4 for this child's rusage.
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.stderr.write(err.decode(errors='replace'))
        raise SystemExit('failed (%d): %s' % (p.returncode, ' '.join(cmd)))
    return secs, ru.ru_maxrss / 1024.0, out.decode()


def newest_code(codes, address, after):
    """The code delivered to `address` after `after` lines, waiting for it."""
    for _ in range(600):
        try:
            with open(codes) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        for line in reversed(lines[after:]):
            if line.startswith('#'):
                continue
            ident, _, code = line.partition('\t')
            if address in ident:
                return code.strip()
        time.sleep(0.05)
    raise SystemExit('no code for %s' % address)


def lines_in(path):
    try:
        with open(path) as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ours-cli', required=True)
    ap.add_argument('--ref-client', required=True)
    ap.add_argument('--server-url', required=True)
    ap.add_argument('--codes', required=True)
    ap.add_argument('--work', required=True)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--one-core', action='store_true')
    ap.add_argument('--sequential', action='store_true',
                    help='ours with PASSCROW_EPHEMERAL_KDF=sequential')
    a = ap.parse_args()
    pin = ['taskset', '-c', '0'] if a.one_core else []
    env = dict(os.environ)
    env['REF_CLIENT_MAX_SLEEP'] = '0'
    if a.sequential:
        env['PASSCROW_EPHEMERAL_KDF'] = 'sequential'
    secret = os.path.join(a.work, 'secret.txt')
    with open(secret, 'w') as f:
        f.write('correct horse battery staple\n')
    url = a.server_url
    results = {'ours': [], 'reference': []}

    def ours(home, who):
        ids = ['%s-a@example.org via %s' % (who, url),
               '%s-b@example.org via %s' % (who, url)]
        base = pin + [a.ours_cli]
        prot = base + ['protect', '-H', home, '-I', '-b', '-E', '-n', 'bench',
                       '-r', '2/2', '-d', '1', '-p', ids[0], '-p', ids[1], secret]
        t_p, m_p, out = run_measured(prot, env)
        # The record is the last JSON object printed (-b).
        rec = json.JSONDecoder().raw_decode(out[out.rindex('\n{') + 1:] if '\n{' in out else out[out.index('{'):])[0]
        eid = '%s:%s' % (rec['server'], rec['recovery-key'])
        before = lines_in(a.codes)
        t_v, m_v, _ = run_measured(base + ['recover', '-H', home, '-b', eid], env)
        code = newest_code(a.codes, '%s-a@' % who, before)
        t_r, m_r, _ = run_measured(base + ['recover', '-H', home, '-b', eid, code], env)
        return t_p, m_p, t_v + t_r, max(m_v, m_r)

    def reference(home, who):
        ids = ['email:%s-a@example.org via %s' % (who, url),
               'email:%s-b@example.org via %s' % (who, url)]
        base = pin + [sys.executable, a.ref_client]
        prot = base + ['protect', '--home', home, '--name', 'bench',
                       '--secret-file', secret, '--ratio', '2/2', '--days', '1',
                       '--id', ids[0], '--id', ids[1], '--ephemeral']
        t_p, m_p, out = run_measured(prot, env)
        eid = json.loads(out)['ephemeral_id']
        before = lines_in(a.codes)
        t_v, m_v, _ = run_measured(base + ['verify', '--home', home, '--name', eid], env)
        code = newest_code(a.codes, '%s-a@' % who, before)
        t_r, m_r, _ = run_measured(
            base + ['recover', '--home', home, '--name', eid, '--code', code,
                    '--out', os.path.join(home, 'out')], env)
        return t_p, m_p, t_v + t_r, max(m_v, m_r)

    sides = [('ours', ours), ('reference', reference)]
    for r in range(a.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for name, fn in order:
            who = 'bench-%s-%d-%d' % (name, r, os.getpid())
            home = os.path.join(a.work, who)
            os.makedirs(home, mode=0o700)
            t_p, m_p, t_r, m_r = fn(home, who)
            row = {'side': name, 'round': r, 'protect_s': round(t_p, 3),
                   'protect_peak_mib': round(m_p), 'recover_s': round(t_r, 3),
                   'recover_peak_mib': round(m_r)}
            results[name].append(row)
            print(json.dumps(row), flush=True)

    med = {k: {f: statistics.median(x[f] for x in v)
               for f in ('protect_s', 'recover_s')} for k, v in results.items()}
    peak = {k: {f: max(x[f] for x in v)
                for f in ('protect_peak_mib', 'recover_peak_mib')} for k, v in results.items()}
    cores = '1 core (taskset -c 0)' if a.one_core else '%d cores' % os.cpu_count()
    mode = ', ours one derivation at a time' if a.sequential else ''
    print('\n%s, %d rounds, medians%s:' % (cores, a.rounds, mode))
    print('| step | reference | ours | ratio | peak RSS ref / ours |')
    print('|---|---|---|---|---|')
    for step, f, m in (('protect -E', 'protect_s', 'protect_peak_mib'),
                       ('recover SERVER:KEY (ask + give code)', 'recover_s', 'recover_peak_mib')):
        print('| %s | %.2f s | %.2f s | %.2f | %d / %d MiB |' % (
            step, med['reference'][f], med['ours'][f],
            med['ours'][f] / med['reference'][f], peak['reference'][m], peak['ours'][m]))


if __name__ == '__main__':
    main()
