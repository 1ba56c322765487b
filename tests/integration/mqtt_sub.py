"""A small MQTT 3.1.1 subscriber in the standard library, for tests against a
real broker: CONNECT (user, password, clean or persistent session),
SUBSCRIBE at qos 1, PUBLISH received at qos 0 and 1 (PUBACK sent), PINGREQ.
Every message is kept as (topic, payload bytes, retain flag, time). With
reconnect=True it connects again whenever the broker goes away, with the
same client id (a persistent session then gets what was queued meanwhile)."""
import select
import socket
import struct
import threading
import time


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def _packet(first, body):
    return bytes([first]) + _varint(len(body)) + body


class RefusedError(Exception):
    pass


class Subscriber:
    def __init__(self, port, client_id, topics, username=None, password=None, clean=True,
                 reconnect=False, host="127.0.0.1", keepalive=30):
        self.addr = (host, port)
        self.client_id = client_id
        self.topics = topics
        self.username, self.password = username, password
        self.clean = clean
        self.keepalive = keepalive
        self.reconnect = reconnect
        self.messages = []
        self.connects = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.sock = None
        self.subscribed = threading.Event()
        self._connect()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    # ---- wire ----

    def _read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def _read_packet(self):
        first = self._read_exact(1)[0]
        n, shift = 0, 0
        while True:
            b = self._read_exact(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return first, self._read_exact(n) if n else b""

    def _connect(self):
        s = socket.create_connection(self.addr, timeout=5)
        flags = 0x02 if self.clean else 0
        payload = _str(self.client_id)
        if self.username is not None:
            flags |= 0x80
            payload += _str(self.username)
        if self.password is not None:
            flags |= 0x40
            payload += _str(self.password)
        body = _str("MQTT") + bytes([4, flags]) + struct.pack(">H", self.keepalive) + payload
        s.sendall(_packet(0x10, body))
        self.sock = s
        first, body = self._read_packet()
        if first >> 4 != 2 or len(body) != 2:
            raise ConnectionError(f"expected CONNACK, got {first:#x}")
        if body[1] != 0:
            s.close()
            raise RefusedError(f"CONNACK {body[1]}")
        sub = struct.pack(">H", 1) + b"".join(_str(t) + b"\x01" for t in self.topics)
        s.sendall(_packet(0x82, sub))
        self.connects += 1

    def _handle(self, first, body):
        kind = first >> 4
        if kind == 9:
            self.subscribed.set()
        elif kind == 3:
            qos = (first >> 1) & 3
            n = struct.unpack(">H", body[:2])[0]
            topic = body[2:2 + n].decode()
            rest = body[2 + n:]
            if qos:
                pid, rest = rest[:2], rest[2:]
                self.sock.sendall(_packet(0x40, pid))
            with self.lock:
                self.messages.append((topic, bytes(rest), bool(first & 1), time.time()))

    def _run(self):
        last_ping = time.monotonic()
        while not self.stopping:
            try:
                if self.sock is None:
                    self._connect()
                    last_ping = time.monotonic()
                # Wait for a packet to start, then read all of it (a timeout
                # inside one would lose the stream's framing).
                if select.select([self.sock], [], [], 0.5)[0]:
                    first, body = self._read_packet()
                    self._handle(first, body)
                if time.monotonic() - last_ping > self.keepalive / 2:
                    self.sock.sendall(b"\xc0\x00")
                    last_ping = time.monotonic()
            except (OSError, ConnectionError, RefusedError):
                if self.sock:
                    self.sock.close()
                self.sock = None
                if not self.reconnect or self.stopping:
                    return
                time.sleep(0.1)

    # ---- for the test ----

    def got(self, topic=None):
        with self.lock:
            return [m for m in self.messages if topic is None or m[0] == topic]

    def payloads(self, topic):
        return [m[1] for m in self.got(topic)]

    def close(self):
        self.stopping = True
        try:
            if self.sock:
                self.sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        self.thread.join(3)
        if self.sock:
            self.sock.close()
