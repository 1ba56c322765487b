"""Bare-socket clients for tests that look under the services: a NATS
publisher, JetStream API requests (stream info, stored messages), Redis
commands, and a protobuf field reader for the Alerts the dedupe tests
read back. No client packages needed."""
import base64
import json
import socket
import threading


class NatsPub:
    """One NATS connection for many publishes; answers the server's PINGs."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.f = self.s.makefile("rb")
        self.f.readline()  # INFO
        self.lock = threading.Lock()
        self.pong = threading.Event()
        self.s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.pong.wait(5):
            raise AssertionError("nats-server did not answer PING")

    def _read(self):
        try:
            for line in self.f:
                if line.startswith(b"PING"):
                    with self.lock:
                        self.s.sendall(b"PONG\r\n")
                elif line.startswith(b"PONG"):
                    self.pong.set()
        except OSError:
            pass

    def pub(self, subject, data):
        with self.lock:
            self.s.sendall(f"PUB {subject} {len(data)}\r\n".encode() + data + b"\r\n")

    def flush(self):
        self.pong.clear()
        with self.lock:
            self.s.sendall(b"PING\r\n")
        return self.pong.wait(5)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def js_api(port, subject, payload=b""):
    """One JetStream API request over its own connection; the JSON reply."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rb")
    f.readline()  # INFO
    inbox = "_INBOX.rawio"
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n' +
              f"SUB {inbox} 1\r\nPUB {subject} {inbox} {len(payload)}\r\n".encode() +
              payload + b"\r\n")
    try:
        while True:
            line = f.readline()
            if line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG"):
                data = f.read(int(line.split()[-1]) + 2)
                return json.loads(data[:-2])
            elif not line:
                raise AssertionError(f"no reply to {subject}")
    finally:
        s.close()


def stream_count(port, stream="VIGIL_ALERTS"):
    """Messages stored in the stream (0 when it does not exist)."""
    info = js_api(port, f"$JS.API.STREAM.INFO.{stream}")
    return info.get("state", {}).get("messages", 0)


def stream_messages(port, stream="VIGIL_ALERTS"):
    """Every stored message as (Nats-Msg-Id, data bytes), oldest first."""
    info = js_api(port, f"$JS.API.STREAM.INFO.{stream}")
    state = info.get("state", {})
    out = []
    for seq in range(state.get("first_seq", 1), state.get("last_seq", 0) + 1):
        r = js_api(port, f"$JS.API.STREAM.MSG.GET.{stream}", json.dumps({"seq": seq}).encode())
        m = r.get("message")
        if not m:
            continue
        hdrs = base64.b64decode(m.get("hdrs", "")).decode(errors="replace")
        msg_id = ""
        for h in hdrs.split("\r\n"):
            if h.lower().startswith("nats-msg-id:"):
                msg_id = h.split(":", 1)[1].strip()
        out.append((msg_id, base64.b64decode(m.get("data", ""))))
    return out


def redis_cmd(port, *args):
    """One Redis command; the reply (str, int, list or None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rb")
    req = f"*{len(args)}\r\n".encode()
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        req += f"${len(a)}\r\n".encode() + a + b"\r\n"
    s.sendall(req)
    try:
        return _resp(f)
    finally:
        s.close()


def _resp(f):
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise AssertionError(f"redis: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp(f) for _ in range(n)]
    raise AssertionError(f"redis: unexpected reply {line!r}")


def pb_fields(data):
    """A protobuf message as {field: [values]}: ints for varints, bytes for
    length-delimited fields, raw 4/8 bytes for fixed ones."""
    out, i = {}, 0

    def varint():
        nonlocal i
        shift = n = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(data):
        k = varint()
        field, wire = k >> 3, k & 7
        if wire == 0:
            v = varint()
        elif wire == 2:
            n = varint()
            v, i = data[i:i + n], i + n
        elif wire == 5:
            v, i = data[i:i + 4], i + 4
        elif wire == 1:
            v, i = data[i:i + 8], i + 8
        else:
            raise ValueError(f"wire type {wire}")
        out.setdefault(field, []).append(v)
    return out


def alert(data):
    """The Alert fields the tests look at."""
    f = pb_fields(data)
    h = pb_fields(f.get(1, [b""])[0])
    s = lambda fields, n: fields.get(n, [b""])[0].decode()  # noqa: E731
    profile = {}
    for entry in f.get(14, []):
        e = pb_fields(entry)
        profile[s(e, 1)] = s(e, 2)
    return {"camera": s(h, 1), "capture_ts_us": h.get(2, [0])[0], "trace_id": s(h, 3),
            "publish_ts_us": h.get(5, [0])[0], "alert_id": s(f, 2), "key": s(f, 3),
            "label": s(f, 4), "person_id": s(f, 7), "display_name": s(f, 8),
            "snapshot_url": s(f, 9), "snapshot_ref": s(f, 20), "window_s": f.get(11, [0])[0],
            "fail_open": bool(f.get(13, [0])[0]), "profile": profile, "face_id": s(f, 15)}

