#!/usr/bin/env python3
"""A loopback SMTP server for tests (aiosmtpd, from the reference venv).

Every message received is written to --dir as NNNN.eml (the raw message,
as received) with NNNN.rcpt beside it (one recipient per line), written
atomically. --port-file receives the port once the server is listening.
Runs until SIGTERM/SIGINT.
"""
import argparse
import os
import signal
import socket
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.n = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.n += 1
            base = os.path.join(self.out_dir, '%04d' % self.n)
        with open(base + '.rcpt.tmp', 'w') as fd:
            fd.write('\n'.join(envelope.rcpt_tos) + '\n')
        with open(base + '.eml.tmp', 'wb') as fd:
            fd.write(envelope.original_content or envelope.content)
        os.replace(base + '.rcpt.tmp', base + '.rcpt')
        os.replace(base + '.eml.tmp', base + '.eml')
        return '250 Message accepted for delivery'


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--dir', required=True)
    ap.add_argument('--port-file', required=True)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    port = free_port()
    ctl = Controller(Sink(args.dir), hostname='127.0.0.1', port=port)
    ctl.start()
    with open(args.port_file + '.tmp', 'w') as fd:
        fd.write('%d\n' % port)
    os.replace(args.port_file + '.tmp', args.port_file)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    done.wait()
    ctl.stop()


if __name__ == '__main__':
    main()
