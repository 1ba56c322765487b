#!/usr/bin/python3
"""A real SMTP server for the smtp sink's tests: Debian's aiosmtpd (package
python3-aiosmtpd, so run it with /usr/bin/python3), with STARTTLS or TLS
from the start, AUTH PLAIN/LOGIN for one known user, and rules that refuse
or defer chosen recipients. Every message it accepts is stored whole:

  <store>/<seq>.eml    the DATA bytes exactly as received (after dot-unstuffing)
  <store>/<seq>.json   {"seq", "mail_from", "rcpt_tos", "tls", "auth_user",
                        "ehlo", "size", "time"}
  <store>/events.jsonl one line per notable event: {"event": "auth", "ok",
                        "mechanism", "user"}, {"event": "reply", "command",
                        "address", "reply"} for every refusal or deferral
                       (at DATA also "message_id" and "alert_id")

The .json file is written last (by rename), so a reader that sees it finds
the .eml complete.

  /usr/bin/python3 tests/fakes/smtp_server.py --port N --store DIR
      [--cert C --key K [--implicit-tls | --require-starttls]]
      [--user U --password P [--auth-required] [--mechanisms PLAIN,LOGIN]]
      [--rules FILE] [--port-file F]

--rules names a JSON file:
  {"refuse": {"nobody@example.test": [550, "5.1.1 <nobody@example.test>: no such user"]},
   "defer":  {"later@example.test": {"count": 2, "code": 451, "stage": "rcpt"|"data",
                                      "text": "4.7.1 try again later"}}}
"refuse" answers RCPT TO for that address with that reply, always. "defer"
answers the first `count` transactions that include the address with the
reply, at RCPT TO or at the end of DATA (then the message is not stored),
and accepts it after that.

Stops on SIGTERM or SIGINT (exit 0).
"""
import argparse
import json
import os
import signal
import ssl
import sys
import threading
import time
from email.parser import BytesHeaderParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.lock = threading.Lock()
        self.seq = len([f for f in os.listdir(path) if f.endswith(".json")])

    def event(self, **kw):
        kw["time"] = time.time()
        with self.lock, open(os.path.join(self.path, "events.jsonl"), "a") as f:
            f.write(json.dumps(kw) + "\n")

    def message(self, meta, raw):
        with self.lock:
            self.seq += 1
            seq = self.seq
        base = os.path.join(self.path, f"{seq:06d}")
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        meta = dict(meta, seq=seq, size=len(raw), time=time.time())
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.replace(base + ".json.tmp", base + ".json")
        return seq


def on_tls(server, session):
    """session.ssl is set by STARTTLS only; with TLS from the start the
    transport itself is the TLS one."""
    return session.ssl is not None or (
        server.transport is not None and
        server.transport.get_extra_info("ssl_object") is not None)


class Handler:
    def __init__(self, store, rules):
        self.store = store
        self.refuse = {k.lower(): v for k, v in rules.get("refuse", {}).items()}
        self.defer = {k.lower(): dict(v) for k, v in rules.get("defer", {}).items()}
        self.lock = threading.Lock()

    def _deferred(self, address, stage):
        """The reply when this transaction with address is to be deferred."""
        with self.lock:
            d = self.defer.get(address.lower())
            if not d or d.get("stage", "rcpt") != stage or d.get("count", 0) <= 0:
                return None
            d["count"] -= 1
            return f"{d.get('code', 451)} {d.get('text', '4.7.1 try again later')}"

    def _refused(self, command, address, reply, content=None):
        ev = {"event": "reply", "command": command, "address": address, "reply": reply}
        if content is not None:     # which message was turned away
            h = BytesHeaderParser().parsebytes(content)
            ev["message_id"] = h.get("Message-ID")
            ev["alert_id"] = h.get("X-Vigil-Alert-Id")
        self.store.event(**ev)
        return reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        r = self.refuse.get(address.lower())
        if r:
            return self._refused("RCPT", address, f"{r[0]} {r[1]}")
        reply = self._deferred(address, "rcpt")
        if reply:
            return self._refused("RCPT", address, reply)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        for address in envelope.rcpt_tos:
            reply = self._deferred(address, "data")
            if reply:
                return self._refused("DATA", address, reply, envelope.original_content)
        auth = session.auth_data
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "tls": on_tls(server, session),
            "auth_user": auth.decode() if isinstance(auth, bytes) else auth,
            "ehlo": session.host_name,
        }
        seq = self.store.message(meta, envelope.original_content)
        return f"250 2.0.0 OK queued as {seq}"


class Authenticator:
    def __init__(self, store, user, password):
        self.store, self.user, self.password = store, user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == self.user and
              auth_data.password == self.password)
        login = auth_data.login.decode(errors="replace") if isinstance(
            auth_data, LoginPassword) else None
        self.store.event(event="auth", ok=ok, mechanism=mechanism, user=login,
                         tls=on_tls(server, session))
        # auth_data becomes session.auth_data: the user name, never the password.
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)


def tls_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--port-file")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--implicit-tls", action="store_true")
    ap.add_argument("--require-starttls", action="store_true")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--auth-required", action="store_true")
    ap.add_argument("--mechanisms", default="PLAIN,LOGIN")
    ap.add_argument("--rules")
    args = ap.parse_args()

    rules = {}
    if args.rules:
        with open(args.rules) as f:
            rules = json.load(f)
    store = Store(args.store)
    kw = {"server_hostname": "fake-smtp.test", "ident": "vigil test SMTP (aiosmtpd)"}
    if args.cert:
        ctx = tls_context(args.cert, args.key)
        if args.implicit_tls:
            kw["ssl_context"] = ctx
            # aiosmtpd 1.4 counts only STARTTLS as TLS when deciding whether
            # to offer AUTH; this connection is TLS from its first byte.
            kw["auth_require_tls"] = False
        else:
            kw["tls_context"] = ctx
            kw["require_starttls"] = args.require_starttls
    if args.user:
        wanted = {m.strip().upper() for m in args.mechanisms.split(",")}
        kw["authenticator"] = Authenticator(store, args.user, args.password or "")
        kw["auth_required"] = args.auth_required
        kw["auth_exclude_mechanism"] = [m for m in ("PLAIN", "LOGIN") if m not in wanted]
    controller = Controller(Handler(store, rules), hostname="127.0.0.1", port=args.port, **kw)
    controller.start()

    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{args.port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    sys.stderr.write(f"smtp_server: listening on 127.0.0.1:{args.port}\n")
    sys.stderr.flush()
    while not stopping:
        time.sleep(0.1)
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
