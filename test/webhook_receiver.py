#!/usr/bin/env python3
"""A webhook receiver for the tests and the benchmark (Python standard library only).

    python3 test/webhook_receiver.py --port-file FILE [--log FILE] [--secrets FILE] [--quiet]

Listens on 127.0.0.1 (a free port, written to --port-file) and answers POSTs by path:

    /ok/NAME            200
    /fail/N/NAME        500 for the first N requests of each webhook-id, then 200
    /hang/NAME          never answers in time (sleeps 600 s)
    /hangfirst/NAME     the first request of each webhook-id sleeps 600 s, later ones get 200
    /status/CODE/NAME   CODE

Every request is verified as the Standard Webhooks specification says (verify() below, the
code docs/webhooks.md shows) with the secrets listed for NAME in --secrets (a JSON object
{NAME: [secret, ...]}, read again for every request), and logged as one JSON line:
{name, path, id, timestamp, signature, body, verified, reason, status, at}.  --quiet: no log,
no verification (the benchmark).
"""
import argparse, base64, hashlib, hmac, json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret, headers, body, tolerance=300):
    """Standard Webhooks: True when one v1 signature of the request matches secret."""
    msg_id = headers.get('webhook-id')
    timestamp = headers.get('webhook-timestamp')
    signatures = headers.get('webhook-signature')
    if not (msg_id and timestamp and signatures):
        return False, 'missing header'
    if abs(time.time() - int(timestamp)) > tolerance:
        return False, 'timestamp too old or too new'
    key = base64.b64decode(secret.removeprefix('whsec_'))
    signed = f'{msg_id}.{timestamp}.'.encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for sig in signatures.split(' '):
        version, _, value = sig.partition(',')
        if version == 'v1' and hmac.compare_digest(value, expected):
            return True, 'ok'
    return False, 'no matching signature'


class State:
    lock = threading.Lock()
    seen = {}           # (name, webhook-id) -> requests so far
    log = None
    secrets = None
    quiet = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        parts = self.path.strip('/').split('/')
        kind, name = parts[0], parts[-1]
        msg_id = self.headers.get('webhook-id')
        with State.lock:
            n = State.seen.get((name, msg_id), 0) + 1
            State.seen[(name, msg_id)] = n
        status = 200
        if kind == 'fail' and n <= int(parts[1]):
            status = 500
        elif kind == 'status':
            status = int(parts[1])
        elif kind == 'hang' or (kind == 'hangfirst' and n == 1):
            self.record(name, body, None, 'hanging')
            time.sleep(600)
            return
        self.record(name, body, status, None)
        self.send_response(status)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def record(self, name, body, status, note):
        if State.quiet:
            return
        try:
            with open(State.secrets) as f:
                secrets = json.load(f).get(name, [])
        except (OSError, ValueError, TypeError):
            secrets = []
        verified, reason = False, 'no secret for ' + name
        for s in secrets:
            verified, reason = verify(s, self.headers, body)
            if verified:
                break
        line = json.dumps({'name': name, 'path': self.path, 'id': self.headers.get('webhook-id'),
                           'timestamp': self.headers.get('webhook-timestamp'),
                           'signature': self.headers.get('webhook-signature'),
                           'content_type': self.headers.get('Content-Type'),
                           'body': body.decode(), 'verified': verified, 'reason': reason,
                           'status': status, 'note': note, 'at': time.time()})
        with State.lock:
            State.log.write(line + '\n')
            State.log.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port-file', required=True)
    ap.add_argument('--log')
    ap.add_argument('--secrets')
    ap.add_argument('--quiet', action='store_true')
    a = ap.parse_args()
    State.quiet = a.quiet
    State.secrets = a.secrets
    if not a.quiet:
        State.log = open(a.log, 'a')
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 1024
    srv = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    tmp = a.port_file + '.tmp'
    with open(tmp, 'w') as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, a.port_file)
    srv.serve_forever()


if __name__ == '__main__':
    main()
