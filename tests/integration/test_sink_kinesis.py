#!/usr/bin/env python3
"""The kinesis sink end to end: real nats-server, redis-server and
vigil-notifier; kinesalite (Kinesis Data Streams) behind the SigV4-checking
proxy (tests/fakes/sigv4_proxy.py); alerts injected into the alerts stream
as dedupe would. Records are read back straight from kinesalite.

- an alert becomes one record whose Data is the alert JSON, byte for byte
  what the file sink writes, and whose PartitionKey is the camera; a second
  sink configured by stream ARN with partition_key "{label}/{camera}";
- ProvisionedThroughputExceededException, a 500 and KMSThrottlingException
  (from a small front in this file, ahead of the proxy) are retried: the alert
  arrives once, nothing is dead-lettered;
- a stream that does not exist: the alert is dead-lettered after one attempt,
  with AWS's code and message, and the other sinks still get it;
- ValidationException and AccessDeniedException are dead-lettered after one
  request; a 500 (InternalFailure) is retried.
"""
import base64
import http.client
import http.server
import json
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbframe  # noqa: E402
from harness import check, free_port, port_open, run, wait_for  # noqa: E402

CAM = "door"
KEY, SECRET, REGION = "AKIDVIGILKINESIS", "kinesis/test+secret", "us-east-1"
ACCOUNT = "000000000000"            # kinesalite's account id
STREAM, ARN_STREAM = "vigil-alerts", "vigil-by-arn"
TARGET = "Kinesis_20131202."
# kinesalite has no --host option: listen on loopback only.
KINESALITE_JS = ("require(process.argv[1])({createStreamMs: +process.argv[3]})"
                 ".listen(+process.argv[2], '127.0.0.1')")


def kinesis(port, op, body):
    """One Kinesis call straight to kinesalite. It wants an Authorization
    header of the SigV4 form but checks no signature."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/", json.dumps(body), {
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + op,
            "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDREADER/20240101/us-east-1/"
                             "kinesis/aws4_request, SignedHeaders=host, Signature=00"})
        r = conn.getresponse()
        data = json.loads(r.read() or b"{}")
    finally:
        conn.close()
    if r.status != 200:
        raise AssertionError(f"kinesis {op}: HTTP {r.status}: {data}")
    return data


def create_stream(port, name):
    kinesis(port, "CreateStream", {"StreamName": name, "ShardCount": 1})
    wait_for(lambda: kinesis(port, "DescribeStreamSummary", {"StreamName": name})
             ["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", 10, f"stream {name}")


def records(port, name):
    """Every record of the stream's one shard: (data bytes, partition key)."""
    it = kinesis(port, "GetShardIterator", {"StreamName": name,
                                             "ShardId": "shardId-000000000000",
                                             "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
    out = []
    for _ in range(50):
        page = kinesis(port, "GetRecords", {"ShardIterator": it})
        out += [(base64.b64decode(r["Data"]), r["PartitionKey"]) for r in page["Records"]]
        it = page["NextShardIterator"]
        if not page["Records"]:
            break
    return out


def records_of(port, name, aid):
    return [(d, k) for d, k in records(port, name) if json.loads(d).get("alert_id") == aid]


class Front:
    """Ahead of the proxy: answers the next requests in `fail` with a Kinesis
    error (status, code) instead of forwarding them. Counts the PutRecords it
    saw per alert id."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.fail = []
        self.seen = {}
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(front):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    aid = json.loads(base64.b64decode(json.loads(body)["Data"]))["alert_id"]
                except (ValueError, KeyError, TypeError):
                    aid = "?"
                with front.lock:
                    front.seen[aid] = front.seen.get(aid, 0) + 1
                    failure = front.fail.pop(0) if front.fail else None
                if failure:
                    status, code = failure
                    doc = json.dumps({"__type": code, "message": f"front: {code}"}).encode()
                    self._answer(status, doc, "application/x-amz-json-1.1")
                    return
                conn = http.client.HTTPConnection("127.0.0.1", front.upstream, timeout=10)
                try:   # as it came: the proxy checks the signature, Host included
                    conn.putrequest("POST", self.path, skip_host=True,
                                    skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        if k.lower() not in ("content-length", "connection"):
                            conn.putheader(k, v)
                    conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body)
                    r = conn.getresponse()
                    self._answer(r.status, r.read(), r.getheader("Content-Type"))
                finally:
                    conn.close()

            def _answer(self, status, data, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype or "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass
        return Handler

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def config(stack, front, proxy_port):
    arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{ARN_STREAM}"
    return f"""
cameras:
  - {{ id: {CAM}, url: {stack.path("unused.avi")} }}
notifier:
  sinks:
    - {{ name: outbox, type: file, path: {stack.path("outbox.jsonl")} }}
    - {{ name: lambda, type: kinesis, stream_name: {STREAM},
         endpoint: "http://127.0.0.1:{front.port}", backoff_ms: 50 }}
    - {{ name: by-arn, type: kinesis, stream_arn: "{arn}",
         endpoint: "http://127.0.0.1:{proxy_port}", partition_key: "{{label}}/{{camera}}" }}
    - {{ name: missing, type: kinesis, stream_name: no-such-stream,
         endpoint: "http://127.0.0.1:{proxy_port}" }}
"""


def publish(stack, label="person"):
    aid = f"k{uuid.uuid4().hex[:16]}"
    stack.publish_alert(CAM, pbframe.alert(CAM, aid, label=label))
    return aid


def outbox_line(stack, aid):
    with open(stack.path("outbox.jsonl"), "rb") as f:
        lines = [x.rstrip(b"\n") for x in f if json.loads(x)["alert_id"] == aid]
    return lines[0] if len(lines) == 1 else None


def record_is_the_alert_json(stack, kport, front):
    aid = publish(stack)
    wait_for(lambda: records_of(kport, STREAM, aid) and records_of(kport, ARN_STREAM, aid) and
             os.path.exists(stack.path("outbox.jsonl")) and outbox_line(stack, aid), 15,
             "the alert in both streams and the outbox")
    [(data, key)] = records_of(kport, STREAM, aid)
    print(f"# record: {key} {data[:120]!r}...", flush=True)
    check(data == outbox_line(stack, aid), "Data is the alert JSON, as the file sink writes it")
    check(json.loads(data)["alert_id"] == aid, "with the alert's id")
    check(key == CAM, "PartitionKey is the camera (default {camera})")
    [(data2, key2)] = records_of(kport, ARN_STREAM, aid)
    check(data2 == data and key2 == f"person/{CAM}",
          "the stream_arn sink: the same Data, PartitionKey {label}/{camera}")


def throttling_is_retried(stack, kport, front):
    dead0 = stack.metric("notifier", 'vigil_notifier_dead_letters_total{sink="lambda"}')
    with front.lock:
        front.fail = [(400, "ProvisionedThroughputExceededException"),
                      (500, "InternalFailure"), (400, "KMSThrottlingException")]
    aid = publish(stack)
    wait_for(lambda: records_of(kport, STREAM, aid), 20, "the alert after three failed tries")
    time.sleep(1)
    with front.lock:
        seen = front.seen.get(aid)
    print(f"# throttled, 500, throttled: {seen} PutRecord requests", flush=True)
    check(seen == 4, "throttled, 500 and KMS-throttled requests, then the one that went through")
    check(len(records_of(kport, STREAM, aid)) == 1, "the alert is in the stream once")
    check(stack.metric("notifier", 'vigil_notifier_dead_letters_total{sink="lambda"}') == dead0,
          "nothing dead-lettered for throttling or a 500")


def refusals_are_permanent(stack, kport, front):
    """ValidationException and AccessDeniedException: dead-lettered after
    one request, with the code."""
    rows = []
    for code in ("ValidationException", "AccessDeniedException"):
        with front.lock:
            front.fail = [(400, code)]
        aid = publish(stack)
        wait_for(lambda: any(x["alert_id"] == aid and x["sink"] == "lambda"
                             for x in dlq_rows(stack)), 15, f"the dead letter for {code}")
        [row] = [x for x in dlq_rows(stack) if x["alert_id"] == aid and x["sink"] == "lambda"]
        rows.append(row)
        with front.lock:
            seen = front.seen.get(aid)
        check(seen == 1 and code in row["error"] and not records_of(kport, STREAM, aid),
              f"{code}: one request, dead-lettered with the code, not in the stream")
    print(f"# {rows[-1]['error']}", flush=True)


def dlq_rows(stack):
    r = stack.vigilctl("dlq", "list", "--json")
    return [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]


def missing_stream_dead_lettered(stack, kport, front):
    wait_for(lambda: stack.metric("notifier",
                                  'vigil_notifier_dead_letters_total{sink="missing"}') >= 2, 15,
             "the missing stream's dead letters")
    r = stack.vigilctl("dlq", "list", "--json")
    rows = [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]
    mine = [x for x in rows if x["sink"] == "missing"]
    print(f"# dead letter: {mine[0]['error'] if mine else rows}", flush=True)
    check(r.returncode == 0 and len(mine) == 2, "one dead letter per alert for sink missing")
    check(all("ResourceNotFoundException" in x["error"] and "no-such-stream" in x["error"]
              for x in mine), "with AWS's code and message")
    fails = stack.metric("notifier", 'vigil_notifier_sink_failures_total{sink="missing"}')
    check(fails == 2, f"one attempt each: a missing stream is not retried ({fails:.0f})")
    check(not any(x["sink"] in ("lambda", "by-arn") for x in rows),
          "the other kinesis sinks dead-lettered nothing")


def body(stack, args, front_box):
    mod = os.path.join(args.src, "tests", "emulators", "node_modules", "kinesalite")
    if not os.path.isdir(mod):
        raise AssertionError(f"{mod} is missing: run scripts/deps")
    kport = free_port()
    stack.start("kinesalite", ["node", "-e", KINESALITE_JS, mod, str(kport), "50"])
    wait_for(lambda: port_open(kport), 20, "kinesalite")
    proxy_port = stack.start_port_file("proxy", [
        "python3", os.path.join(args.src, "tests", "fakes", "sigv4_proxy.py"),
        "--service", "kinesis", "--upstream", f"http://127.0.0.1:{kport}",
        "--access-key", KEY, "--secret-key", SECRET, "--region", REGION])
    front = front_box["front"] = Front(proxy_port)
    create_stream(kport, STREAM)
    create_stream(kport, ARN_STREAM)

    for k in [k for k in stack.env if k.startswith("AWS_")]:
        del stack.env[k]
    stack.env.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION=REGION,
                     AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
                     AWS_CONFIG_FILE="/nonexistent")
    stack.write_config(config(stack, front, proxy_port))
    stack.start_nats()
    stack.start_redis()
    stack.start_service("notifier")
    for step in (record_is_the_alert_json, throttling_is_retried, missing_stream_dead_lettered,
                 refusals_are_permanent):
        t0 = time.time()
        step(stack, kport, front)
        print(f"ok {step.__name__} ({time.time() - t0:.1f}s)", flush=True)


def main():
    box = {}
    return run(lambda stack, args: body(stack, args, box), dump=("notifier", "proxy"),
               cleanup=lambda: box.get("front") and box["front"].close())


if __name__ == "__main__":
    sys.exit(main())
