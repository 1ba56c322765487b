"""Hand-encoded vigil.v1 protobuf messages for tests that publish frames
themselves (no protobuf package needed): just the fields the tests use."""
import struct
import time
import uuid


def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field, wire):
    return _varint(field << 3 | wire)


def _bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return _key(field, 2) + _varint(len(data)) + data


def _uint(field, n):
    return _key(field, 0) + _varint(n)


def _float(field, v):
    return _key(field, 5) + struct.pack("<f", v)


def header(camera, capture_ts_us=None, trace_id=None):
    ts = capture_ts_us if capture_ts_us is not None else int(time.time() * 1e6)
    return (_bytes(1, camera) + _uint(2, ts) + _bytes(3, trace_id or uuid.uuid4().hex))


def box(x, y, w, h):
    return _float(1, x) + _float(2, y) + _float(3, w) + _float(4, h)


def frame(camera, jpeg, width, height, seq=1, motion=(), capture_ts_us=None, trace_id=None):
    """motion: [(x, y, w, h, fill), ...] normalised."""
    out = _bytes(1, header(camera, capture_ts_us, trace_id)) + _uint(2, seq)
    out += _uint(3, width) + _uint(4, height) + _bytes(5, jpeg)
    score = sum(m[2] * m[3] * m[4] for m in motion)
    out += _float(6, score)
    for x, y, w, h, fill in motion:
        out += _bytes(7, _bytes(1, box(x, y, w, h)) + _float(2, fill))
    return out


def jpeg_size(data):
    """(width, height) from a baseline or progressive JPEG's SOF marker."""
    i = 2
    while i < len(data):
        if data[i] != 0xFF:
            raise ValueError("not a JPEG")
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    raise ValueError("no SOF marker")


def alert(camera, alert_id, label="person", confidence=0.9, key=None, window_s=60,
          person_id="", display_name="", snapshot_url="", clip_url="", profile=None, zones=(),
          incident_id="", escalation="", snapshot_ref=""):
    """An Alert as dedupe would publish it on <prefix>.alerts.<camera>;
    profile: {key: value}; empty fields (window_s 0) left out."""
    out = (_bytes(1, header(camera)) + _bytes(2, alert_id)
           + _bytes(3, key or f"vigil:dd:{camera}:label:{label}") + _bytes(4, label)
           + _float(5, confidence))
    if window_s:
        out += _uint(11, window_s)
    for field, value in ((7, person_id), (8, display_name), (9, snapshot_url), (10, clip_url),
                         (17, incident_id), (18, escalation), (20, snapshot_ref)):
        if value:
            out += _bytes(field, value)
    for k, v in (profile or {}).items():
        out += _bytes(14, _bytes(1, k) + _bytes(2, v))
    for z in zones:
        out += _bytes(16, z)
    return out


def label(name, confidence):
    return _bytes(1, name) + _float(2, confidence)


def detection(camera, labels, seq=1, capture_ts_us=None, trace_id=None, faces=0,
              snapshot_ref=None):
    """labels: [(name, confidence), ...]; faces: face crops dispatch published
    for the frame (their FaceMatches carry the same trace_id)."""
    out = _bytes(1, header(camera, capture_ts_us, trace_id)) + _uint(2, seq) + _bytes(3, "test")
    for name, conf in labels:
        out += _bytes(4, label(name, conf))
    if snapshot_ref:
        out += _bytes(14, snapshot_ref)
    if faces:
        out += _uint(13, faces)
    return out


def face_match(camera, trace_id, matched, person_id="", display_name="", similarity=0.0,
               profile=None, face_id="", index=0, seq=1, snapshot_ref="", matcher="test",
               face_box=(0.4, 0.2, 0.1, 0.15), capture_ts_us=None):
    """A FaceMatch as facematch publishes it on <prefix>.identities.<camera>;
    profile: {key: value}."""
    out = _bytes(1, header(camera, capture_ts_us, trace_id)) + _uint(2, seq) + _uint(3, index)
    out += _uint(4, 1 if matched else 0)
    if face_id:
        out += _bytes(5, face_id)
    if person_id:
        out += _bytes(6, person_id)
    if display_name:
        out += _bytes(7, display_name)
    out += _float(8, similarity)
    for k, v in (profile or {}).items():
        out += _bytes(9, _bytes(1, k) + _bytes(2, v))
    out += _bytes(10, matcher)
    if face_box:
        out += _bytes(11, box(*face_box))
    if snapshot_ref:
        out += _bytes(13, snapshot_ref)
    return out


# CameraStatus.State
CONNECTING, ONLINE, OFFLINE, RECONNECTING = 1, 2, 3, 4


def camera_status(camera, state, frames_read, capture_ts_us=None):
    return (_bytes(1, header(camera, capture_ts_us)) + _uint(2, state) +
            _bytes(3, "test://" + camera) + _uint(5, frames_read) + _uint(6, frames_read))
