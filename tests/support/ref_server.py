#!/usr/bin/env python3
"""Run the REFERENCE Passcrow server (python-passcrow 0.0.7) for tests.

The server is the reference's own code path, end to end:
    passcrow.server.PasscrowServer
        on passcrow.storage.FileSystemStorage(--data)
        behind passcrow.integration.flask_common.route_passcrow_api
        on a Flask app served by werkzeug on 127.0.0.1.

Only code delivery is ours: instead of mailing or texting, every
verification code is appended to the --codes file as one line
"IDENTITY<TAB>CODE", where IDENTITY is the full identity the escrow data
names (e.g. "email:alice@example.org").  The newest line for an identity
is its current code.

Payments are the reference's defaults (free for 25 h, hashcash-11..15 for
longer).  The reference's rate limit (one request per second per client
address) stays on unless --no-rate-limit is given.

With --port 0 a free port is chosen; --port-file then receives that port
(written atomically) once the socket is listening.  The server runs until
SIGTERM or SIGINT and then exits 0.  Logs go to stderr.

Run it with the venv made by scripts/ref-venv.sh.
"""
import argparse
import logging
import os
import signal
import sys
import tempfile
import threading


log = logging.getLogger('ref_server')


def mask_address(identity):
    """Our own simple hint: hide most of the address, keep its shape."""
    kind, _, addr = identity.partition(':')
    if not addr:
        kind, addr = '', identity
    if '@' in addr:
        user, _, domain = addr.rpartition('@')
        labels = domain.split('.')
        tld = labels[-1] if len(labels) > 1 else ''
        masked_domain = (domain[:1] + '*') + (('.' + tld) if tld else '')
        return '%s*@%s' % (user[:1], masked_domain)
    digits = addr.strip()
    if len(digits) <= 5:
        return '*' * len(digits)
    return digits[:3] + '*' * (len(digits) - 5) + digits[-2:]


class CodeFileHandler:
    """A delivery handler that writes codes to a file instead of sending."""

    def __init__(self, codes_path):
        self.codes_path = codes_path
        self.lock = threading.Lock()

    def send_code(self, server, lang, identity, description, vcode,
                  tmo_seconds):
        line = '%s\t%s\n' % (identity, vcode)
        with self.lock:
            with open(self.codes_path, 'a', encoding='utf-8') as fd:
                fd.write(line)
                fd.flush()
                os.fsync(fd.fileno())
        log.info('code for %s (%s, lang=%s, timeout=%ss) written',
                 identity, description, lang, tmo_seconds)
        return mask_address(identity)


def make_storage(data_dir, rate_limit):
    from passcrow.storage import FileSystemStorage

    if rate_limit:
        return FileSystemStorage(data_dir, create=True)

    # How --no-rate-limit works: PasscrowServer.handle() rate-limits by
    # calling storage.fetch('rlimit', ...) (a hit means "too soon") and
    # then storage.insert('rlimit', ...) to record the request.  Here the
    # storage object pretends the 'rlimit' table is always empty and
    # drops writes to it, so every request passes and nothing piles up on
    # disk.  All other tables behave exactly as in the reference.
    class NoRateLimitStorage(FileSystemStorage):
        def fetch(self, table, row_id, now=None):
            if table in ('rlimit', b'rlimit'):
                raise KeyError('rate limiting disabled')
            return super().fetch(table, row_id, now=now)

        def insert(self, table, *data, **kwargs):
            if table in ('rlimit', b'rlimit'):
                return ''
            return super().insert(table, *data, **kwargs)

    return NoRateLimitStorage(data_dir, create=True)


def write_port_file(path, port):
    path = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix='.port-', dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, 'w') as out:
            out.write('%d\n' % port)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', required=True,
                    help='storage directory (created if missing)')
    ap.add_argument('--codes', required=True,
                    help='file that receives "identity<TAB>code" lines')
    ap.add_argument('--port', type=int, default=0,
                    help='TCP port on 127.0.0.1; 0 picks a free one')
    ap.add_argument('--port-file',
                    help='write the bound port here once listening')
    ap.add_argument('--expiration', type=int, default=None,
                    help='server maximum escrow lifetime in seconds '
                         '(reference default: about 10 years)')
    ap.add_argument('--no-rate-limit', action='store_true',
                    help='disable the reference 1 request/s/address limit')
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format='%(asctime)s %(name)s %(levelname)s %(message)s')

    from flask import Flask
    from werkzeug.serving import make_server
    from passcrow.server import PasscrowServer
    from passcrow.integration.flask_common import route_passcrow_api
    # The server checks identities against the kinds registered with
    # passcrow.proto.Identity.  E-mail kinds come with the server's own
    # imports; tel:/sms: are registered by this module, which a real
    # deployment pulls in through its Twilio handler.  Without it the
    # reference accepts tel:/sms: escrows but fails every verification.
    import passcrow.handlers.tel  # noqa: F401  (registers tel, sms)

    os.makedirs(args.data, exist_ok=True)
    codes_dir = os.path.dirname(os.path.abspath(args.codes))
    os.makedirs(codes_dir, exist_ok=True)
    open(args.codes, 'a').close()

    handler = CodeFileHandler(os.path.abspath(args.codes))
    handlers = {kind: handler for kind in ('email', 'mailto', 'tel', 'sms')}

    storage = make_storage(args.data, rate_limit=not args.no_rate_limit)
    pserver = PasscrowServer(
        storage,
        log=log.info,
        handlers=handlers,
        expiration=args.expiration)

    app = Flask('passcrow_ref_server')
    route_passcrow_api(app, pserver)  # also points pserver.log at app.logger

    httpd = make_server('127.0.0.1', args.port, app, threaded=False)
    port = httpd.server_address[1]
    # make_server has bound and called listen(): connections queue from now.
    if args.port_file:
        write_port_file(args.port_file, port)
    log.info('reference passcrow server listening on http://127.0.0.1:%d '
             '(data=%s, codes=%s, rate_limit=%s)',
             port, args.data, args.codes, not args.no_rate_limit)

    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info('signal %d: shutting down', signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    worker = threading.Thread(
        target=httpd.serve_forever, kwargs={'poll_interval': 0.2},
        name='httpd', daemon=True)
    worker.start()
    while not stop.wait(0.5):
        if not worker.is_alive():
            log.error('server thread died')
            return 1
    httpd.shutdown()
    httpd.server_close()
    worker.join(timeout=5)
    return 0


if __name__ == '__main__':
    sys.exit(main())
