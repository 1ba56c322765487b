#!/usr/bin/env python3
"""sigv4_proxy.py - a SigV4-checking reverse proxy for AWS emulators in tests.

s3rver and dynalite accept any signature.  This proxy sits in front of one of
them, checks each request's SigV4 signature (Authorization header, or the
X-Amz-* query parameters of a pre-signed URL) with the test credentials, and
answers 403/400 in the service's error shape when it does not hold.  A request
that passes is forwarded as it came (method, path, query, headers, body) and
the emulator's answer is relayed.

The one exception: --upstream-access-key swaps the access key id in the
credential after verification, for s3rver, which knows only its built-in key
(it does not check V4 signatures, only that the key exists).

Verification is fake_aws.verify_request() from this folder; this file adds
what S3 asks on top: x-amz-content-sha256 present and signed.

--policy FILE makes the proxy authorise as IAM does after authentication: each
request becomes an action and a resource ARN (S3: s3:GetObject on
arn:aws:s3:::bucket/key, s3:PutObject, s3:CreateBucket, ...; DynamoDB:
dynamodb:<Operation> on arn:aws:dynamodb:<region>:<account>:table/<name>), and
the identity policy in FILE (the IAM JSON of deploy/aws/policies, with
${Name} placeholders filled from --policy-var Name=value) must Allow it with no
Deny; otherwise 403 AccessDenied (S3) / 400 AccessDeniedException (DynamoDB)
with AWS's "User: ... is not authorized to perform: ..." message.

  python3 tests/fakes/sigv4_proxy.py --service s3 --upstream http://127.0.0.1:4568 \
      --port 0 --port-file /tmp/p --access-key AK --secret-key SK --region us-east-1

Python 3 standard library only.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_aws  # noqa: E402  (SigV4 verification, pure functions)

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection"}
MAX_BODY = 64 << 20

# service -> kind of failure -> (HTTP status, error code), after AWS.
S3_ERRORS = {"missing": (403, "AccessDenied"),
             "incomplete": (400, "AuthorizationHeaderMalformed"),
             "unknown_key": (403, "InvalidAccessKeyId"),
             "expired_token": (400, "ExpiredToken"),
             "expired": (403, "AccessDenied"),
             "skew": (403, "RequestTimeTooSkewed"),
             "signature": (403, "SignatureDoesNotMatch")}
S3_ERRORS["denied"] = (403, "AccessDenied")
JSON_ERRORS = {"denied": (400, "AccessDeniedException"),
               "missing": (400, "MissingAuthenticationTokenException"),
               "incomplete": (400, "IncompleteSignatureException"),
               "unknown_key": (400, "UnrecognizedClientException"),
               "expired_token": (400, "ExpiredTokenException"),
               "expired": (400, "InvalidSignatureException"),
               "skew": (400, "InvalidSignatureException"),
               "signature": (400, "InvalidSignatureException")}


class Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, args):
        super().__init__(addr, Handler)
        self.args = args
        self.upstream = urllib.parse.urlsplit(args.upstream)
        self.lock = threading.Lock()
        self.counts = {"forwarded": 0, "refused": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Proxy

    def log_message(self, fmt, *args):
        if self.server.args.verbose:
            sys.stderr.write("sigv4-proxy: " + (fmt % args) + "\n")

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = lambda self: self._handle()

    # ---- request --------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                if len(out) + size > MAX_BODY:
                    raise ValueError("body too large")
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    def _handle(self):
        try:
            body = self._read_body()
        except (ValueError, OSError) as e:
            self._send(400, b"bad request: " + str(e).encode(), "text/plain", {})
            return
        raw_path, _, raw_query = self.path.partition("?")
        headers = list(self.headers.items())
        failure = self._verify(raw_path, raw_query, headers, body)
        with self.server.lock:
            self.server.counts["refused" if failure else "forwarded"] += 1
        if failure:
            kind, message = failure
            sys.stderr.write(f"sigv4-proxy: refused {self.command} {raw_path}: {kind}: "
                             f"{message}\n")
            self._refuse(kind, message)
            return
        self._forward(raw_path, raw_query, headers, body)

    def _verify(self, raw_path, raw_query, headers, body):
        """None when the signature holds, else (kind, message)."""
        a = self.server.args
        creds = {a.access_key: fake_aws.Credential(a.access_key, a.secret_key)}
        res = fake_aws.verify_request(self.command, raw_path, raw_query, headers, body,
                                      creds.get, time.time(), region=a.region,
                                      service=a.service, max_skew=a.max_skew)
        if not res.ok:
            kind = res.kind
            if kind == "signature" and "expired" in (res.message or ""):
                kind = "expired" if res.presigned else "skew"
            elif kind == "signature" and "not yet current" in (res.message or ""):
                kind = "skew"
            return kind, res.message
        if a.policy is not None:
            denied = self._authorize(raw_path, headers, body)
            if denied:
                return "denied", denied
        if a.service == "s3" and not res.presigned:
            signed = _signed_headers(fake_aws.header_get(headers, "authorization"))
            if fake_aws.header_get(headers, "x-amz-content-sha256") is None:
                return "incomplete", "Missing required header for this request: " \
                                     "x-amz-content-sha256"
            if "x-amz-content-sha256" not in signed:
                return "signature", "x-amz-content-sha256 must be a signed header"
        return None

    # ---- authorisation (--policy) ----------------------------------------

    def _action_resource(self, raw_path, headers, body):
        a = self.server.args
        if a.service == "s3":
            parts = urllib.parse.unquote(raw_path).lstrip("/").split("/", 1)
            bucket, key = parts[0], parts[1] if len(parts) > 1 else ""
            if key:
                verb = {"GET": "GetObject", "HEAD": "GetObject", "PUT": "PutObject",
                        "DELETE": "DeleteObject"}.get(self.command, "PutObject")
                return "s3:" + verb, f"arn:aws:s3:::{bucket}/{key}"
            verb = {"PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(self.command,
                                                                       "ListBucket")
            return "s3:" + verb, f"arn:aws:s3:::{bucket}"
        target = fake_aws.header_get(headers, "x-amz-target") or ""
        op = target.rsplit(".", 1)[-1]
        try:
            table = json.loads(body or b"{}").get("TableName", "*")
        except ValueError:
            table = "*"
        return (f"{a.service}:{op}",
                f"arn:aws:{a.service}:{a.region}:{a.account_id}:table/{table}")

    def _authorize(self, raw_path, headers, body):
        """None when the policy allows the request, else AWS's message."""
        a = self.server.args
        action, resource = self._action_resource(raw_path, headers, body)
        allowed = False
        for st in a.policy.get("Statement", []):
            if _matches(st.get("Action", []), action, fold=True) and \
                    _matches(st.get("Resource", []), resource, fold=False):
                if st.get("Effect") == "Deny":
                    allowed = False
                    break
                allowed = allowed or st.get("Effect") == "Allow"
        if allowed:
            return None
        return (f"User: arn:aws:iam::{a.account_id}:user/vigil-test is not authorized to "
                f"perform: {action} on resource: {resource} because no identity-based "
                f"policy allows the {action} action")

    # ---- answers --------------------------------------------------------

    def _refuse(self, kind, message):
        if kind == "expired" and self.server.args.service == "s3":
            message = "Request has expired (" + message + ")"     # S3's wording first
        message = "sigv4-proxy: " + message
        if self.server.args.service == "s3":
            status, code = S3_ERRORS.get(kind, (403, "AccessDenied"))
            xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
                   "<Message>%s</Message><RequestId>sigv4proxy</RequestId></Error>"
                   % (code, escape(message)))
            self._send(status, xml.encode(), "application/xml", {})
        else:
            status, code = JSON_ERRORS.get(kind, (400, "InvalidSignatureException"))
            doc = {"__type": "com.amazon.coral.service#" + code, "message": message}
            self._send(status, json.dumps(doc).encode(), "application/x-amz-json-1.0",
                       {"x-amzn-RequestId": "sigv4proxy"})

    def _send(self, status, body, ctype, headers, head_len=None):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(head_len if head_len is not None else len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, raw_path, raw_query, headers, body):
        a = self.server.args
        target = raw_path + ("?" + raw_query if raw_query else "")
        if a.upstream_access_key:
            target = target.replace("X-Amz-Credential=" + urllib.parse.quote(a.access_key),
                                    "X-Amz-Credential=" + a.upstream_access_key, 1)
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        try:
            conn.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                low = name.lower()
                if low in HOP_BY_HOP or low == "content-length":
                    continue
                if low == "authorization" and a.upstream_access_key:
                    value = value.replace("Credential=" + a.access_key + "/",
                                          "Credential=" + a.upstream_access_key + "/", 1)
                conn.putheader(name, value)
            if body or self.command in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            data = resp.read()
            relay = {k: v for k, v in resp.getheaders()
                     if k.lower() not in HOP_BY_HOP | {"content-length", "content-type"}}
            head_len = resp.getheader("Content-Length") if self.command == "HEAD" else None
            self._send(resp.status, data, resp.getheader("Content-Type"), relay,
                       head_len=head_len)
        except (OSError, http.client.HTTPException) as e:
            self._send(502, f"sigv4-proxy: upstream: {e!r}".encode(), "text/plain", {})
        finally:
            conn.close()


def _matches(patterns, value, fold):
    """IAM's wildcards: * any run, ? one character; actions ignore case."""
    for p in [patterns] if isinstance(patterns, str) else patterns:
        rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in p)
        if re.fullmatch(rx, value, re.IGNORECASE if fold else 0):
            return True
    return False


def _load_policy(path, variables):
    with open(path) as f:
        text = f.read()
    for item in variables or []:
        name, _, value = item.partition("=")
        text = text.replace("${" + name + "}", value)
    left = re.findall(r"\$\{[A-Za-z]+\}", text)
    if left:
        raise SystemExit(f"sigv4-proxy: {path}: no --policy-var for {sorted(set(left))}")
    return json.loads(text)


def _signed_headers(auth: str | None) -> set[str]:
    if not auth:
        return set()
    for part in auth.split(" ", 1)[-1].split(","):
        k, _, v = part.strip().partition("=")
        if k == "SignedHeaders":
            return {h.strip().lower() for h in v.split(";")}
    return set()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--service", required=True, help="signing name: s3, dynamodb, ...")
    p.add_argument("--upstream", required=True, help="http://host:port of the emulator")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", help="write the port here once listening")
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--max-skew", type=float, default=300.0, help="seconds (X-Amz-Date)")
    p.add_argument("--upstream-access-key", help="key id the emulator knows, swapped in")
    p.add_argument("--policy", help="IAM policy JSON to authorise requests with")
    p.add_argument("--policy-var", action="append", metavar="NAME=VALUE",
                   help="fill ${NAME} in the policy (repeatable)")
    p.add_argument("--account-id", default="123456789012", help="for DynamoDB ARNs")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    args.policy = _load_policy(args.policy, args.policy_var) if args.policy else None
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    server = Proxy(("127.0.0.1", args.port), args)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    # The handler only records the signal: Event.set() there deadlocks when
    # the signal lands while the main thread holds the Event's lock in wait().
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True)
    t.start()
    while not stopping:
        time.sleep(0.1)
    server.shutdown()
    server.server_close()
    sys.stderr.write(f"sigv4-proxy {args.service}: forwarded {server.counts['forwarded']}, "
                     f"refused {server.counts['refused']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
