#!/usr/bin/env python3
"""fake_kvs_media.py - fake_aws.py plus the Kinesis Video PutMedia endpoint.

Everything fake_aws.py serves (GetDataEndpoint answers with this fake's own
URL for every APIName, so PUT_MEDIA lands here; GetHLSStreamingSessionURL;
the control API) and, in addition:

  POST /putMedia   the PutMedia data-plane API, as the service behaves:
    * SigV4 (service kinesisvideo) checked before the body is read, over the
      EMPTY payload's hash (the body is a stream: the producer SDK signs the
      headers only); a bad signature is answered 403 with the AWS error
      type and the connection closed;
    * x-amzn-stream-name (or -arn), x-amzn-fragment-timecode-type
      (ABSOLUTE|RELATIVE), x-amzn-producer-start-timestamp (seconds.millis)
      and Transfer-Encoding: chunked are required (400 InvalidArgumentException);
    * then 200 at once and a chunked stream of JSON acknowledgements while
      the chunked body is read and parsed incrementally as MKV: EBML header
      (DocType matroska/webm), one Segment, Info, Tracks (TrackEntry number,
      type, CodecID, CodecPrivate, PixelWidth/Height), Clusters (Timecode,
      SimpleBlock / BlockGroup), known or unknown sizes;
    * per cluster: BUFFERING at its first byte, RECEIVED and PERSISTED once
      whole (FragmentTimecode = producer timestamp in ms, FragmentNumber a
      long decimal string); ERROR 4004 for a timecode not above the last
      one, 4002 for a fragment over 10 s, 4006 for bytes that are not MKV
      (then the session ends, as on the service);
    * IDLE every idle_ack_s while no data comes, and the session closed
      after idle_close_s without data (the service: 30 s);
    * the session ends (response finished, connection closed) when the
      client ends its body, after an ERROR, on idle, or on command.

Control (unsigned):
  GET  /_fake/putmedia                 {"sessions": [...]} what each session got:
       headers, signed_ok, auth_error, status, doctype, timecode_scale,
       tracks [{number, type, codec_id, codec_private_len,
       codec_private_first_byte, width, height}], clusters [{timecode,
       producer_ms, blocks, key_first, duration_ms, bytes}], acks [...],
       errors [...], body_bytes, open, closed_by (client|idle|command|error)
  POST /_fake/putmedia/error {"error_id": 4002, "count": 1}
       the next count whole clusters get an ERROR ack with error_id instead
       of RECEIVED/PERSISTED, and the session ends
  POST /_fake/putmedia/config {"idle_close_s": 30, "idle_ack_s": 3}
  POST /_fake/putmedia/close           end every open session now
  POST /_fake/reset                    (fake_aws's) also forgets the above

Run:
  python3 tests/fakes/fake_kvs_media.py --port 0 --port-file /tmp/kvs.port
(the options of fake_aws.py, plus --idle-close-s).
"""
from __future__ import annotations

import json
import os
import queue
import re
import socket
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_aws  # noqa: E402
import fakeserver  # noqa: E402

# ---------------------------------------------------------------------------
# Incremental MKV (EBML) parsing
# ---------------------------------------------------------------------------

ID_EBML = 0x1A45DFA3
ID_DOCTYPE = 0x4282
ID_SEGMENT = 0x18538067
ID_INFO = 0x1549A966
ID_TIMECODE_SCALE = 0x2AD7B1
ID_TRACKS = 0x1654AE6B
ID_TRACK_ENTRY = 0xAE
ID_TRACK_NUMBER = 0xD7
ID_TRACK_TYPE = 0x83
ID_CODEC_ID = 0x86
ID_CODEC_PRIVATE = 0x63A2
ID_VIDEO = 0xE0
ID_PIXEL_WIDTH = 0xB0
ID_PIXEL_HEIGHT = 0xBA
ID_CLUSTER = 0x1F43B675
ID_TIMECODE = 0xE7
ID_SIMPLE_BLOCK = 0xA3
ID_BLOCK_GROUP = 0xA0
ID_BLOCK = 0xA1
ID_REFERENCE_BLOCK = 0xFB
LEVEL1 = {0x114D9B74, ID_INFO, ID_TRACKS, ID_CLUSTER, 0x1C53BB6B, 0x1254C367, 0x1043A770,
          0x1941A469}
MAX_FRAGMENT_MS = 10000
MAX_ELEMENT = 50 * 1024 * 1024


class MkvError(Exception):
    def __init__(self, error_id: int, message: str):
        super().__init__(message)
        self.error_id = error_id
        self.message = message


def vint(buf, pos: int, keep_marker: bool):
    """(value, length, unknown) of the EBML variable-length integer at pos,
    or None when buf ends first.  keep_marker: element IDs keep their
    length marker bit."""
    if pos >= len(buf):
        return None
    b0 = buf[pos]
    length = 1
    mask = 0x80
    while length <= 8 and not b0 & mask:
        mask >>= 1
        length += 1
    if length > 8:
        raise MkvError(4006, f"invalid EBML variable-length integer 0x{b0:02x}")
    if pos + length > len(buf):
        return None
    value = b0 if keep_marker else b0 & (mask - 1)
    for i in range(1, length):
        value = (value << 8) | buf[pos + i]
    all_ones = (b0 & (mask - 1)) == mask - 1 and all(buf[pos + i] == 0xFF
                                                      for i in range(1, length))
    return value, length, (not keep_marker and all_ones)


def element_head(buf, pos: int):
    """(id, size or None for unknown, header length) or None if incomplete."""
    a = vint(buf, pos, True)
    if a is None:
        return None
    eid, il, _ = a
    if il > 4:
        raise MkvError(4006, f"element ID of {il} bytes at offset {pos}")
    b = vint(buf, pos + il, False)
    if b is None:
        return None
    size, sl, unknown = b
    return eid, (None if unknown else size), il + sl


def children(data: bytes):
    """The (id, payload) children of a whole master element's payload."""
    pos = 0
    while pos < len(data):
        h = element_head(data, pos)
        if h is None or h[1] is None or pos + h[2] + h[1] > len(data):
            raise MkvError(4006, "truncated or unknown-size element inside a master element")
        eid, size, hl = h
        yield eid, data[pos + hl:pos + hl + size]
        pos += hl + size


def uint(data: bytes) -> int:
    return int.from_bytes(data, "big") if data else 0


def parse_tracks(payload: bytes) -> list[dict]:
    tracks = []
    for eid, entry in children(payload):
        if eid != ID_TRACK_ENTRY:
            continue
        t = {"number": None, "type": None, "codec_id": None, "codec_private_len": 0,
             "codec_private_first_byte": None, "width": None, "height": None}
        for cid, v in children(entry):
            if cid == ID_TRACK_NUMBER:
                t["number"] = uint(v)
            elif cid == ID_TRACK_TYPE:
                t["type"] = uint(v)
            elif cid == ID_CODEC_ID:
                t["codec_id"] = v.rstrip(b"\0").decode("ascii", "replace")
            elif cid == ID_CODEC_PRIVATE:
                t["codec_private_len"] = len(v)
                t["codec_private_first_byte"] = v[0] if v else None
                t["avcc_profile"] = v[1] if len(v) > 1 else None
            elif cid == ID_VIDEO:
                for vid, vv in children(v):
                    if vid == ID_PIXEL_WIDTH:
                        t["width"] = uint(vv)
                    elif vid == ID_PIXEL_HEIGHT:
                        t["height"] = uint(vv)
        tracks.append(t)
    return tracks


def parse_block(data: bytes):
    """(track, relative timecode, keyframe flag) of a SimpleBlock/Block."""
    v = vint(data, 0, False)
    if v is None or v[1] + 3 > len(data):
        raise MkvError(4006, "truncated block")
    track, n, _ = v
    rel = int.from_bytes(data[n:n + 2], "big", signed=True)
    return track, rel, bool(data[n + 2] & 0x80)


class MkvStream:
    """Feed bytes as they arrive; feed() returns events:
    ("header", info) once Tracks is parsed, ("cluster_start", None) at a
    cluster's first byte, ("cluster", info) once it is whole.
    Raises MkvError for input the service would refuse."""

    def __init__(self):
        self.buf = bytearray()
        self.pos = 0
        self.state = "ebml"
        self.doctype = None
        self.timecode_scale = 1000000
        self.tracks: list[dict] | None = None
        self.cluster: dict | None = None
        self.segments = 0

    def feed(self, data: bytes) -> list:
        self.buf += data
        events = []
        while self._step(events):
            pass
        del self.buf[:self.pos]
        self.pos = 0
        return events

    def _whole(self, h):
        eid, size, hl = h
        if size is None:
            raise MkvError(4006, f"element 0x{eid:X} of unknown size where a size is needed")
        if size > MAX_ELEMENT:
            raise MkvError(4001, f"element 0x{eid:X} of {size} bytes is over the 50 MB limit")
        if self.pos + hl + size > len(self.buf):
            return None
        return bytes(self.buf[self.pos + hl:self.pos + hl + size])

    def _step(self, events) -> bool:
        h = element_head(self.buf, self.pos)
        if h is None:
            return False
        eid, size, hl = h
        if self.state == "ebml":
            if eid != ID_EBML:
                raise MkvError(4006, f"stream starts with element 0x{eid:X}, not an EBML header")
            payload = self._whole(h)
            if payload is None:
                return False
            for cid, v in children(payload):
                if cid == ID_DOCTYPE:
                    self.doctype = v.rstrip(b"\0").decode("ascii", "replace")
            if self.doctype not in ("matroska", "webm"):
                raise MkvError(4006, f"EBML DocType {self.doctype!r} is not matroska")
            self.pos += hl + len(payload)
            self.state = "segment"
            return True
        if self.state == "segment":
            if eid != ID_SEGMENT:
                raise MkvError(4006, f"element 0x{eid:X} where the Segment should start")
            self.segments += 1
            self.pos += hl
            self.state = "level1"
            return True
        if self.state == "cluster":
            return self._cluster_child(events, h)
        # level 1
        if eid == ID_SEGMENT or eid == ID_EBML:
            raise MkvError(4006, "more than one MKV segment in one PutMedia request")
        if eid == ID_CLUSTER:
            if self.tracks is None:
                raise MkvError(4006, "a Cluster before the Tracks")
            self.cluster = {"timecode": None, "blocks": 0, "key_first": None, "bytes": hl,
                            "left": size, "max_rel": 0, "tracks_seen": set()}
            self.pos += hl
            self.state = "cluster"
            events.append(("cluster_start", None))
            if size == 0:
                self._end_cluster(events)
            return True
        payload = self._whole(h)
        if payload is None:
            return False
        if eid == ID_TRACKS:
            self.tracks = parse_tracks(payload)
            events.append(("header", {"doctype": self.doctype, "tracks": self.tracks,
                                      "timecode_scale": self.timecode_scale}))
        elif eid == ID_INFO:
            for cid, v in children(payload):
                if cid == ID_TIMECODE_SCALE:
                    self.timecode_scale = uint(v)
        self.pos += hl + len(payload)
        return True

    def _cluster_child(self, events, h) -> bool:
        c = self.cluster
        eid, size, hl = h
        if c["left"] is None and eid in LEVEL1:     # an unknown-size cluster ends
            self._end_cluster(events)
            return True
        payload = self._whole(h)
        if payload is None:
            return False
        n = hl + len(payload)
        if c["left"] is not None:
            if n > c["left"]:
                raise MkvError(4006, "a cluster child runs past the cluster's end")
            c["left"] -= n
        c["bytes"] += n
        self.pos += n
        if eid == ID_TIMECODE:
            c["timecode"] = uint(payload)
            events.append(("buffering", round(c["timecode"] * self.timecode_scale / 1e6)))
        elif eid in (ID_SIMPLE_BLOCK, ID_BLOCK_GROUP):
            if eid == ID_BLOCK_GROUP:
                block, key = None, True
                for cid, v in children(payload):
                    if cid == ID_BLOCK:
                        block = v
                    elif cid == ID_REFERENCE_BLOCK:
                        key = False
                if block is None:
                    raise MkvError(4006, "a BlockGroup without a Block")
                track, rel, _ = parse_block(block)
            else:
                track, rel, key = parse_block(payload)
            if c["timecode"] is None:
                raise MkvError(4006, "a block before the cluster's Timecode")
            if track not in {t["number"] for t in self.tracks}:
                raise MkvError(4010, f"block of track {track}, which the header does not define")
            c["tracks_seen"].add(track)
            if c["blocks"] == 0:
                c["key_first"] = key
            c["blocks"] += 1
            c["max_rel"] = max(c["max_rel"], rel)
        if c["left"] == 0:
            self._end_cluster(events)
        return True

    def _end_cluster(self, events):
        c = self.cluster
        self.cluster = None
        self.state = "level1"
        if c["timecode"] is None:
            raise MkvError(4006, "a Cluster without a Timecode")
        scale_ms = self.timecode_scale / 1e6
        info = {"timecode": c["timecode"], "blocks": c["blocks"], "key_first": c["key_first"],
                "bytes": c["bytes"], "duration_ms": round(c["max_rel"] * scale_ms),
                "timecode_ms": round(c["timecode"] * scale_ms),
                "missing_tracks": sorted({t["number"] for t in self.tracks} - c["tracks_seen"])}
        events.append(("cluster", info))


# ---------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------

FRAGMENT_BASE = 91343852333181432392682062607743920146264000000


class State(fake_aws.State):
    def reset(self):
        super().reset()
        with self.lock:
            self.pm_sessions: list[dict] = []
            self.pm_errors: list[dict] = []
            self.pm_idle_close_s = float(getattr(self.args, "idle_close_s", 30.0))
            self.pm_idle_ack_s = 3.0
            self.pm_close_seq = 0
            self.pm_fragment = 0

    def next_fragment(self) -> str:
        with self.lock:
            self.pm_fragment += 1
            return str(FRAGMENT_BASE + self.pm_fragment)

    def take_error(self):
        with self.lock:
            if not self.pm_errors:
                return None
            e = self.pm_errors[0]
            e["count"] -= 1
            if e["count"] <= 0:
                self.pm_errors.pop(0)
            return e["error_id"]


class Handler(fake_aws.Handler):
    server_version = "FakeKVSMedia/1.0"

    def _handle(self):
        path = self.path
        m = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*", path)
        if m:
            path = path[m.end():] or "/"
        if path.partition("?")[0] == "/putMedia" and self.command == "POST":
            return self._put_media(*path.partition("?")[::2])
        return super()._handle()

    # --- control ------------------------------------------------------------

    def _control_route(self, route, q, b):
        st = self.state
        method, path = route
        if route == ("GET", "/_fake/putmedia"):
            with st.lock:
                return 200, {"sessions": json.loads(json.dumps(st.pm_sessions, default=list))}
        if route == ("POST", "/_fake/putmedia/error"):
            eid, count = b.get("error_id"), b.get("count", 1)
            if not isinstance(eid, int) or not isinstance(count, int) or count < 1:
                raise ValueError("'error_id' must be an integer and 'count' a positive integer")
            with st.lock:
                st.pm_errors.append({"error_id": eid, "count": count})
            return 200, {"ok": True}
        if route == ("POST", "/_fake/putmedia/config"):
            with st.lock:
                for key, attr in (("idle_close_s", "pm_idle_close_s"),
                                  ("idle_ack_s", "pm_idle_ack_s")):
                    if key in b:
                        if not isinstance(b[key], (int, float)) or b[key] <= 0:
                            raise ValueError(f"'{key}' must be a positive number")
                        setattr(st, attr, float(b[key]))
            return 200, {"ok": True}
        if route == ("POST", "/_fake/putmedia/close"):
            with st.lock:
                st.pm_close_seq += 1
            return 200, {"ok": True}
        return super()._control_route(route, q, b)

    # --- PutMedia -------------------------------------------------------------

    def _put_media(self, path, query):
        st = self.state
        self._status = None
        self._request_id = str(uuid.uuid4())
        pairs = self._header_pairs()
        self._rec = {"time": time.time(), "api": "kinesisvideo.PutMedia",
                     "service": "kinesisvideo", "method": self.command, "path": path,
                     "query": query, "headers": dict(pairs), "body_sha256": None, "body_len": 0,
                     "signed_ok": None, "auth_error": None, "auth_message": None,
                     "access_key": None, "error_code": None, "request_id": self._request_id}
        self._recorded = False
        hdr = {k.lower(): v for k, v in pairs}
        sess = {"id": None, "stream": hdr.get("x-amzn-stream-name"), "headers": hdr,
                "signed_ok": None, "auth_error": None, "status": None, "doctype": None,
                "timecode_scale": None, "tracks": None, "clusters": [], "acks": [],
                "errors": [], "body_bytes": 0, "open": True, "closed_by": None,
                "started": time.time()}
        with st.lock:
            sess["id"] = len(st.pm_sessions) + 1
            st.pm_sessions.append(sess)
        try:
            if not self._pm_accept(path, query, pairs, hdr, sess):
                self._drain()
                return
            self._pm_stream(sess)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            with st.lock:
                sess["open"] = False
            if not self._recorded:
                self._rec["status"] = self._status
                self._record()
            self._log_line()

    def _pm_accept(self, path, query, pairs, hdr, sess) -> bool:
        """Signature and headers; False once an error answer is sent."""
        st = self.state
        res = fake_aws.verify_request("POST", path, query, pairs, b"", st.lookup, st.now(),
                                      region=st.config["region"], service="kinesisvideo",
                                      max_skew=st.config["max_skew"])
        self._rec["signed_ok"] = res.ok
        self._rec["access_key"] = res.access_key
        with st.lock:
            sess["signed_ok"] = res.ok
        self.close_connection = True
        if not res.ok:
            self._rec["auth_message"] = res.message
            self._rec["canonical_request"] = res.canonical_request
            self._auth_error("kinesisvideo", res.kind, res.message)
            with st.lock:
                sess["auth_error"] = self._rec["auth_error"]
                sess["status"] = 403
                sess["closed_by"] = "error"
            return False
        problem = None
        name = hdr.get("x-amzn-stream-name")
        if name is None and hdr.get("x-amzn-stream-arn") is None:
            problem = "x-amzn-stream-name or x-amzn-stream-arn is required"
        elif name is not None and not re.fullmatch(r"[a-zA-Z0-9_.-]{1,256}", name):
            problem = "StreamName must match [a-zA-Z0-9_.-]+ (1-256 characters)"
        elif hdr.get("x-amzn-fragment-timecode-type") not in ("ABSOLUTE", "RELATIVE"):
            problem = "x-amzn-fragment-timecode-type must be ABSOLUTE or RELATIVE"
        elif not re.fullmatch(r"\d{1,13}(\.\d{1,3})?",
                              hdr.get("x-amzn-producer-start-timestamp", "")):
            problem = "x-amzn-producer-start-timestamp must be seconds since the epoch"
        elif "chunked" not in hdr.get("transfer-encoding", "").lower():
            problem = "PutMedia needs Transfer-Encoding: chunked"
        if problem:
            self._error("kinesisvideo", 400, "InvalidArgumentException", problem)
        elif st.config["strict_streams"] and name is not None:
            with st.lock:
                known = name in st.streams
            if not known:
                self._error("kinesisvideo", 404, "ResourceNotFoundException",
                            f"Stream {name} not found")
                problem = "not found"
        if problem:
            with st.lock:
                sess["status"] = self._status
                sess["closed_by"] = "error"
            return False
        if self._apply_fault("kinesisvideo.PutMedia", "kinesisvideo"):
            with st.lock:
                sess["status"] = self._status
                sess["closed_by"] = "error"
            return False
        return True

    def _drain(self):
        """Read what the client still sends for a moment after an error
        answer: closing with unread data would reset the connection before
        the client reads the answer."""
        try:
            self.wfile.flush()
            self.connection.settimeout(0.5)
            end = time.monotonic() + 2.0
            while time.monotonic() < end and self.connection.recv(65536):
                pass
        except OSError:
            pass

    def _chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
        self.wfile.flush()

    def _acks(self, sess, acks: list[dict]):
        """Several acknowledgements, split across two chunks mid-object (a
        client must parse them as a stream, not one per read)."""
        data = b"".join(json.dumps(a, separators=(",", ":")).encode() + b"\n" for a in acks)
        cut = max(1, len(data) // 2)
        self._chunk(data[:cut])
        self._chunk(data[cut:])
        with self.state.lock:
            sess["acks"].extend(a["EventType"] for a in acks)

    def _reader(self, events: queue.Queue, stop: threading.Event):
        """The chunked request body, parsed as it comes; events for the
        writer.  After stop, bytes are read and dropped until the end."""
        parser = MkvStream()
        rfile = self.rfile
        try:
            while True:
                line = rfile.readline(65537)
                if not line:
                    events.put(("gone", None))
                    return
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    events.put(("eof", None))
                    return
                left = size
                while left > 0:
                    data = rfile.read(min(left, 65536))
                    if not data:
                        events.put(("gone", None))
                        return
                    left -= len(data)
                    events.put(("bytes", len(data)))
                    if not stop.is_set():
                        try:
                            for ev in parser.feed(data):
                                events.put(ev)
                        except MkvError as e:
                            events.put(("mkv_error", e))
                            stop.set()
                rfile.readline(65537)
        except (ValueError, OSError) as e:
            events.put(("gone", str(e)))

    def _pm_stream(self, sess):
        st = self.state
        self._status = 200
        self._rec["status"] = 200
        self._record()
        with st.lock:
            sess["status"] = 200
            close_seq = st.pm_close_seq
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", self._request_id)
        self.end_headers()
        self.wfile.flush()
        events: queue.Queue = queue.Queue()
        stop = threading.Event()
        reader = threading.Thread(target=self._reader, args=(events, stop), daemon=True)
        reader.start()
        last_data = last_idle = time.monotonic()
        last_tc = num = None
        closed_by = None
        reader_done = False
        while closed_by is None:
            try:
                kind, val = events.get(timeout=0.1)
            except queue.Empty:
                kind, val = None, None
            now = time.monotonic()
            with st.lock:
                idle_close, idle_ack = st.pm_idle_close_s, st.pm_idle_ack_s
                if st.pm_close_seq != close_seq:
                    closed_by = "command"
            if closed_by:
                break
            if kind is None:
                if now - last_data >= idle_close:
                    closed_by = "idle"
                elif now - last_idle >= idle_ack and now - last_data >= idle_ack:
                    self._acks(sess, [{"EventType": "IDLE"}])
                    last_idle = now
                continue
            if kind == "bytes":
                last_data = now
                with st.lock:
                    sess["body_bytes"] += val
            elif kind == "header":
                with st.lock:
                    sess["doctype"] = val["doctype"]
                    sess["tracks"] = val["tracks"]
                    sess["timecode_scale"] = val["timecode_scale"]
            elif kind == "buffering":     # the cluster's first bytes, its Timecode
                num = st.next_fragment()
                self._acks(sess, [{"EventType": "BUFFERING", "FragmentTimecode": val,
                                   "FragmentNumber": num}])
            elif kind == "cluster":
                closed_by = self._pm_cluster(sess, val, last_tc, num)
                last_tc = val["timecode_ms"]
            elif kind == "mkv_error":
                self._pm_error(sess, val.error_id, None, val.message)
                closed_by = "error"
            elif kind in ("eof", "gone"):
                reader_done = True
                closed_by = "client"
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        stop.set()
        with st.lock:
            sess["closed_by"] = closed_by
        self.close_connection = True
        if not reader_done:
            # Let the client read the end of the answer and hang up before
            # the socket goes (closing with unread data would reset it).
            reader.join(2.0)
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        reader.join(1.0)

    def _pm_error(self, sess, error_id, tc, message, num=None):
        ack = {"EventType": "ERROR", "ErrorId": error_id}
        if tc is not None:
            ack["FragmentTimecode"] = tc
            ack["FragmentNumber"] = num or self.state.next_fragment()
        self._acks(sess, [ack])
        with self.state.lock:
            sess["errors"].append({"error_id": error_id, "message": message,
                                   "timecode": tc})

    def _pm_cluster(self, sess, c, last_tc, num):
        """Acknowledge one whole cluster; the session's end reason if this
        ends it."""
        st = self.state
        hdr = sess["headers"]
        tc = c["timecode_ms"]
        if hdr.get("x-amzn-fragment-timecode-type") == "RELATIVE":
            start = float(hdr.get("x-amzn-producer-start-timestamp", "0"))
            producer_ms = round(start * 1000) + tc
        else:
            producer_ms = tc
        rec = dict(c, producer_ms=producer_ms)
        with st.lock:
            sess["clusters"].append(rec)
        if last_tc is not None and tc <= last_tc:
            self._pm_error(sess, 4004, tc, f"fragment timecode {tc} is not above {last_tc}", num)
            return "error"
        if c["duration_ms"] > MAX_FRAGMENT_MS:
            self._pm_error(sess, 4002, tc, f"fragment of {c['duration_ms']} ms", num)
            return "error"
        if c["missing_tracks"]:
            self._pm_error(sess, 4011, tc, f"no frames of tracks {c['missing_tracks']}", num)
            return "error"
        injected = st.take_error()
        if injected is not None:
            self._pm_error(sess, injected, tc, "injected", num)
            return "error"
        num = num or st.next_fragment()
        self._acks(sess, [{"EventType": "RECEIVED", "FragmentTimecode": tc,
                           "FragmentNumber": num},
                          {"EventType": "PERSISTED", "FragmentTimecode": tc,
                           "FragmentNumber": num}])
        return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    idle = 30.0
    if "--idle-close-s" in argv:
        i = argv.index("--idle-close-s")
        idle = float(argv[i + 1])
        del argv[i:i + 2]
    args = fake_aws.parse_args(argv)
    args.idle_close_s = idle
    state = State(args)
    server = fakeserver.Server(args.port, Handler, state)
    state.port = server.port
    fakeserver.serve(server, args.port_file,
                     f"fake_kvs_media listening on 127.0.0.1:{state.port} (pid {os.getpid()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
