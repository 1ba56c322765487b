#!/usr/bin/env python3
"""fake_aws.py - a local fake of the AWS APIs vigil talks to, for tests.

Python 3 standard library only.  One HTTP server on 127.0.0.1 serves:

  Rekognition (JSON 1.1), SNS and STS (query protocol), Kinesis Video Streams
  and the AWS IoT data plane (REST-JSON), the container credentials endpoint,
  EC2 IMDSv2, and an unsigned control API under /_fake/.

Every request to an AWS API is checked the way AWS checks it: the SigV4
signature is recomputed from the raw request (see verify_request()).

Run:
  python3 tests/fakes/fake_aws.py --port 0 --port-file /tmp/aws.port

See README.md in this folder for the endpoints and the control API.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import collections
import datetime as dt
import fnmatch
import hashlib
import hmac
import json
import os
import re
import secrets
import string
import sys
import threading
import time
import traceback
import uuid
from urllib.parse import parse_qsl, unquote, unquote_to_bytes
from xml.sax.saxutils import escape as _xml_escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeserver  # noqa: E402

# ---------------------------------------------------------------------------
# SigV4 verification (pure functions; the clock is a parameter)
# ---------------------------------------------------------------------------

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
AMZ_DATE_FMT = "%Y%m%dT%H%M%SZ"

SIGNATURE_MISMATCH_MSG = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details.")
INVALID_TOKEN_MSG = "The security token included in the request is invalid."
EXPIRED_TOKEN_MSG = "The security token included in the request is expired"

_UNRESERVED = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def uri_encode(value, keep_slash: bool = False) -> str:
    """SigV4 UriEncode(): every byte but A-Z a-z 0-9 - . _ ~ becomes %XX
    (upper-case hex); '/' is kept only when keep_slash (paths)."""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    out = []
    for b in data:
        if b in _UNRESERVED or (keep_slash and b == 0x2F):
            out.append(chr(b))
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def normalize_path(path: str) -> str:
    """RFC 3986 dot-segment removal plus collapsing of empty segments, as the
    SigV4 rules ask for every service but S3 ("Normalize URI paths according
    to RFC 3986. Remove redundant and relative path components.").  Works on
    the path as received: %2E is not a dot, %2F is not a separator."""
    if not path:
        return "/"
    segments: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if segments:
                segments.pop()
            continue
        segments.append(seg)
    out = "/" + "/".join(segments)
    trailing = path.endswith("/") or path.endswith("/.") or path.endswith("/..")
    if segments and trailing:
        out += "/"
    return out


def canonical_uri(raw_path: str, service: str) -> str:
    """The CanonicalURI line.

    AWS: "Each path segment must be URI-encoded twice (except for Amazon S3
    which only gets URI-encoded once)."  A client puts the path on the wire
    URI-encoded once, so for every service but S3 the canonical URI is the
    received path, normalised, URI-encoded once more ('%' -> '%25', '/'
    kept).  For S3 it is the path URI-encoded once: the received path is
    decoded and encoded with UriEncode() (identical to the wire path when the
    client encoded it the SigV4 way), without normalisation."""
    path = raw_path or "/"
    if service == "s3":
        return uri_encode(unquote_to_bytes(path), keep_slash=True)
    return uri_encode(normalize_path(path), keep_slash=True)


def parse_query_pairs(raw_query: str) -> list[tuple[bytes, bytes]]:
    """Query string as received -> decoded (name, value) byte pairs.  '+' is
    kept as a literal '+' (SigV4 canonicalisation does not treat it as a
    space)."""
    pairs = []
    for part in (raw_query or "").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote_to_bytes(name), unquote_to_bytes(value)))
    return pairs


def canonical_query(raw_query: str, drop: tuple = ()) -> str:
    """CanonicalQueryString: each name and value decoded then UriEncode()d,
    sorted by encoded name then encoded value, joined with '&'.  Names in
    drop (e.g. X-Amz-Signature of a pre-signed URL) are left out."""
    items = []
    for name, value in parse_query_pairs(raw_query):
        if name.decode("utf-8", "replace") in drop:
            continue
        items.append((uri_encode(name), uri_encode(value)))
    items.sort()
    return "&".join(f"{n}={v}" for n, v in items)


_WS = re.compile(r"\s+")


def canonical_header_value(value: str) -> str:
    """Trim(), and sequential whitespace collapsed to one space."""
    return _WS.sub(" ", value.strip())


def header_get(headers, name: str):
    """Value of a header (all occurrences joined with ','), or None."""
    name = name.lower()
    vals = [v for k, v in headers if k.strip().lower() == name]
    if not vals:
        return None
    return ",".join(vals)


def canonical_headers(headers, signed_names) -> tuple[str, list[str]]:
    """CanonicalHeaders block for the signed names ("name:value\\n" each,
    repeated headers joined with ',' in the order received) and the list of
    signed names the request does not carry."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.strip().lower(), []).append(canonical_header_value(value))
    lines, missing = [], []
    for name in signed_names:
        if name not in values:
            missing.append(name)
        lines.append(f"{name}:{','.join(values.get(name, []))}\n")
    return "".join(lines), missing


def _signed_list(signed_headers) -> list[str]:
    if isinstance(signed_headers, str):
        signed_headers = signed_headers.split(";")
    return sorted({h.strip().lower() for h in signed_headers if h.strip()})


def canonical_request(method: str, raw_path: str, raw_query: str, headers, signed_headers,
                      payload_hash: str, service: str, drop_query: tuple = ()) -> str:
    """The SigV4 canonical request of a request as received.

    headers: (name, value) pairs as received; signed_headers: list or
    "a;b;c"; payload_hash: hex SHA-256 of the body (or the value of
    x-amz-content-sha256 / UNSIGNED-PAYLOAD)."""
    names = _signed_list(signed_headers)
    block, _ = canonical_headers(headers, names)
    return "\n".join([
        method.upper(),
        canonical_uri(raw_path, service),
        canonical_query(raw_query, drop_query),
        block,
        ";".join(names),
        payload_hash,
    ])


def credential_scope(amz_date: str, region: str, service: str) -> str:
    return f"{amz_date[:8]}/{region}/{service}/aws4_request"


def string_to_sign(amz_date: str, scope: str, creq: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope,
                      hashlib.sha256(creq.encode("utf-8")).hexdigest()])


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def expected_signature(secret: str, amz_date: str, region: str, service: str,
                       creq: str) -> str:
    """Hex signature AWS computes for a canonical request."""
    sts = string_to_sign(amz_date, credential_scope(amz_date, region, service), creq)
    return hmac.new(signing_key(secret, amz_date[:8], region, service),
                    sts.encode("utf-8"), hashlib.sha256).hexdigest()


class Credential:
    """One access key the fake accepts."""

    def __init__(self, access_key, secret, token=None, expiration=None, *, arn="",
                 user_id="", account="", source="static", role_name="", session_name=""):
        self.access_key = access_key
        self.secret = secret
        self.token = token
        self.expiration = expiration        # epoch seconds, None = never
        self.arn = arn
        self.user_id = user_id
        self.account = account
        self.source = source
        self.role_name = role_name
        self.session_name = session_name

    def public(self) -> dict:
        return {"AccessKeyId": self.access_key, "Source": self.source, "Arn": self.arn,
                "Expiration": iso8601(self.expiration) if self.expiration else None,
                "Temporary": self.token is not None}


class AuthFailure(Exception):
    """kind: missing | incomplete | unknown_key | expired_token | signature."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class VerifyResult:
    def __init__(self):
        self.ok = False
        self.kind = None
        self.message = None
        self.credential: Credential | None = None
        self.access_key = None
        self.presigned = False
        self.canonical_request = None
        self.string_to_sign = None

    def as_dict(self) -> dict:
        return {"ok": self.ok, "kind": self.kind, "message": self.message,
                "access_key": self.access_key, "presigned": self.presigned,
                "canonical_request": self.canonical_request,
                "string_to_sign": self.string_to_sign}


def parse_authorization(value: str) -> dict:
    """'AWS4-HMAC-SHA256 Credential=AK/date/region/service/aws4_request,
    SignedHeaders=a;b, Signature=hex' -> dict; AuthFailure('incomplete')."""
    value = value.strip()
    algo, _, rest = value.partition(" ")
    if algo != ALGORITHM:
        raise AuthFailure("incomplete", f"Unsupported AWS 'algorithm': '{algo}'. "
                                        f"Authorization={value}")
    parts = {}
    for item in rest.split(","):
        k, sep, v = item.strip().partition("=")
        if sep:
            parts[k.strip()] = v.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not parts.get(k)]
    if missing:
        raise AuthFailure("incomplete", " ".join(
            f"Authorization header requires '{k}' parameter." for k in missing)
            + f" Authorization={value}")
    return _split_credential(parts["Credential"]) | {
        "signed_headers": parts["SignedHeaders"], "signature": parts["Signature"]}


def _split_credential(cred: str) -> dict:
    fields = cred.split("/")
    if len(fields) != 5 or fields[4] != "aws4_request" or not fields[0]:
        raise AuthFailure("incomplete",
                          "Credential must have exactly 5 slash-delimited elements, e.g. "
                          f"keyid/date/region/service/term, got '{cred}'")
    return {"access_key": fields[0], "date": fields[1], "region": fields[2],
            "service": fields[3]}


def parse_amz_date(value: str) -> float:
    try:
        t = dt.datetime.strptime(value, AMZ_DATE_FMT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise AuthFailure("incomplete", "X-Amz-Date must be in the ISO8601 Long Format "
                                        "\"yyyyMMdd'T'HHmmss'Z'\"") from None
    return t.timestamp()


def amz_date(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc).strftime(AMZ_DATE_FMT)


def iso8601(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_skew(date_s: str, t: float, now: float, max_skew: float):
    minutes = f"{max_skew / 60:g} min."
    if t < now - max_skew:
        raise AuthFailure("signature", f"Signature expired: {date_s} is now earlier than "
                                       f"{amz_date(now - max_skew)} ({amz_date(now)} - {minutes})")
    if t > now + max_skew:
        raise AuthFailure("signature", f"Signature not yet current: {date_s} is still later than "
                                       f"{amz_date(now + max_skew)} ({amz_date(now)} + {minutes})")


def _check_credential(cred: Credential | None, token: str | None, now: float):
    if cred is None:
        raise AuthFailure("unknown_key", INVALID_TOKEN_MSG)
    if cred.token is not None:
        if token is None or not hmac.compare_digest(token, cred.token):
            raise AuthFailure("unknown_key", INVALID_TOKEN_MSG)
        if cred.expiration is not None and now >= cred.expiration:
            raise AuthFailure("expired_token", EXPIRED_TOKEN_MSG)
    elif token is not None:
        raise AuthFailure("unknown_key", INVALID_TOKEN_MSG)


def _check_scope(scope: dict, date_s: str, region: str, service: str):
    if scope["date"] != date_s[:8]:
        raise AuthFailure("signature",
                          "Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                          f"of date from HTTP: '{scope['date']}' != '{date_s[:8]}', from '{date_s}'.")
    if region is not None and scope["region"] != region:
        raise AuthFailure("signature", "Credential should be scoped to a valid region, "
                                       f"not '{scope['region']}'. ")
    if service is not None and scope["service"] != service:
        raise AuthFailure("signature",
                          f"Credential should be scoped to correct service: '{service}'. ")


def verify_request(method: str, raw_path: str, raw_query: str, headers, body: bytes,
                   lookup, now: float, *, region: str | None, service: str | None,
                   max_skew: float = 300.0) -> VerifyResult:
    """Check a SigV4-signed request the way AWS does.

    method, raw_path, raw_query: as received (path and query still
    URI-encoded, not normalised); headers: (name, value) pairs as received;
    body: raw bytes; lookup(access_key) -> Credential | None; now: epoch
    seconds (the clock is injected so tests can move it); region/service:
    what the endpoint expects in the credential scope (None: take the
    scope's; used by the self-check with AWS's examples).

    Both the Authorization header and pre-signed query parameters
    (X-Amz-Algorithm=...) are understood.  Returns a VerifyResult; on
    rejection .kind is one of missing, incomplete, unknown_key,
    expired_token, signature and .message is AWS's wording."""
    res = VerifyResult()
    try:
        auth = header_get(headers, "authorization")
        if auth is None:
            names = {n.decode("utf-8", "replace") for n, _ in parse_query_pairs(raw_query)}
            if "X-Amz-Algorithm" in names:
                res.presigned = True
                _verify_presigned(res, method, raw_path, raw_query, headers, body, lookup, now,
                                  region, service, max_skew)
                return res
            raise AuthFailure("missing", "Missing Authentication Token")
        p = parse_authorization(auth)
        res.access_key = p["access_key"]
        signed = _signed_list(p["signed_headers"])
        cred = lookup(p["access_key"])
        token = header_get(headers, "x-amz-security-token")
        _check_credential(cred, token, now)
        res.credential = cred
        if "host" not in signed:
            raise AuthFailure("signature", "'Host' or ':authority' must be a 'SignedHeader' "
                                           "in the AWS Authorization.")
        date_s = header_get(headers, "x-amz-date")
        if date_s is None:
            raise AuthFailure("incomplete", "Authorization header requires existence of either a "
                                            f"'X-Amz-Date' or a 'Date' header. Authorization={auth}")
        date_s = date_s.strip()
        if "x-amz-date" not in signed:
            raise AuthFailure("signature", "'X-Amz-Date' must be a 'SignedHeader' in the AWS "
                                           "Authorization.")
        if token is not None and "x-amz-security-token" not in signed:
            raise AuthFailure("signature", "'X-Amz-Security-Token' must be a 'SignedHeader' in "
                                           "the AWS Authorization.")
        t = parse_amz_date(date_s)
        _check_scope(p, date_s, region, service)
        _check_skew(date_s, t, now, max_skew)
        body_hash = hashlib.sha256(body or b"").hexdigest()
        payload_hash = header_get(headers, "x-amz-content-sha256")
        if payload_hash is None:
            payload_hash = body_hash
        payload_hash = payload_hash.strip()
        creq = canonical_request(method, raw_path, raw_query, headers, signed, payload_hash,
                                 p["service"])
        res.canonical_request = creq
        res.string_to_sign = string_to_sign(date_s, credential_scope(date_s, p["region"],
                                                                     p["service"]), creq)
        _, absent = canonical_headers(headers, signed)
        want = expected_signature(cred.secret, date_s, p["region"], p["service"], creq)
        if absent or not hmac.compare_digest(want, p["signature"]):
            raise AuthFailure("signature", SIGNATURE_MISMATCH_MSG)
        if re.fullmatch(r"[0-9a-fA-F]{64}", payload_hash) and payload_hash.lower() != body_hash:
            # Signed, but the declared payload hash is not the body's.
            raise AuthFailure("signature", SIGNATURE_MISMATCH_MSG)
        res.ok = True
    except AuthFailure as e:
        res.ok, res.kind, res.message = False, e.kind, e.message
    return res


def _verify_presigned(res, method, raw_path, raw_query, headers, body, lookup, now, region,
                      service, max_skew):
    q = {}
    for n, v in parse_query_pairs(raw_query):
        q.setdefault(n.decode("utf-8", "replace"), v.decode("utf-8", "replace"))
    if q.get("X-Amz-Algorithm") != ALGORITHM:
        raise AuthFailure("incomplete", f"Unsupported AWS 'algorithm': "
                                        f"'{q.get('X-Amz-Algorithm')}'")
    need = [k for k in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders",
                        "X-Amz-Signature") if not q.get(k)]
    if need:
        raise AuthFailure("incomplete", "AWS query-string parameters must include "
                          + ", ".join(f"'{k}'" for k in need)
                          + ". Re-examine the query-string parameters.")
    scope = _split_credential(q["X-Amz-Credential"])
    res.access_key = scope["access_key"]
    cred = lookup(scope["access_key"])
    token = q.get("X-Amz-Security-Token")
    if token is None:
        token = header_get(headers, "x-amz-security-token")
    _check_credential(cred, token, now)
    res.credential = cred
    signed = _signed_list(q["X-Amz-SignedHeaders"])
    if "host" not in signed:
        raise AuthFailure("signature", "'Host' or ':authority' must be a 'SignedHeader' in the "
                                       "AWS Authorization.")
    date_s = q["X-Amz-Date"]
    t = parse_amz_date(date_s)
    _check_scope(scope, date_s, region, service)
    if t > now + max_skew:
        _check_skew(date_s, t, now, max_skew)
    expires = q.get("X-Amz-Expires")
    if expires is not None:
        if not expires.isdigit() or not 1 <= int(expires) <= 604800:
            raise AuthFailure("incomplete", "X-Amz-Expires must be between 1 and 604800 seconds")
        if now > t + int(expires):
            raise AuthFailure("signature", "Signature expired: request has expired")
    elif t < now - max_skew:
        _check_skew(date_s, t, now, max_skew)
    declared = header_get(headers, "x-amz-content-sha256") or q.get("X-Amz-Content-Sha256")
    if declared:
        candidates = [declared.strip()]
    elif scope["service"] == "s3":
        candidates = [UNSIGNED_PAYLOAD]
    else:
        candidates = [hashlib.sha256(body or b"").hexdigest(), UNSIGNED_PAYLOAD]
    for payload_hash in candidates:
        creq = canonical_request(method, raw_path, raw_query, headers, signed, payload_hash,
                                 scope["service"], drop_query=("X-Amz-Signature",))
        res.canonical_request = creq
        res.string_to_sign = string_to_sign(date_s, credential_scope(
            date_s, scope["region"], scope["service"]), creq)
        want = expected_signature(cred.secret, date_s, scope["region"], scope["service"], creq)
        if hmac.compare_digest(want, q["X-Amz-Signature"]):
            res.ok = True
            return
    raise AuthFailure("signature", SIGNATURE_MISMATCH_MSG)


# ---------------------------------------------------------------------------
# Service constants
# ---------------------------------------------------------------------------

PROTOCOL = {"rekognition": "json", "sns": "query", "sts": "query",
            "kinesisvideo": "rest-json", "iotdata": "rest-json"}
XMLNS = {"sns": "http://sns.amazonaws.com/doc/2010-03-31/",
         "sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
AUTH_CODES = {
    "json": {"missing": "MissingAuthenticationTokenException",
             "incomplete": "IncompleteSignatureException",
             "unknown_key": "UnrecognizedClientException",
             "expired_token": "ExpiredTokenException",
             "signature": "InvalidSignatureException"},
    "query": {"missing": "MissingAuthenticationToken",
              "incomplete": "IncompleteSignature",
              "unknown_key": "InvalidClientTokenId",
              "expired_token": "ExpiredToken",
              "signature": "SignatureDoesNotMatch"},
}
AUTH_CODES["rest-json"] = AUTH_CODES["json"]

# Default error codes for injected faults, by service and status.
FAULT_CODES = {
    "rekognition": {400: "InvalidParameterException", 429: "ThrottlingException",
                    500: "InternalServerError", 503: "ServiceUnavailableException"},
    "sns": {400: "InvalidParameter", 429: "Throttled", 500: "InternalError",
            503: "ServiceUnavailable"},
    "sts": {400: "ValidationError", 429: "Throttling", 500: "InternalFailure",
            503: "ServiceUnavailable"},
    "kinesisvideo": {400: "InvalidArgumentException", 429: "ClientLimitExceededException",
                     500: "InternalFailure", 503: "ServiceUnavailable"},
    "iotdata": {400: "InvalidRequestException", 429: "ThrottlingException",
                500: "InternalFailureException", 503: "ServiceUnavailableException"},
}
METADATA_SERVICES = ("imds", "container")

FACE_MODEL_VERSION = "6.0"
LABEL_MODEL_VERSION = "3.0"
MAX_IMAGE_BYTES = 5 * 1024 * 1024
SMS_MAX_CHARS = 1600            # characters of one SMS publish (SNS splits it into segments)
JPEG_MAGIC = b"\xff\xd8"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FACE_BOX = {"Width": 0.25, "Height": 0.4, "Left": 0.375, "Top": 0.2}
BOX_KEYS = ("Width", "Height", "Left", "Top")
FACE_CONFIDENCE = 99.99
DEFAULT_LABELS = [
    {"Name": "Person", "Confidence": 98.5,
     "Instances": [{"BoundingBox": {"Width": 0.3, "Height": 0.8, "Left": 0.35, "Top": 0.1},
                    "Confidence": 98.5}],
     "Parents": [], "Aliases": [{"Name": "Human"}], "Categories": []},
    {"Name": "Package", "Confidence": 40.0, "Instances": [], "Parents": [], "Aliases": [],
     "Categories": []},
]
LABEL_FEATURES = ("GENERAL_LABELS", "IMAGE_PROPERTIES")
LABEL_FILTERS = ("LabelInclusionFilters", "LabelExclusionFilters",
                 "LabelCategoryInclusionFilters", "LabelCategoryExclusionFilters")
# The five landmarks DetectFaces returns with the DEFAULT attributes, as
# (type, x, y) fractions of the face box.
DEFAULT_LANDMARKS = (("eyeLeft", 0.3, 0.35), ("eyeRight", 0.7, 0.35), ("nose", 0.5, 0.55),
                     ("mouthLeft", 0.35, 0.75), ("mouthRight", 0.65, 0.75))
HLS_API_NAMES = {"PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
                 "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP",
                 "GET_IMAGES"}
INSTANCE_ID = "i-0123456789abcdef0"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _rand(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _id_from(prefix: str, seed: str) -> str:
    digest = base64.b32encode(hashlib.sha256(seed.encode()).digest()).decode()
    return prefix + digest[:17]


def _json_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _x(value) -> str:
    return _xml_escape(str(value), {'"': "&quot;"})


def _number_in(v, lo, hi) -> bool:
    return _json_number(v) and lo <= v <= hi


def _check_box(box, where: str) -> dict:
    """Ratios of the image size. AWS documents that a box reaching past the
    image edge can have Left/Top below 0 or Left+Width above 1, so only
    Width and Height are bounded (0..1)."""
    if (not isinstance(box, dict) or not all(_json_number(box.get(k)) for k in BOX_KEYS)
            or not all(_number_in(box[k], 0, 1) for k in ("Width", "Height"))):
        raise ValueError(f"{where}: BoundingBox needs numbers Width, Height (0..1), Left, Top")
    return {k: box[k] for k in BOX_KEYS}


def _names(v, where: str) -> list:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, dict) and isinstance(x.get("Name"), str)
                                          for x in v):
        raise ValueError(f"{where} must be a list of {{\"Name\": ...}}")
    return [{"Name": x["Name"]} for x in v]


def normalise_label(lb, i: int = 0) -> dict:
    """A scripted Label in DetectLabels' documented shape: Name, Confidence,
    Instances [{BoundingBox, Confidence}], Parents, Aliases, Categories
    ([{Name}] each, [] when not given). ValueError names what is wrong."""
    where = f"labels[{i}]"
    if not isinstance(lb, dict) or not isinstance(lb.get("Name"), str) or not lb["Name"]:
        raise ValueError(f"{where}: a Label needs a Name")
    if not _number_in(lb.get("Confidence"), 0, 100):
        raise ValueError(f"{where}: Confidence must be a number in 0..100")
    inst = lb.get("Instances") or []
    if not isinstance(inst, list):
        raise ValueError(f"{where}: Instances must be a list")
    out = {"Name": lb["Name"], "Confidence": lb["Confidence"], "Instances": []}
    for k, ins in enumerate(inst):
        if not isinstance(ins, dict):
            raise ValueError(f"{where}.Instances[{k}] must be an object")
        conf = ins.get("Confidence", lb["Confidence"])
        if not _number_in(conf, 0, 100):
            raise ValueError(f"{where}.Instances[{k}]: Confidence must be in 0..100")
        item = {"BoundingBox": _check_box(ins.get("BoundingBox"), f"{where}.Instances[{k}]"),
                "Confidence": conf}
        if "DominantColors" in ins:
            item["DominantColors"] = ins["DominantColors"]
        out["Instances"].append(item)
    for key in ("Parents", "Aliases", "Categories"):
        out[key] = _names(lb.get(key), f"{where}.{key}")
    return out


def face_landmarks(box: dict) -> list:
    return [{"Type": t, "X": round(box["Left"] + x * box["Width"], 6),
             "Y": round(box["Top"] + y * box["Height"], 6)} for t, x, y in DEFAULT_LANDMARKS]


def normalise_face(fd, i: int = 0) -> dict:
    """A scripted FaceDetail: BoundingBox required; Confidence (99.99),
    Landmarks (the five DEFAULT ones, from the box), Pose and Quality filled
    in when not given."""
    where = f"faces[{i}]"
    if not isinstance(fd, dict):
        raise ValueError(f"{where} must be an object")
    box = _check_box(fd.get("BoundingBox"), where)
    conf = fd.get("Confidence", FACE_CONFIDENCE)
    if not _number_in(conf, 0, 100):
        raise ValueError(f"{where}: Confidence must be in 0..100")
    out = dict(fd)
    out.update({"BoundingBox": box, "Confidence": conf})
    out.setdefault("Landmarks", face_landmarks(box))
    out.setdefault("Pose", {"Roll": 0.5, "Yaw": -1.5, "Pitch": 2.0})
    out.setdefault("Quality", {"Brightness": 80.0, "Sharpness": 90.0})
    return out


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------

class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.port = 0
        self.reset()

    def reset(self):
        a = self.args
        with self.lock:
            self.config = {
                "region": a.region, "account": a.account,
                "max_skew": float(a.max_skew), "clock_offset": 0.0,
                "credential_ttl": a.credential_ttl, "sts_min_duration": a.sts_min_duration,
                "strict_streams": bool(a.strict_streams),
                "web_identity_token": a.web_identity_token,
                "container_token": a.container_token, "role_name": a.role_name,
                # ListFaces pages hold at most this many faces whatever MaxResults
                # asks (AWS may return fewer with a NextToken); None: MaxResults.
                "list_faces_page_max": None,
            }
            self.seq = 0
            self.requests = collections.deque(maxlen=2000)
            self.faults: list[dict] = []
            self.collections: dict[str, dict] = {}
            self.topics: set[str] = set()
            self.sns_messages: list[dict] = []
            self.streams: set[str] = set()
            self.kvs_last: dict[str, dict] = {}
            self.iot_messages: list[dict] = []
            self.labels = json.loads(json.dumps(DEFAULT_LABELS))
            self.faces = None           # None: one face (FACE_BOX) per image
            self.rek_next: list[dict] = []  # scripted DetectLabels/DetectFaces answers
            self.imds_tokens: dict[str, float] = {}
            self.temp_creds: dict[str, Credential] = {}
            self.static = Credential(
                a.access_key, a.secret_key, None, None,
                arn=f"arn:aws:iam::{a.account}:user/test",
                user_id=_id_from("AIDA", a.access_key), account=a.account, source="static")

    def now(self) -> float:
        return time.time() + float(self.config["clock_offset"])

    def lookup(self, access_key: str):
        with self.lock:
            if access_key == self.static.access_key:
                return self.static
            return self.temp_creds.get(access_key)

    def issue(self, source: str, role_name: str, session_name: str, duration: float,
              account: str | None = None) -> Credential:
        account = account or self.config["account"]
        ttl = self.config.get("credential_ttl")
        if ttl is not None:
            duration = float(ttl)
        akid = "ASIA" + _rand(string.ascii_uppercase + string.digits, 16)
        secret = _rand(string.ascii_letters + string.digits + "+/", 40)
        token = "FQoGZXIvYXdzE" + base64.b64encode(secrets.token_bytes(180)).decode()
        role_id = _id_from("AROA", f"{account}:{role_name}")
        cred = Credential(
            akid, secret, token, self.now() + duration,
            arn=f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}",
            user_id=f"{role_id}:{session_name}", account=account, source=source,
            role_name=role_name, session_name=session_name)
        with self.lock:
            self.temp_creds[akid] = cred
        return cred

    def record(self, rec: dict):
        with self.lock:
            self.seq += 1
            rec["seq"] = self.seq
            self.requests.append(rec)

    def take_script(self, op: str):
        """The next scripted answer for DetectLabels / DetectFaces, or None."""
        with self.lock:
            for s in self.rek_next:
                if s["api"] != op:
                    continue
                if s["count"] is not None:
                    s["count"] -= 1
                    if s["count"] <= 0:
                        self.rek_next.remove(s)
                s["hits"] = s.get("hits", 0) + 1
                return json.loads(json.dumps(s))
        return None

    def take_fault(self, api: str):
        with self.lock:
            for f in list(self.faults):
                if not fault_matches(f["api"], api):
                    continue
                if f["count"] is not None:
                    f["count"] -= 1
                    if f["count"] <= 0:
                        self.faults.remove(f)
                f["hits"] = f.get("hits", 0) + 1
                return dict(f)
        return None


def fault_matches(pattern: str, api: str) -> bool:
    """fnmatch over "<service>.<Operation>"; the metadata fakes (imds.*,
    container.*) are matched only by patterns naming that service."""
    svc = api.split(".", 1)[0]
    if svc in METADATA_SERVICES and pattern.split(".", 1)[0] != svc:
        return False
    return fnmatch.fnmatchcase(api, pattern)


# ---------------------------------------------------------------------------
# HTTP handler
# ---------------------------------------------------------------------------

class BodyError(Exception):
    pass


class Handler(fakeserver.Handler):
    server_version = "FakeAWS/1.0"
    max_body = 64 * 1024 * 1024

    # --- plumbing -------------------------------------------------------

    do_PATCH = fakeserver.Handler.do_GET   # PATCH too: every method goes to _handle()

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BodyError("bad chunk size") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > self.max_body:
                    raise BodyError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        n = self.headers.get("Content-Length")
        if not n:
            return b""
        try:
            n = int(n)
        except ValueError:
            raise BodyError("bad Content-Length") from None
        if n < 0 or n > self.max_body:
            raise BodyError("body too large")
        return self.rfile.read(n)

    def _send(self, status: int, body: bytes | str, ctype: str, headers: dict | None = None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self._status = status
        # Log the request, complete, before answering: a client that has its
        # answer finds its request in GET /_fake/requests.
        self._rec["status"] = status
        self._record()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", self._request_id)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, obj, ctype="application/json", headers=None):
        self._send(status, json.dumps(obj, separators=(",", ":")), ctype, headers)

    def _send_xml(self, status: int, xml: str):
        self._send(status, xml, "text/xml")

    def _record(self):
        """Put this request in the request log (GET /_fake/requests), once;
        control requests are never logged."""
        if not self._recorded:
            self._recorded = True
            self.state.record(self._rec)

    def _log_line(self):
        r = self._rec
        signed = {True: "signed=ok", False: "signed=FAIL", None: "unsigned"}[r.get("signed_ok")]
        extra = ""
        if r.get("auth_error"):
            extra = f" auth={r['auth_error']}"
        elif r.get("error_code"):
            extra = f" error={r['error_code']}"
        path = r["path"] + ("?" + r["query"] if r["query"] else "")
        if len(path) > 160:
            path = path[:157] + "..."
        sys.stderr.write(f"fake_aws {iso8601(time.time())} {r['method']} {path} "
                         f"api={r.get('api') or '-'} status={self._status} {signed}{extra}\n")
        sys.stderr.flush()

    def _handle(self):
        self._status = None
        self._request_id = str(uuid.uuid4())
        raw = self.path
        m = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*", raw)
        if m:
            raw = raw[m.end():] or "/"
        path, _, query = raw.partition("?")
        query = query.split("#", 1)[0]
        self._rec = {"time": time.time(), "api": None, "service": None, "method": self.command,
                     "path": path, "query": query,
                     "headers": {k: v for k, v in self._header_pairs()},
                     "body_sha256": None, "body_len": 0, "signed_ok": None, "auth_error": None,
                     "auth_message": None, "access_key": None, "error_code": None,
                     "request_id": self._request_id}
        control = path.startswith("/_fake/") or path == "/_fake"
        self._recorded = control
        try:
            try:
                body = self._read_body()
            except BodyError as e:
                self.close_connection = True
                self._send_json(413 if "large" in str(e) else 400, {"message": str(e)})
                return
            self._rec["body_sha256"] = hashlib.sha256(body).hexdigest()
            self._rec["body_len"] = len(body)
            if len(body) <= 256 * 1024:
                self._rec["_body"] = body
            if control:
                self._control(path, query, body)
            elif path.startswith("/latest/") or path == "/latest":
                self._imds(path, body)
            elif path.startswith("/container-credentials"):
                self._container(path)
            else:
                self._aws(path, query, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:   # a bug in the fake: say so loudly, answer 500
            traceback.print_exc(file=sys.stderr)
            if self._status is None:
                self._send_json(500, {"message": "fake_aws internal error; see its stderr"})
        finally:
            if not self._recorded:      # no answer was sent (the client went away)
                self._rec["status"] = self._status
                self._record()
            self._log_line()

    def _header_pairs(self):
        return [(k, v) for k, v in self.headers.items()]

    # --- errors in each protocol -----------------------------------------

    def _error(self, service: str, status: int, code: str, message: str):
        self._rec["error_code"] = code
        proto = PROTOCOL.get(service, "rest-json")
        if proto == "json":
            self._send_json(status, {"__type": code, "Message": message},
                            "application/x-amz-json-1.1", {"x-amzn-ErrorType": code})
        elif proto == "query":
            kind = "Sender" if status < 500 else "Receiver"
            self._send_xml(status,
                           f'<ErrorResponse xmlns="{XMLNS[service]}"><Error><Type>{kind}</Type>'
                           f"<Code>{_x(code)}</Code><Message>{_x(message)}</Message></Error>"
                           f"<RequestId>{self._request_id}</RequestId></ErrorResponse>")
        else:
            self._send_json(status, {"message": message}, "application/json",
                            {"x-amzn-ErrorType": code})

    def _auth_error(self, service: str, kind: str, message: str):
        proto = PROTOCOL.get(service, "rest-json")
        code = AUTH_CODES[proto][kind]
        self._rec["auth_error"] = code
        self._error(service, 403, code, message)

    # --- AWS APIs ---------------------------------------------------------

    def _query_params(self, query: str, body: bytes) -> dict:
        params = dict(parse_qsl(query, keep_blank_values=True))
        ctype = (self.headers.get("Content-Type") or "").lower()
        if body and (self.command == "POST" or "x-www-form-urlencoded" in ctype):
            try:
                params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                pass
        return params

    def _classify(self, path, query, body, scope_service):
        """-> (service, operation, params) or None."""
        if path == "/getDataEndpoint":
            return "kinesisvideo", "GetDataEndpoint", None
        if path == "/getHLSStreamingSessionURL":
            return "kinesisvideo", "GetHLSStreamingSessionURL", None
        if path.startswith("/topics/"):
            return "iotdata", "Publish", None
        if path not in ("", "/"):
            return None
        target = self.headers.get("X-Amz-Target")
        params = self._query_params(query, body) if not target else {}
        action = params.get("Action")
        if scope_service in ("rekognition", "sns", "sts"):
            service = scope_service
        elif target:
            service = "rekognition"
        elif action in ("Publish", "CreateTopic", "ListTopics", "Subscribe"):
            service = "sns"
        elif action:
            service = "sts"
        else:
            return None
        if service == "rekognition":
            op = "Unknown"
            if target and target.startswith("RekognitionService."):
                op = target.split(".", 1)[1] or "Unknown"
            return service, op, None
        return service, action or "Unknown", params

    def _aws(self, path, query, body):
        scope_service = None
        auth = self.headers.get("Authorization") or ""
        m = re.search(r"Credential=([^,\s]+)", auth)
        if not m:
            m = re.search(r"(?:^|&)X-Amz-Credential=([^&]+)", query)
        if m:
            fields = unquote(m.group(1)).split("/")
            if len(fields) >= 4:
                scope_service = fields[3]
        cls = self._classify(path, query, body, scope_service)
        if cls is None:
            self._rec["error_code"] = "UnknownOperationException"
            self._send_json(404, {"message": f"fake_aws: no API at {self.command} {path}"},
                            "application/json", {"x-amzn-ErrorType": "UnknownOperationException"})
            return
        service, op, params = cls
        api = f"{service}.{op}"
        self._rec["api"], self._rec["service"] = api, service
        anonymous = service == "sts" and op == "AssumeRoleWithWebIdentity"
        st = self.state
        if not anonymous:
            res = verify_request(self.command, path, query, self._header_pairs(), body, st.lookup,
                                 st.now(), region=st.config["region"], service=service,
                                 max_skew=st.config["max_skew"])
            self._rec["signed_ok"] = res.ok
            self._rec["access_key"] = res.access_key
            if not res.ok:
                self._rec["auth_message"] = res.message
                self._rec["canonical_request"] = res.canonical_request
                self._rec["string_to_sign"] = res.string_to_sign
                self._auth_error(service, res.kind, res.message)
                return
            self._identity = res.credential
        else:
            self._identity = None
        if self._apply_fault(api, service):
            return
        handler = getattr(self, f"_{service}_{op}", None) if re.fullmatch(r"\w+", op) else None
        try:
            if handler is None:
                self._unknown_op(service, op)
                return
            if service == "rekognition" or service == "kinesisvideo":
                handler(self._json_body(service, body))
            elif service == "iotdata":
                handler(path, query, body)
            else:
                handler(params)
        except ApiError as e:
            self._error(service, e.status, e.code, e.message)

    def _apply_fault(self, api: str, service: str) -> bool:
        f = self.state.take_fault(api)
        if not f:
            return False
        if f.get("delay_ms"):
            time.sleep(f["delay_ms"] / 1000.0)
        status = f.get("status")
        if not status:
            return False
        code = f.get("code") or FAULT_CODES.get(service, {}).get(status) or "InternalFailure"
        message = f.get("message") or f"Injected fault ({code})"
        if service in METADATA_SERVICES:
            self._rec["error_code"] = code
            self._send(status, message, "text/plain")
        else:
            self._error(service, status, code, message)
        return True

    def _unknown_op(self, service, op):
        if PROTOCOL[service] == "query":
            raise ApiError("InvalidAction", f"Could not find operation {op} for version "
                           f"{'2010-03-31' if service == 'sns' else '2011-06-15'}", 400)
        raise ApiError("UnknownOperationException", f"Unknown operation {op}", 400)

    def _json_body(self, service, body: bytes) -> dict:
        try:
            obj = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise ApiError("SerializationException", "Request body is not valid JSON") from None
        if not isinstance(obj, dict):
            raise ApiError("SerializationException", "Request body must be a JSON object")
        return obj

    # --- Rekognition ------------------------------------------------------

    def _rek_ok(self, obj):
        self._send_json(200, obj, "application/x-amz-json-1.1")

    @staticmethod
    def _rek_param(msg):
        return ApiError("InvalidParameterException", msg)

    def _rek_collection(self, b, create=False):
        cid = b.get("CollectionId")
        if not isinstance(cid, str) or not re.fullmatch(r"[a-zA-Z0-9_.\-]{1,255}", cid):
            raise self._rek_param("Request has invalid parameters: CollectionId must match "
                                  "[a-zA-Z0-9_.\\-]+ (1-255 characters)")
        if create:
            return cid
        with self.state.lock:
            coll = self.state.collections.get(cid)
        if coll is None:
            raise ApiError("ResourceNotFoundException",
                           f"The collection id: {cid} does not exist")
        return coll

    def _rek_int(self, b, key, lo, hi, default):
        v = b.get(key, default)
        if v is None:
            return default
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise self._rek_param(f"Request has invalid parameters: {key} must be an integer "
                                  f"in [{lo}, {hi}]")
        return v

    def _rek_float(self, b, key, lo, hi, default):
        v = b.get(key, default)
        if not _json_number(v) or not lo <= v <= hi:
            raise self._rek_param(f"Request has invalid parameters: {key} must be a number "
                                  f"in [{lo}, {hi}]")
        return float(v)

    def _rek_image(self, b) -> bytes:
        img = b.get("Image")
        if not isinstance(img, dict):
            raise self._rek_param("Request has invalid parameters: Image is required")
        if "Bytes" not in img:
            if "S3Object" in img:
                raise self._rek_param("fake_aws supports Image.Bytes only, not Image.S3Object")
            raise self._rek_param("Request has invalid parameters: Image.Bytes is required")
        raw = img["Bytes"]
        if not isinstance(raw, str):
            raise self._rek_param("Request has invalid parameters: Image.Bytes must be a "
                                  "base64 string")
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise self._rek_param("Request has invalid parameters: Image.Bytes is not valid "
                                  "base64") from None
        if len(data) > MAX_IMAGE_BYTES:
            raise ApiError("ImageTooLargeException", "Image size is too large.")
        if not (data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC)):
            raise ApiError("InvalidImageFormatException", "Request has invalid image format")
        return data

    @staticmethod
    def _face_detail(attributes=None) -> dict:
        d = {"BoundingBox": dict(FACE_BOX), "Landmarks": face_landmarks(FACE_BOX),
             "Pose": {"Roll": 0.5, "Yaw": -1.5, "Pitch": 2.0},
             "Quality": {"Brightness": 80.0, "Sharpness": 90.0},
             "Confidence": FACE_CONFIDENCE}
        if attributes and "ALL" in attributes:
            d.update({"AgeRange": {"Low": 25, "High": 35},
                      "Smile": {"Value": False, "Confidence": 95.0},
                      "Eyeglasses": {"Value": False, "Confidence": 97.0},
                      "Sunglasses": {"Value": False, "Confidence": 99.0},
                      "EyesOpen": {"Value": True, "Confidence": 96.0},
                      "MouthOpen": {"Value": False, "Confidence": 94.0},
                      "Emotions": [{"Type": "CALM", "Confidence": 90.0}]})
        return d

    def _rek_attrs(self, b, key):
        allowed = {"DEFAULT", "ALL", "AGE_RANGE", "BEARD", "EMOTIONS", "EYE_DIRECTION",
                   "EYEGLASSES", "EYES_OPEN", "GENDER", "MOUTH_OPEN", "MUSTACHE",
                   "FACE_OCCLUDED", "SMILE", "SUNGLASSES"}
        v = b.get(key, ["DEFAULT"])
        if not isinstance(v, list) or any(a not in allowed for a in v):
            raise self._rek_param(f"Request has invalid parameters: {key} values must be in "
                                  f"{sorted(allowed)}")
        return v

    def _rek_quality(self, b):
        q = b.get("QualityFilter", "AUTO")
        if q not in ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH"):
            raise self._rek_param("Request has invalid parameters: QualityFilter must be one of "
                                  "NONE, AUTO, LOW, MEDIUM, HIGH")

    def _rekognition_CreateCollection(self, b):
        cid = self._rek_collection(b, create=True)
        st = self.state
        arn = f"aws:rekognition:{st.config['region']}:{st.config['account']}:collection/{cid}"
        with st.lock:
            if cid in st.collections:
                raise ApiError("ResourceAlreadyExistsException",
                               f"The collection id: {cid} already exists")
            st.collections[cid] = {"arn": arn, "created": st.now(),
                                   "faces": collections.OrderedDict()}
        self._rek_ok({"StatusCode": 200, "CollectionArn": arn,
                      "FaceModelVersion": FACE_MODEL_VERSION})

    def _rekognition_DeleteCollection(self, b):
        self._rek_collection(b)
        with self.state.lock:
            self.state.collections.pop(b["CollectionId"], None)
        self._rek_ok({"StatusCode": 200})

    def _rekognition_DescribeCollection(self, b):
        coll = self._rek_collection(b)
        self._rek_ok({"FaceCount": len(coll["faces"]), "UserCount": 0,
                      "FaceModelVersion": FACE_MODEL_VERSION, "CollectionARN": coll["arn"],
                      "CreationTimestamp": coll["created"]})

    def _rekognition_ListCollections(self, b):
        with self.state.lock:
            ids = list(self.state.collections)
        self._rek_ok({"CollectionIds": ids, "FaceModelVersions": [FACE_MODEL_VERSION] * len(ids)})

    def _rekognition_IndexFaces(self, b):
        coll = self._rek_collection(b)
        data = self._rek_image(b)
        ext = b.get("ExternalImageId")
        if ext is not None and (not isinstance(ext, str)
                                or not re.fullmatch(r"[a-zA-Z0-9_.\-:]{1,255}", ext)):
            raise self._rek_param("Request has invalid parameters: ExternalImageId must match "
                                  "[a-zA-Z0-9_.\\-:]+ (1-255 characters)")
        max_faces = self._rek_int(b, "MaxFaces", 1, 4096, 1)
        self._rek_quality(b)
        attrs = self._rek_attrs(b, "DetectionAttributes")
        sha = hashlib.sha256(data).hexdigest()
        records, unindexed = [], []
        # TWOFACES: a second, smaller face, indexed only when MaxFaces allows.
        if b"TWOFACES" in data and b"NOFACE" not in data and max_faces < 2:
            unindexed.append({"Reasons": ["EXCEEDS_MAX_FACES"],
                              "FaceDetail": dict(self._face_detail(attrs),
                                                 BoundingBox={"Width": 0.1, "Height": 0.15,
                                                              "Left": 0.05, "Top": 0.1})})
        if b"NOFACE" not in data:
            face = {"FaceId": str(uuid.uuid4()), "BoundingBox": dict(FACE_BOX),
                    "ImageId": str(uuid.uuid5(uuid.NAMESPACE_URL, "fake-aws-image:" + sha)),
                    "Confidence": FACE_CONFIDENCE, "IndexFacesModelVersion": FACE_MODEL_VERSION}
            if ext is not None:
                face["ExternalImageId"] = ext
            with self.state.lock:
                coll["faces"][face["FaceId"]] = dict(face, _sha256=sha)
            records.append({"Face": face, "FaceDetail": self._face_detail(attrs)})
        self._rek_ok({"FaceRecords": records, "FaceModelVersion": FACE_MODEL_VERSION,
                      "UnindexedFaces": unindexed})

    @staticmethod
    def _public_face(f):
        return {k: v for k, v in f.items() if not k.startswith("_")}

    def _rekognition_ListFaces(self, b):
        coll = self._rek_collection(b)
        limit = self._rek_int(b, "MaxResults", 0, 4096, 1000)
        with self.state.lock:
            page_max = self.state.config.get("list_faces_page_max")
        if page_max is not None and page_max > 0:
            limit = min(limit, page_max)
        token = b.get("NextToken")
        start = 0
        if token is not None:
            try:
                t = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
                if t["c"] != b["CollectionId"]:
                    raise ValueError
                start = int(t["o"])
            except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
                raise ApiError("InvalidPaginationTokenException",
                               "Invalid pagination token") from None
        with self.state.lock:
            faces = list(coll["faces"].values())
        wanted = b.get("FaceIds")
        if isinstance(wanted, list):
            faces = [f for f in faces if f["FaceId"] in wanted]
        page = faces[start:start + limit]
        out = {"Faces": [self._public_face(f) for f in page],
               "FaceModelVersion": FACE_MODEL_VERSION}
        if start + limit < len(faces):
            out["NextToken"] = base64.urlsafe_b64encode(json.dumps(
                {"c": b["CollectionId"], "o": start + limit}).encode()).decode()
        self._rek_ok(out)

    def _rekognition_DeleteFaces(self, b):
        coll = self._rek_collection(b)
        ids = b.get("FaceIds")
        if (not isinstance(ids, list) or not 1 <= len(ids) <= 4096
                or any(not isinstance(i, str) or not UUID_RE.match(i) for i in ids)):
            raise self._rek_param("Request has invalid parameters: FaceIds must be 1-4096 face "
                                  "ids (UUIDs)")
        deleted, failed = [], []
        with self.state.lock:
            for i in ids:
                if coll["faces"].pop(i, None) is not None:
                    deleted.append(i)
                else:
                    failed.append({"FaceId": i, "Reasons": ["FACE_NOT_FOUND"]})
        self._rek_ok({"DeletedFaces": deleted, "UnsuccessfulFaceDeletions": failed})

    def _rekognition_SearchFacesByImage(self, b):
        coll = self._rek_collection(b)
        data = self._rek_image(b)
        threshold = self._rek_float(b, "FaceMatchThreshold", 0, 100, 80.0)
        max_faces = self._rek_int(b, "MaxFaces", 1, 4096, 80)
        self._rek_quality(b)
        if b"NOFACE" in data:
            raise self._rek_param("There are no faces in the image. Should be at least 1.")
        sha = hashlib.sha256(data).hexdigest()
        matches = []
        if 99.0 >= threshold:
            with self.state.lock:
                for f in coll["faces"].values():
                    if f["_sha256"] == sha:
                        matches.append({"Similarity": 99.0, "Face": self._public_face(f)})
        self._rek_ok({"SearchedFaceBoundingBox": dict(FACE_BOX),
                      "SearchedFaceConfidence": FACE_CONFIDENCE,
                      "FaceMatches": matches[:max_faces], "FaceModelVersion": FACE_MODEL_VERSION})

    def _rek_features(self, b):
        v = b.get("Features", ["GENERAL_LABELS"])
        if (not isinstance(v, list) or not v or len(v) > len(LABEL_FEATURES)
                or any(f not in LABEL_FEATURES for f in v)):
            raise self._rek_param("Request has invalid parameters: Features values must be in "
                                  f"{list(LABEL_FEATURES)}")
        return v

    def _rek_label_filters(self, b) -> dict:
        settings = b.get("Settings")
        if settings is None:
            return {}
        general = settings.get("GeneralLabels") if isinstance(settings, dict) else None
        if not isinstance(settings, dict) or (general is not None
                                              and not isinstance(general, dict)):
            raise self._rek_param("Request has invalid parameters: Settings.GeneralLabels "
                                  "must be an object")
        out = {}
        for key, v in (general or {}).items():
            if (key not in LABEL_FILTERS or not isinstance(v, list) or len(v) > 100
                    or any(not isinstance(x, str) or not 1 <= len(x) <= 100 for x in v)):
                raise self._rek_param(f"Request has invalid parameters: Settings.GeneralLabels."
                                      f"{key}: one of {list(LABEL_FILTERS)}, up to 100 names")
            out[key] = set(v)
        return out

    @staticmethod
    def _label_passes(lb, filters) -> bool:
        cats = {c["Name"] for c in lb.get("Categories", [])}
        if lb["Name"] not in filters.get("LabelInclusionFilters", {lb["Name"]}):
            return False
        if lb["Name"] in filters.get("LabelExclusionFilters", ()):
            return False
        if ("LabelCategoryInclusionFilters" in filters
                and not cats & filters["LabelCategoryInclusionFilters"]):
            return False
        return not cats & filters.get("LabelCategoryExclusionFilters", set())

    def _rekognition_DetectLabels(self, b):
        data = self._rek_image(b)
        max_labels = self._rek_int(b, "MaxLabels", 0, 1 << 31, 1000)
        min_conf = self._rek_float(b, "MinConfidence", 0, 100, 55.0)
        features = self._rek_features(b)
        filters = self._rek_label_filters(b)
        script = self.state.take_script("DetectLabels")
        version = LABEL_MODEL_VERSION
        if script is not None:
            labels = script["labels"]
            version = script.get("label_model_version") or version
        else:
            with self.state.lock:
                labels = [normalise_label(lb, i) for i, lb in enumerate(self.state.labels)]
        if b"NOLABELS" in data:
            labels = []
        labels = [lb for lb in labels
                  if lb["Confidence"] >= min_conf and self._label_passes(lb, filters)]
        labels.sort(key=lambda lb: -lb["Confidence"])
        out = {"LabelModelVersion": version}
        if "GENERAL_LABELS" in features:
            out["Labels"] = labels[:max_labels]
        if "IMAGE_PROPERTIES" in features:
            out["ImageProperties"] = {
                "Quality": {"Brightness": 75.0, "Sharpness": 85.0, "Contrast": 70.0},
                "DominantColors": []}
        self._rek_ok(out)

    def _rekognition_DetectFaces(self, b):
        data = self._rek_image(b)
        attrs = self._rek_attrs(b, "Attributes")
        script = self.state.take_script("DetectFaces")
        if script is not None:
            details = script["faces"]
        else:
            with self.state.lock:
                canned = self.state.faces
            details = ([normalise_face(f, i) for i, f in enumerate(canned)] if canned is not None
                       else [self._face_detail(attrs)])
        if b"NOFACE" in data:
            details = []
        self._rek_ok({"FaceDetails": details})

    # --- SNS --------------------------------------------------------------

    def _sns_Publish(self, p):
        st = self.state
        dests = [k for k in ("TopicArn", "TargetArn", "PhoneNumber") if p.get(k)]
        if not dests:
            raise ApiError("InvalidParameter", "Invalid parameter: TopicArn or TargetArn "
                                               "Reason: no value for required parameter")
        if len(dests) > 1:
            raise ApiError("InvalidParameter", "Invalid parameter: Only one of TopicArn, "
                                               "TargetArn or PhoneNumber may be given "
                                               f"(got {', '.join(dests)})")
        message = p.get("Message")
        if message is None or message == "":
            raise ApiError("InvalidParameter", "Invalid parameter: Empty message")
        if len(message.encode("utf-8")) > 262144:
            raise ApiError("InvalidParameter", "Invalid parameter: Message too long")
        subject = p.get("Subject")
        if subject is not None and (not subject or len(subject) >= 100
                                    or any(c in subject for c in "\r\n")
                                    or not subject.isprintable()):
            raise ApiError("InvalidParameter", "Invalid parameter: Subject")
        if p.get("MessageStructure") not in (None, "json"):
            raise ApiError("InvalidParameter", "Invalid parameter: MessageStructure")
        if p.get("MessageStructure") == "json":
            try:
                parsed = json.loads(message)
                if not isinstance(parsed, dict) or "default" not in parsed:
                    raise ValueError
            except ValueError:
                raise ApiError("InvalidParameter", "Invalid parameter: Message Structure - "
                                                   "JSON message body failed to parse or has "
                                                   "no 'default' key") from None
        topic = p.get("TopicArn") or p.get("TargetArn")
        fifo = False
        if topic:
            m = re.fullmatch(r"arn:aws:sns:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,256}"
                             r"(\.fifo)?)", topic)
            if not m:
                raise ApiError("InvalidParameter", f"Invalid parameter: TopicArn")
            fifo = bool(m.group(4))
            with st.lock:
                known = topic in st.topics
            if not known and (m.group(1) != st.config["region"]
                              or m.group(2) != st.config["account"]):
                raise ApiError("NotFound", "Topic does not exist", 404)
            if fifo and not p.get("MessageGroupId"):
                raise ApiError("InvalidParameter", "Invalid parameter: The MessageGroupId "
                                                   "parameter is required for FIFO topics")
        phone = p.get("PhoneNumber")
        if phone and not re.fullmatch(r"\+[1-9]\d{1,14}", phone):
            raise ApiError("InvalidParameter", f"Invalid parameter: PhoneNumber Reason: "
                                               f"{phone} is not valid to publish to")
        attrs = self._sns_attributes(p)
        if phone:
            self._sns_sms_checks(message, attrs)
        msg_id = str(uuid.uuid4())
        entry = {"MessageId": msg_id, "TopicArn": p.get("TopicArn"),
                 "TargetArn": p.get("TargetArn"), "PhoneNumber": phone, "Subject": subject,
                 "Message": message, "MessageStructure": p.get("MessageStructure"),
                 "MessageAttributes": attrs, "MessageGroupId": p.get("MessageGroupId"),
                 "MessageDeduplicationId": p.get("MessageDeduplicationId"),
                 "time": time.time()}
        with st.lock:
            st.sns_messages.append(entry)
            seq = len(st.sns_messages)
        extra = f"<SequenceNumber>{seq:020d}</SequenceNumber>" if fifo else ""
        self._send_xml(200, f'<PublishResponse xmlns="{XMLNS["sns"]}"><PublishResult>'
                            f"<MessageId>{msg_id}</MessageId>{extra}</PublishResult>"
                            f"<ResponseMetadata><RequestId>{self._request_id}</RequestId>"
                            f"</ResponseMetadata></PublishResponse>")

    @staticmethod
    def _sns_sms_checks(message: str, attrs: dict):
        """What SNS checks of a direct SMS publish: at most 1600 characters in
        one publish, and the documented values of the AWS.SNS.SMS.* attributes."""
        if len(message) > SMS_MAX_CHARS:
            raise ApiError("InvalidParameter", f"Invalid parameter: Message too long for SMS "
                                               f"({len(message)} characters; at most "
                                               f"{SMS_MAX_CHARS})")
        sms_type = attrs.get("AWS.SNS.SMS.SMSType", {}).get("StringValue")
        if sms_type is not None and sms_type not in ("Promotional", "Transactional"):
            raise ApiError("InvalidParameterValue", "The message attribute "
                                                    "'AWS.SNS.SMS.SMSType' has an invalid value "
                                                    f"'{sms_type}': Promotional or Transactional")

    @staticmethod
    def _sns_attributes(p) -> dict:
        entries: dict[int, dict] = {}
        for k, v in p.items():
            m = re.fullmatch(r"MessageAttributes\.entry\.(\d+)\.(Name|Value\.DataType|"
                             r"Value\.StringValue|Value\.BinaryValue)", k)
            if m:
                entries.setdefault(int(m.group(1)), {})[m.group(2)] = v
            elif k.startswith("MessageAttributes."):
                raise ApiError("InvalidParameter", f"Invalid parameter: {k}")
        if len(entries) > 10:
            raise ApiError("InvalidParameter", f"Number of message attributes "
                                               f"[{len(entries)}] exceeds the allowed maximum [10].")
        out = {}
        for n in sorted(entries):
            e = entries[n]
            name = e.get("Name")
            if not name or len(name) > 256 or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) \
                    or name.startswith(".") or name.endswith(".") or ".." in name:
                raise ApiError("InvalidParameterValue",
                               f"The message attribute name '{name}' is invalid.")
            dtype = e.get("Value.DataType")
            if not dtype or not re.fullmatch(r"(String|Number|Binary)(\.[A-Za-z0-9_.-]+)?", dtype):
                raise ApiError("InvalidParameterValue",
                               f"The message attribute '{name}' has an invalid message attribute "
                               "type, the set of supported type prefixes is Binary, Number, and "
                               "String.")
            base = dtype.split(".")[0]
            if base == "Binary":
                val = e.get("Value.BinaryValue")
                if not val:
                    raise ApiError("InvalidParameterValue",
                                   f"The message attribute '{name}' must contain non-empty "
                                   "message attribute value for message attribute type 'Binary'.")
                out[name] = {"DataType": dtype, "BinaryValue": val}
                continue
            val = e.get("Value.StringValue")
            if val is None or val == "":
                raise ApiError("InvalidParameterValue",
                               f"The message attribute '{name}' must contain non-empty message "
                               f"attribute value for message attribute type '{dtype}'.")
            if base == "Number" and not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?",
                                                     val):
                raise ApiError("InvalidParameterValue",
                               f"Could not cast message attribute '{name}' value to number.")
            out[name] = {"DataType": dtype, "StringValue": val}
        return out

    # --- STS --------------------------------------------------------------

    def _sts_GetCallerIdentity(self, p):
        c = self._identity
        self._send_xml(200, f'<GetCallerIdentityResponse xmlns="{XMLNS["sts"]}">'
                            f"<GetCallerIdentityResult><Arn>{_x(c.arn)}</Arn>"
                            f"<UserId>{_x(c.user_id)}</UserId><Account>{_x(c.account)}</Account>"
                            f"</GetCallerIdentityResult><ResponseMetadata><RequestId>"
                            f"{self._request_id}</RequestId></ResponseMetadata>"
                            f"</GetCallerIdentityResponse>")

    @staticmethod
    def _validation(value, field, constraint):
        return ApiError("ValidationError", f"1 validation error detected: Value "
                                           f"{'null' if value is None else repr(value)} at "
                                           f"'{field}' failed to satisfy constraint: {constraint}")

    def _sts_AssumeRoleWithWebIdentity(self, p):
        st = self.state
        role_arn = p.get("RoleArn")
        session = p.get("RoleSessionName")
        token = p.get("WebIdentityToken")
        if not role_arn:
            raise self._validation(None, "roleArn", "Member must not be null")
        m = re.fullmatch(r"arn:aws[a-z-]*:iam::(\d{12}):role/([\w+=,.@/-]*/)?([\w+=,.@-]{1,64})",
                         role_arn)
        if not m or len(role_arn) < 20:
            raise self._validation(role_arn, "roleArn", "Member must be a role ARN")
        if session is None:
            raise self._validation(None, "roleSessionName", "Member must not be null")
        if not re.fullmatch(r"[\w+=,.@-]{2,64}", session):
            raise self._validation(session, "roleSessionName",
                                   "Member must satisfy regular expression pattern: [\\w+=,.@-]*"
                                   " and have length between 2 and 64")
        if token is None:
            raise self._validation(None, "webIdentityToken", "Member must not be null")
        duration = p.get("DurationSeconds", "3600")
        lo = int(st.config["sts_min_duration"])
        if not re.fullmatch(r"\d+", duration or "") or not lo <= int(duration) <= 43200:
            raise self._validation(duration, "durationSeconds",
                                   f"Member must have value between {lo} and 43200")
        if not hmac.compare_digest(token.encode(), st.config["web_identity_token"].encode()):
            raise ApiError("InvalidIdentityToken",
                           "The web identity token that was passed could not be validated by AWS."
                           " Get a new identity token from the identity provider and then retry "
                           "the request.")
        account, role_name = m.group(1), m.group(3)
        cred = st.issue("web-identity", role_name, session, int(duration), account=account)
        self._send_xml(200,
                       f'<AssumeRoleWithWebIdentityResponse xmlns="{XMLNS["sts"]}">'
                       f"<AssumeRoleWithWebIdentityResult>"
                       f"<SubjectFromWebIdentityToken>vigil-test-subject"
                       f"</SubjectFromWebIdentityToken>"
                       f"<Audience>sts.amazonaws.com</Audience>"
                       f"<AssumedRoleUser><Arn>{_x(cred.arn)}</Arn>"
                       f"<AssumedRoleId>{_x(cred.user_id)}</AssumedRoleId></AssumedRoleUser>"
                       f"<Credentials><AccessKeyId>{cred.access_key}</AccessKeyId>"
                       f"<SecretAccessKey>{_x(cred.secret)}</SecretAccessKey>"
                       f"<SessionToken>{_x(cred.token)}</SessionToken>"
                       f"<Expiration>{iso8601(cred.expiration)}</Expiration></Credentials>"
                       f"<Provider>oidc.vigil.test</Provider>"
                       f"</AssumeRoleWithWebIdentityResult>"
                       f"<ResponseMetadata><RequestId>{self._request_id}</RequestId>"
                       f"</ResponseMetadata></AssumeRoleWithWebIdentityResponse>")

    # --- Kinesis Video Streams ------------------------------------------------

    def _kvs_arg(self, msg):
        return ApiError("InvalidArgumentException", msg, 400)

    def _kvs_stream(self, b) -> str:
        name, arn = b.get("StreamName"), b.get("StreamARN")
        if name is not None and arn is not None:
            raise self._kvs_arg("Specify either StreamName or StreamARN, not both")
        if name is None and arn is None:
            raise self._kvs_arg("Either StreamName or StreamARN must be specified")
        if arn is not None:
            m = isinstance(arn, str) and re.fullmatch(
                r"arn:aws[a-z-]*:kinesisvideo:[a-z0-9-]+:\d{12}:stream/([a-zA-Z0-9_.-]{1,256})/"
                r"\d+", arn)
            if not m:
                raise self._kvs_arg("StreamARN is not a valid Kinesis Video stream ARN")
            name = m.group(1)
        elif not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9_.-]{1,256}", name):
            raise self._kvs_arg("StreamName must match [a-zA-Z0-9_.-]+ (1-256 characters)")
        st = self.state
        with st.lock:
            known = name in st.streams
        if st.config["strict_streams"] and not known:
            raise ApiError("ResourceNotFoundException", f"Stream {name} not found", 404)
        return name

    def _kvs_record(self, op, b):
        with self.state.lock:
            self.state.kvs_last[op] = b

    def _kinesisvideo_GetDataEndpoint(self, b):
        self._kvs_record("GetDataEndpoint", b)
        self._kvs_stream(b)
        if b.get("APIName") not in HLS_API_NAMES:
            raise self._kvs_arg(f"APIName must be one of {sorted(HLS_API_NAMES)}")
        self._send_json(200, {"DataEndpoint": f"http://127.0.0.1:{self.state.port}"})

    def _kinesisvideo_GetHLSStreamingSessionURL(self, b):
        self._kvs_record("GetHLSStreamingSessionURL", b)
        self._kvs_stream(b)
        mode = b.get("PlaybackMode", "LIVE")
        if mode not in ("LIVE", "LIVE_REPLAY", "ON_DEMAND"):
            raise self._kvs_arg("PlaybackMode must be LIVE, LIVE_REPLAY or ON_DEMAND")
        sel = b.get("HLSFragmentSelector")
        if sel is not None and not isinstance(sel, dict):
            raise self._kvs_arg("HLSFragmentSelector must be an object")
        sel = sel or {}
        if sel.get("FragmentSelectorType", "SERVER_TIMESTAMP") not in ("PRODUCER_TIMESTAMP",
                                                                       "SERVER_TIMESTAMP"):
            raise self._kvs_arg("FragmentSelectorType must be PRODUCER_TIMESTAMP or "
                                "SERVER_TIMESTAMP")
        rng = sel.get("TimestampRange")
        if rng is not None and not isinstance(rng, dict):
            raise self._kvs_arg("TimestampRange must be an object")
        start = end = None
        if rng is not None:
            start, end = rng.get("StartTimestamp"), rng.get("EndTimestamp")
            for k, v in (("StartTimestamp", start), ("EndTimestamp", end)):
                if v is not None and not _json_number(v):
                    raise self._kvs_arg(f"{k} must be a number of seconds since the epoch")
        if mode == "LIVE" and rng is not None:
            raise self._kvs_arg("TimestampRange must not be set when PlaybackMode is LIVE")
        if mode == "LIVE_REPLAY" and start is None:
            raise self._kvs_arg("StartTimestamp is required when PlaybackMode is LIVE_REPLAY")
        if mode == "ON_DEMAND":
            if start is None or end is None:
                raise self._kvs_arg("StartTimestamp and EndTimestamp are required when "
                                    "PlaybackMode is ON_DEMAND")
            if end - start > 24 * 3600:
                raise self._kvs_arg("The time range must not exceed 24 hours in ON_DEMAND mode")
        if start is not None and end is not None and end <= start:
            raise self._kvs_arg("EndTimestamp must be later than StartTimestamp")
        expires = b.get("Expires", 300)
        if not isinstance(expires, int) or isinstance(expires, bool) or \
                not 300 <= expires <= 43200:
            raise self._kvs_arg("Expires must be an integer between 300 and 43200")
        for key, allowed in (("ContainerFormat", ("FRAGMENTED_MP4", "MPEG_TS")),
                             ("DiscontinuityMode", ("ALWAYS", "NEVER", "ON_DISCONTINUITY")),
                             ("DisplayFragmentTimestamp", ("ALWAYS", "NEVER"))):
            if key in b and b[key] not in allowed:
                raise self._kvs_arg(f"{key} must be one of {', '.join(allowed)}")
        mx = b.get("MaxMediaPlaylistFragmentResults")
        if mx is not None and (not isinstance(mx, int) or isinstance(mx, bool)
                               or not 1 <= mx <= 5000):
            raise self._kvs_arg("MaxMediaPlaylistFragmentResults must be between 1 and 5000")
        token = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")
        region = self.state.config["region"]
        self._send_json(200, {"HLSStreamingSessionURL":
                              f"https://b-1234abcd.kinesisvideo.{region}.amazonaws.com/hls/v1/"
                              f"getHLSMasterPlaylist.m3u8?SessionToken={token}"})

    # --- IoT data plane ---------------------------------------------------------

    def _iotdata_Publish(self, path, query, body):
        if self.command != "POST":
            raise ApiError("MethodNotAllowedException", "Method not allowed", 405)
        raw_topic = path[len("/topics/"):]
        topic = unquote_to_bytes(raw_topic)
        try:
            topic_s = topic.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError("InvalidRequestException", "Topic is not valid UTF-8") from None
        if not topic_s or len(topic) > 256 or "+" in topic_s or "#" in topic_s \
                or topic_s.count("/") > 7 or "\x00" in topic_s:
            raise ApiError("InvalidRequestException", f"Invalid topic name: {topic_s!r}")
        q = dict(parse_qsl(query, keep_blank_values=True))
        qos = q.get("qos", "0")
        if qos not in ("0", "1"):
            raise ApiError("InvalidRequestException", "qos must be 0 or 1")
        if len(body) > 128 * 1024:
            raise ApiError("RequestEntityTooLargeException", "Payload exceeds 128 KB", 413)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        msg = {"topic": topic_s, "raw_topic": raw_topic, "qos": int(qos),
               "retain": q.get("retain") == "true", "payload": text,
               "payload_b64": base64.b64encode(body).decode(), "time": time.time(),
               "query": query}
        with self.state.lock:
            self.state.iot_messages.append(msg)
        self._send_json(200, {})

    # --- EC2 IMDSv2 ----------------------------------------------------------------

    def _imds(self, path, body):
        st = self.state
        role = st.config["role_name"]
        prefix = "/latest/meta-data/iam/security-credentials"
        if path == "/latest/api/token":
            api = "imds.GetToken"
        elif path in (prefix, prefix + "/"):
            api = "imds.GetRoleName"
        elif path.startswith(prefix + "/"):
            api = "imds.GetCredentials"
        elif path == "/latest/dynamic/instance-identity/document":
            api = "imds.GetInstanceIdentityDocument"
        else:
            api = "imds.GetMetadata"
        self._rec["api"], self._rec["service"] = api, "imds"
        if api == "imds.GetToken":
            if self.command != "PUT":
                return self._send(405, "Method Not Allowed", "text/plain")
            if self.headers.get("X-Forwarded-For"):
                return self._send(403, "Forbidden", "text/plain")
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if not ttl or not ttl.strip().isdigit() or not 1 <= int(ttl) <= 21600:
                return self._send(400, "Bad Request", "text/plain")
            if self._apply_fault(api, "imds"):
                return
            token = base64.urlsafe_b64encode(secrets.token_bytes(42)).decode()
            with st.lock:
                st.imds_tokens[token] = st.now() + int(ttl)
            return self._send(200, token, "text/plain",
                              {"X-aws-ec2-metadata-token-ttl-seconds": str(int(ttl))})
        if self.command not in ("GET", "HEAD"):
            return self._send(405, "Method Not Allowed", "text/plain")
        token = self.headers.get("X-aws-ec2-metadata-token")
        with st.lock:
            exp = st.imds_tokens.get(token or "")
        if exp is None or st.now() >= exp:
            self._rec["error_code"] = "Unauthorized"
            return self._send(401, "Unauthorized", "text/plain")
        if self._apply_fault(api, "imds"):
            return
        region = st.config["region"]
        if api == "imds.GetRoleName":
            return self._send(200, role, "text/plain")
        if api == "imds.GetCredentials":
            if path[len(prefix) + 1:].rstrip("/") != role:
                return self._send(404, "Not Found", "text/plain")
            cred = st.issue("imds", role, INSTANCE_ID, 6 * 3600)
            return self._send_json(200, {
                "Code": "Success", "LastUpdated": iso8601(st.now()), "Type": "AWS-HMAC",
                "AccessKeyId": cred.access_key, "SecretAccessKey": cred.secret,
                "Token": cred.token, "Expiration": iso8601(cred.expiration)}, "text/plain")
        if api == "imds.GetInstanceIdentityDocument":
            return self._send_json(200, {
                "accountId": st.config["account"], "architecture": "x86_64",
                "availabilityZone": region + "a", "imageId": "ami-0123456789abcdef0",
                "instanceId": INSTANCE_ID, "instanceType": "t3.micro",
                "pendingTime": "2024-01-01T00:00:00Z", "privateIp": "10.0.0.10",
                "region": region, "version": "2017-09-30"}, "text/plain")
        simple = {"/latest/meta-data/instance-id": INSTANCE_ID,
                  "/latest/meta-data/placement/region": region,
                  "/latest/meta-data/placement/availability-zone": region + "a",
                  "/latest/meta-data/iam/info": json.dumps({
                      "Code": "Success", "LastUpdated": iso8601(st.now()),
                      "InstanceProfileArn": f"arn:aws:iam::{st.config['account']}:"
                                            f"instance-profile/{role}",
                      "InstanceProfileId": _id_from("AIPA", role)})}
        if path in simple:
            return self._send(200, simple[path], "text/plain")
        return self._send(404, "Not Found", "text/plain")

    # --- container credentials ---------------------------------------------------

    def _container(self, path):
        st = self.state
        self._rec["api"], self._rec["service"] = "container.GetCredentials", "container"
        if not path.startswith("/container-credentials/"):
            return self._send_json(404, {"message": "Not Found"})
        if self.command != "GET":
            return self._send_json(405, {"message": "Method Not Allowed"})
        got = self.headers.get("Authorization")
        if got is None or not hmac.compare_digest(got.encode(),
                                                  st.config["container_token"].encode()):
            self._rec["error_code"] = "Unauthorized"
            return self._send_json(401, {"code": "AccessDenied",
                                         "message": "Authorization token is missing or invalid"})
        if self._apply_fault("container.GetCredentials", "container"):
            return
        role = st.config["role_name"]
        cred = st.issue("container", role, "container-" + _rand(string.digits, 6), 6 * 3600)
        self._send_json(200, {"AccessKeyId": cred.access_key, "SecretAccessKey": cred.secret,
                              "Token": cred.token, "Expiration": iso8601(cred.expiration),
                              "RoleArn": f"arn:aws:iam::{st.config['account']}:role/{role}"})

    # --- control API ---------------------------------------------------------------

    def _control(self, path, query, body):
        st = self.state
        q = dict(parse_qsl(query, keep_blank_values=True))
        try:
            b = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return self._send_json(400, {"error": "body must be JSON"})
        if not isinstance(b, dict):
            return self._send_json(400, {"error": "body must be a JSON object"})
        route = (self.command, path.rstrip("/") or "/")
        try:
            out = self._control_route(route, q, b)
        except ValueError as e:
            return self._send_json(400, {"error": str(e)})
        if out is None:
            return self._send_json(404, {"error": f"no control endpoint {route[0]} {route[1]}"})
        status, obj = out
        self._send_json(status, obj)

    def _control_route(self, route, q, b):
        st = self.state
        method, path = route
        if route == ("GET", "/_fake/health"):
            return 200, {"ok": True, "port": st.port}
        if route == ("POST", "/_fake/reset"):
            st.reset()
            return 200, {"ok": True}
        if route == ("GET", "/_fake/requests"):
            return 200, self._requests_view(q)
        if path == "/_fake/fail":
            if method == "GET":
                with st.lock:
                    return 200, list(st.faults)
            if method == "DELETE":
                with st.lock:
                    st.faults.clear()
                return 200, {"ok": True}
            if method == "POST":
                return 200, self._add_fault(b)
        if path == "/_fake/topics":
            if method == "POST":
                arn = b.get("arn")
                if not isinstance(arn, str) or not re.fullmatch(
                        r"arn:aws:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?", arn):
                    raise ValueError("'arn' must be an SNS topic ARN")
                with st.lock:
                    st.topics.add(arn)
                return 200, {"arn": arn}
            if method == "GET":
                with st.lock:
                    return 200, sorted(st.topics)
        if route == ("GET", "/_fake/sns"):
            with st.lock:
                msgs = list(st.sns_messages)
            topic = q.get("topic")
            if topic:
                msgs = [m for m in msgs if topic in (m["TopicArn"], m["TargetArn"])]
            return 200, msgs
        if path == "/_fake/streams":
            if method == "POST":
                name = b.get("name")
                if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9_.-]{1,256}", name):
                    raise ValueError("'name' must be a stream name")
                with st.lock:
                    st.streams.add(name)
                return 200, {"name": name}
            if method == "GET":
                with st.lock:
                    return 200, sorted(st.streams)
        if route == ("GET", "/_fake/kinesisvideo"):
            with st.lock:
                return 200, dict(st.kvs_last)
        if route == ("GET", "/_fake/iot"):
            with st.lock:
                msgs = list(st.iot_messages)
            if "topic" in q:
                msgs = [m for m in msgs if m["topic"] == q["topic"]]
            return 200, msgs
        if route == ("GET", "/_fake/rekognition"):
            with st.lock:
                return 200, {cid: {"arn": c["arn"],
                                   "faces": [self._public_face(f) | {"ImageSha256": f["_sha256"]}
                                             for f in c["faces"].values()]}
                             for cid, c in st.collections.items()}
        if route == ("POST", "/_fake/labels"):
            labels = b.get("labels")
            if labels is not None and not isinstance(labels, list):
                raise ValueError("'labels' must be a list of Label objects or null")
            labels = ([normalise_label(x, i) for i, x in enumerate(labels)]
                      if labels is not None else json.loads(json.dumps(DEFAULT_LABELS)))
            with st.lock:
                st.labels = labels
            return 200, {"labels": st.labels}
        if route == ("POST", "/_fake/faces"):
            faces = b.get("faces")
            if faces is not None and not isinstance(faces, list):
                raise ValueError("'faces' must be a list of FaceDetail objects or null")
            faces = [normalise_face(x, i) for i, x in enumerate(faces)] if faces is not None \
                else None
            with st.lock:
                st.faces = faces
            return 200, {"faces": faces}
        if path == "/_fake/rekognition/next":
            if method == "POST":
                return 200, self._add_script(b)
            if method == "GET":
                with st.lock:
                    return 200, list(st.rek_next)
            if method == "DELETE":
                with st.lock:
                    st.rek_next.clear()
                return 200, {"ok": True}
        if path == "/_fake/config":
            if method == "POST":
                return 200, self._set_config(b)
            if method == "GET":
                with st.lock:
                    return 200, dict(st.config)
        if route == ("GET", "/_fake/credentials"):
            with st.lock:
                return 200, [c.public() for c in st.temp_creds.values()]
        if route == ("POST", "/_fake/credentials/expire"):
            key = b.get("access_key")
            now = st.now()
            n = 0
            with st.lock:
                for c in st.temp_creds.values():
                    if key in (None, c.access_key):
                        c.expiration = now - 1
                        n += 1
            return 200, {"expired": n}
        return None

    def _requests_view(self, q):
        st = self.state
        with st.lock:
            recs = list(st.requests)
        if "since" in q:
            recs = [r for r in recs if r["seq"] > int(q["since"])]
        if "api" in q:
            recs = [r for r in recs if r["api"] and fnmatch.fnmatchcase(r["api"], q["api"])]
        if "limit" in q:
            recs = recs[-int(q["limit"]):] if int(q["limit"]) > 0 else []
        want_body = q.get("bodies") in ("1", "true")
        out = []
        for r in recs:
            r = dict(r)
            raw = r.pop("_body", None)
            if want_body and raw is not None:
                try:
                    r["body"] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    r["body_b64"] = base64.b64encode(raw).decode()
            out.append(r)
        return out

    def _add_script(self, b):
        api = b.get("api")
        op = api.split(".", 1)[1] if isinstance(api, str) and api.startswith("rekognition.") \
            else api
        key = {"DetectLabels": "labels", "DetectFaces": "faces"}.get(op)
        if key is None:
            raise ValueError("'api' must be DetectLabels or DetectFaces "
                             "(or rekognition.DetectLabels / rekognition.DetectFaces)")
        items = b.get(key)
        if not isinstance(items, list):
            raise ValueError(f"{op} scripts need '{key}': a list (may be empty)")
        norm = normalise_label if key == "labels" else normalise_face
        count = b.get("count", 1)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise ValueError("'count' must be an integer (<= 0 or null: unlimited)")
        version = b.get("label_model_version")
        if version is not None and not isinstance(version, str):
            raise ValueError("'label_model_version' must be a string")
        script = {"api": op, "count": None if count is None or count <= 0 else count,
                  key: [norm(x, i) for i, x in enumerate(items)], "hits": 0}
        if version:
            script["label_model_version"] = version
        with self.state.lock:
            self.state.rek_next.append(script)
        return script

    def _add_fault(self, b):
        api = b.get("api")
        if not isinstance(api, str) or not api:
            raise ValueError("'api' is required, e.g. \"rekognition.DetectLabels\" or \"*\"")
        count = b.get("count", 1)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise ValueError("'count' must be an integer (<= 0 or null: unlimited)")
        if count is not None and count <= 0:
            count = None
        status = b.get("status")
        delay = b.get("delay_ms", 0)
        if status is None and not delay:
            raise ValueError("'status' (or 'delay_ms') is required")
        if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
            raise ValueError("'status' must be an HTTP status code")
        if not _json_number(delay) or delay < 0:
            raise ValueError("'delay_ms' must be a non-negative number")
        f = {"api": api, "count": count, "status": status, "code": b.get("code"),
             "message": b.get("message"), "delay_ms": delay, "hits": 0}
        with self.state.lock:
            self.state.faults.append(f)
        return f

    def _set_config(self, b):
        st = self.state
        allowed = {"max_skew": (int, float), "clock_offset": (int, float),
                   "credential_ttl": (int, float, type(None)), "sts_min_duration": (int,),
                   "strict_streams": (bool,), "web_identity_token": (str,),
                   "container_token": (str,), "role_name": (str,),
                   "list_faces_page_max": (int, type(None))}
        for k, v in b.items():
            if k not in allowed:
                raise ValueError(f"unknown config key {k!r}; known: {sorted(allowed)}")
            if not isinstance(v, allowed[k]) or (isinstance(v, bool) and bool not in allowed[k]):
                raise ValueError(f"bad type for {k!r}")
        with st.lock:
            st.config.update(b)
            return dict(st.config)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Local fake of the AWS APIs vigil uses (tests only).")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = pick a free one)")
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    ap.add_argument("--access-key", default="AKIDEXAMPLE")
    ap.add_argument("--secret-key", default="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--account", default="123456789012")
    ap.add_argument("--web-identity-token", default="test-web-identity-token")
    ap.add_argument("--container-token", default="test-container-token")
    ap.add_argument("--role-name", default="vigil-node", help="IMDS / container role name")
    ap.add_argument("--strict-streams", action="store_true",
                    help="Kinesis Video: only streams created with POST /_fake/streams exist")
    ap.add_argument("--max-skew", type=float, default=300.0,
                    help="allowed X-Amz-Date distance from now, seconds (default 300)")
    ap.add_argument("--credential-ttl", type=float, default=None,
                    help="lifetime (s) of every temporary credential set issued (overrides "
                         "DurationSeconds and the IMDS/container default of 6 h)")
    ap.add_argument("--sts-min-duration", type=int, default=900,
                    help="smallest DurationSeconds AssumeRoleWithWebIdentity accepts "
                         "(AWS: 900; set 1 to test refresh)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    state = State(args)
    server = fakeserver.Server(args.port, Handler, state)
    state.port = server.port
    fakeserver.serve(server, args.port_file,
                     f"fake_aws listening on 127.0.0.1:{state.port} (pid {os.getpid()})")
    sys.stderr.write("fake_aws stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
