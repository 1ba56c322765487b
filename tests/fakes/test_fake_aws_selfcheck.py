#!/usr/bin/env python3
"""Self-check of tests/fakes/fake_aws.py (run by hand; not part of CTest).

  python3 tests/fakes/test_fake_aws_selfcheck.py [-v]

1. The verifier's pure functions against AWS's published SigV4 examples
   (aws-sig-v4-test-suite "get-vanilla", the IAM ListUsers example of the
   SigV4 documentation, the S3 pre-signed URL example) and the
   canonicalisation rules, with the clock injected.
2. A live fake (started on a free loopback port, stopped with SIGTERM by
   PID) exercised with a small signer written separately in this file.
3. The same fake exercised with curl --aws-sigv4, when curl is available.
"""
import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET
from urllib.parse import quote, urlencode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fake_aws  # noqa: E402

EX_KEY = "AKIDEXAMPLE"
EX_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
KEY, SECRET = "AKIDVIGILTEST", "vigil-test-secret"
REGION, ACCOUNT = "us-east-1", "123456789012"
JPEG_A = b"\xff\xd8\xff\xe0" + b"vigil-face-A" * 10
JPEG_B = b"\xff\xd8\xff\xe0" + b"vigil-face-B" * 10
PNG = b"\x89PNG\r\n\x1a\n" + b"png-body"


def epoch(s):
    return dt.datetime.strptime(s, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc).timestamp()


def static_lookup(key, secret):
    cred = fake_aws.Credential(key, secret)
    return lambda k: cred if k == key else None


# ---------------------------------------------------------------------------
# 1. Published vectors and canonicalisation rules
# ---------------------------------------------------------------------------

class Vectors(unittest.TestCase):
    VANILLA_AUTH = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                    "aws4_request, SignedHeaders=host;x-amz-date, Signature="
                    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")

    def vanilla(self, now, auth=None):
        headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z"),
                   ("Authorization", auth or self.VANILLA_AUTH)]
        return fake_aws.verify_request("GET", "/", "", headers, b"",
                                       static_lookup(EX_KEY, EX_SECRET), now,
                                       region="us-east-1", service="service")

    def test_get_vanilla(self):
        creq = fake_aws.canonical_request(
            "GET", "/", "", [("Host", "example.amazonaws.com"),
                             ("X-Amz-Date", "20150830T123600Z")],
            "host;x-amz-date", fake_aws.EMPTY_SHA256, "service")
        self.assertEqual(creq, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z"
                               "\n\nhost;x-amz-date\n" + fake_aws.EMPTY_SHA256)
        self.assertEqual(fake_aws.expected_signature(EX_SECRET, "20150830T123600Z", "us-east-1",
                                                     "service", creq),
                         "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        res = self.vanilla(epoch("20150830T123600Z"))
        self.assertTrue(res.ok, res.message)

    def test_get_vanilla_wrong_secret_or_key(self):
        r = fake_aws.verify_request(
            "GET", "/", "", [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z"),
                             ("Authorization", self.VANILLA_AUTH)], b"",
            static_lookup(EX_KEY, "not-the-secret"), epoch("20150830T123600Z"),
            region="us-east-1", service="service")
        self.assertEqual((r.ok, r.kind), (False, "signature"))
        self.assertTrue(r.message.startswith("The request signature we calculated does not match "
                                             "the signature you provided"))
        r = fake_aws.verify_request(
            "GET", "/", "", [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z"),
                             ("Authorization", self.VANILLA_AUTH)], b"",
            static_lookup("OTHERKEY", EX_SECRET), epoch("20150830T123600Z"),
            region="us-east-1", service="service")
        self.assertEqual((r.ok, r.kind), (False, "unknown_key"))

    def test_clock_skew_is_injectable(self):
        t = epoch("20150830T123600Z")
        self.assertTrue(self.vanilla(t + 299).ok)
        self.assertTrue(self.vanilla(t - 299).ok)
        r = self.vanilla(t + 301)
        self.assertEqual(r.kind, "signature")
        self.assertTrue(r.message.startswith("Signature expired: 20150830T123600Z is now earlier "
                                             "than 20150830T123601Z"), r.message)
        r = self.vanilla(t - 301)
        self.assertTrue(r.message.startswith("Signature not yet current"), r.message)

    def test_iam_list_users_doc_example(self):
        headers = [("Host", "iam.amazonaws.com"),
                   ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                   ("X-Amz-Date", "20150830T123600Z")]
        query = "Action=ListUsers&Version=2010-05-08"
        creq = fake_aws.canonical_request("GET", "/", query, headers,
                                          "content-type;host;x-amz-date", fake_aws.EMPTY_SHA256,
                                          "iam")
        self.assertEqual(hashlib.sha256(creq.encode()).hexdigest(),
                         "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59")
        sig = fake_aws.expected_signature(EX_SECRET, "20150830T123600Z", "us-east-1", "iam", creq)
        self.assertEqual(sig, "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
        auth = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
                "SignedHeaders=content-type;host;x-amz-date, Signature=" + sig)
        # Query parameters in another order canonicalise the same.
        res = fake_aws.verify_request("GET", "/", "Version=2010-05-08&Action=ListUsers",
                                      headers + [("Authorization", auth)], b"",
                                      static_lookup(EX_KEY, EX_SECRET), epoch("20150830T123600Z"),
                                      region="us-east-1", service="iam")
        self.assertTrue(res.ok, res.message)

    def test_s3_presigned_doc_example(self):
        query = ("X-Amz-Algorithm=AWS4-HMAC-SHA256"
                 "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
                 "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
                 "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
        lookup = static_lookup("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        headers = [("Host", "examplebucket.s3.amazonaws.com")]
        res = fake_aws.verify_request("GET", "/test.txt", query, headers, b"", lookup,
                                      epoch("20130524T000000Z") + 10, region="us-east-1",
                                      service="s3")
        self.assertTrue(res.ok, res.message)
        res = fake_aws.verify_request("GET", "/test.txt", query, headers, b"", lookup,
                                      epoch("20130524T000000Z") + 86401, region="us-east-1",
                                      service="s3")
        self.assertFalse(res.ok)

    def test_canonical_uri_rules(self):
        cu = fake_aws.canonical_uri
        # Non-S3: the path as received is URI-encoded once more.
        self.assertEqual(cu("/my%20key", "execute-api"), "/my%2520key")
        self.assertEqual(cu("/topics/vigil%2Fcam1", "iotdata"), "/topics/vigil%252Fcam1")
        self.assertEqual(cu("/example space/", "service"), "/example%20space/")
        self.assertEqual(cu("/\u1234", "service"), "/%E1%88%B4")
        self.assertEqual(cu("", "service"), "/")
        # ... after RFC 3986 normalisation (aws-sig-v4-test-suite normalize-path cases).
        self.assertEqual(cu("//example//", "service"), "/example/")
        self.assertEqual(cu("/example/..", "service"), "/")
        self.assertEqual(cu("/example1/example2/../..", "service"), "/")
        self.assertEqual(cu("/./example", "service"), "/example")
        self.assertEqual(cu("/./", "service"), "/")
        # S3: URI-encoded once, not normalised.
        self.assertEqual(cu("/my%20key", "s3"), "/my%20key")
        self.assertEqual(cu("/a//b/../c", "s3"), "/a//b/../c")

    def test_canonical_query_and_headers(self):
        self.assertEqual(fake_aws.canonical_query("b=2&a=1&a=0&c"), "a=0&a=1&b=2&c=")
        self.assertEqual(fake_aws.canonical_query("k=%7e&s=a%20b&p=a+b&e=%3d"),
                         "e=%3D&k=~&p=a%2Bb&s=a%20b")
        block, missing = fake_aws.canonical_headers(
            [("My-Header1", "  a   b \t c "), ("X", "1"), ("x", "2")], ["my-header1", "x", "zz"])
        self.assertEqual(block, "my-header1:a b c\nx:1,2\nzz:\n")
        self.assertEqual(missing, ["zz"])


# ---------------------------------------------------------------------------
# 2. Live fake, independent signer
# ---------------------------------------------------------------------------

def _enc(s, safe=""):
    return quote(s, safe=safe + "-_.~")


def sign_headers(method, path, query, headers, body, key, secret, service, *, amz_date=None,
                 token=None, sign_token=True, region=REGION, unsigned=()):
    """A minimal SigV4 signer, written apart from fake_aws (path: the wire
    path, encoded once; non-S3 canonical URI = encode(wire path) again)."""
    amz_date = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    h = dict(headers)
    h["X-Amz-Date"] = amz_date
    if token:
        h["X-Amz-Security-Token"] = token
    signed = {k.lower(): " ".join(str(v).split()) for k, v in h.items()
              if k.lower() not in unsigned
              and not (k.lower() == "x-amz-security-token" and not sign_token)}
    names = sorted(signed)
    pairs = sorted((_enc(k), _enc(v)) for k, v in
                   (p.split("=", 1) if "=" in p else (p, "") for p in query.split("&") if p))
    creq = "\n".join([method, _enc(path, "/"), "&".join(f"{k}={v}" for k, v in pairs),
                      "".join(f"{n}:{signed[n]}\n" for n in names), ";".join(names),
                      hashlib.sha256(body).hexdigest()])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    sts = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(creq.encode()).hexdigest()}"
    k = ("AWS4" + secret).encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    h["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={key}/{scope}, "
                          f"SignedHeaders={';'.join(names)}, Signature={sig}")
    return h


class Fake:
    proc = None
    port = None
    tmp = None


def setUpModule():
    Fake.tmp = tempfile.mkdtemp(prefix="fake_aws_selfcheck.")
    port_file = os.path.join(Fake.tmp, "port")
    Fake.log = open(os.path.join(Fake.tmp, "stderr.log"), "wb")
    Fake.proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "fake_aws.py"), "--port", "0", "--port-file",
         port_file, "--access-key", KEY, "--secret-key", SECRET, "--region", REGION,
         "--account", ACCOUNT], stderr=Fake.log)
    for _ in range(100):
        if os.path.exists(port_file):
            with open(port_file) as f:
                text = f.read().strip()
            if text:
                Fake.port = int(text)
                return
        time.sleep(0.05)
    Fake.proc.kill()
    raise RuntimeError("fake_aws did not start")


def tearDownModule():
    Fake.proc.terminate()           # SIGTERM, by PID
    try:
        rc = Fake.proc.wait(10)
    except subprocess.TimeoutExpired:
        Fake.proc.kill()
        Fake.proc.wait()
        raise RuntimeError("fake_aws did not stop on SIGTERM")
    Fake.log.close()
    if rc != 0:
        raise RuntimeError(f"fake_aws exited {rc} on SIGTERM")
    if os.environ.get("SELFCHECK_SHOW_LOG"):
        sys.stderr.write(open(os.path.join(Fake.tmp, "stderr.log")).read())
    shutil.rmtree(Fake.tmp, ignore_errors=True)


def raw(method, target, body=b"", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", Fake.port, timeout=10)
    c.request(method, target, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def call(service, method, path, query="", body=b"", headers=None, key=KEY, secret=SECRET,
         **kw):
    if isinstance(body, str):
        body = body.encode()
    h = {"Host": f"127.0.0.1:{Fake.port}"}
    h.update(headers or {})
    h = sign_headers(method, path, query, h, body, key, secret, service, **kw)
    return raw(method, path + ("?" + query if query else ""), body, h)


def rek(op, obj, **kw):
    st, h, data = call("rekognition", "POST", "/", body=json.dumps(obj),
                       headers={"X-Amz-Target": f"RekognitionService.{op}",
                                "Content-Type": "application/x-amz-json-1.1"}, **kw)
    return st, h, json.loads(data)


def query_api(service, params, **kw):
    st, h, data = call(service, "POST", "/", body=urlencode(params),
                       headers={"Content-Type": "application/x-www-form-urlencoded"}, **kw)
    return st, h, ET.fromstring(data)


def xml_text(root, tag):
    for el in root.iter():
        if el.tag.split("}")[-1] == tag:
            return el.text
    return None


def kvs(op, obj, **kw):
    st, h, data = call("kinesisvideo", "POST", "/" + op, body=json.dumps(obj),
                       headers={"Content-Type": "application/json"}, **kw)
    return st, h, json.loads(data)


def control(method, path, obj=None):
    st, _, data = raw(method, path, json.dumps(obj).encode() if obj is not None else b"",
                      {"Content-Type": "application/json"})
    return st, json.loads(data)


def b64(b):
    return base64.b64encode(b).decode()


class Live(unittest.TestCase):
    def setUp(self):
        control("POST", "/_fake/reset")

    # -- signature checks ----------------------------------------------------

    def test_auth_errors_json_protocol(self):
        st, h, b = rek("ListCollections", {})
        self.assertEqual(st, 200)
        st, h, b = rek("ListCollections", {}, secret="wrong")
        self.assertEqual((st, b["__type"], h["x-amzn-errortype"]),
                         (403, "InvalidSignatureException", "InvalidSignatureException"))
        self.assertIn("The request signature we calculated does not match", b["Message"])
        st, h, b = rek("ListCollections", {}, key="AKIDUNKNOWN")
        self.assertEqual((st, b["__type"]), (403, "UnrecognizedClientException"))
        stale = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 360))
        st, h, b = rek("ListCollections", {}, amz_date=stale)
        self.assertEqual((st, b["__type"]), (403, "InvalidSignatureException"))
        self.assertTrue(b["Message"].startswith("Signature expired"), b["Message"])
        st, h, b = rek("ListCollections", {}, unsigned=("x-amz-date",))
        self.assertEqual((st, b["__type"]), (403, "InvalidSignatureException"))
        self.assertIn("X-Amz-Date", b["Message"])
        st, h, b = rek("ListCollections", {}, unsigned=("host",))
        self.assertEqual((st, b["__type"]), (403, "InvalidSignatureException"))
        st, h, data = raw("POST", "/", b"{}", {"X-Amz-Target": "RekognitionService.ListCollections",
                                               "Content-Type": "application/x-amz-json-1.1"})
        self.assertEqual((st, json.loads(data)["__type"]),
                         (403, "MissingAuthenticationTokenException"))
        st, h, b = rek("ListCollections", {}, region="eu-west-1")
        self.assertEqual((st, b["__type"]), (403, "InvalidSignatureException"))
        # Body changed after signing.
        h2 = sign_headers("POST", "/", "", {"Host": f"127.0.0.1:{Fake.port}",
                                            "X-Amz-Target": "RekognitionService.ListCollections"},
                          b"{}", KEY, SECRET, "rekognition")
        st, _, data = raw("POST", "/", b'{"MaxResults":1}', h2)
        self.assertEqual((st, json.loads(data)["__type"]), (403, "InvalidSignatureException"))
        reqs = control("GET", "/_fake/requests")[1]
        self.assertEqual([r["signed_ok"] for r in reqs],
                         [True, False, False, False, False, False, False, False, False])

    def test_auth_errors_query_protocol(self):
        p = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}
        st, h, x = query_api("sts", p, secret="wrong")
        self.assertEqual((st, xml_text(x, "Code"), xml_text(x, "Type")),
                         (403, "SignatureDoesNotMatch", "Sender"))
        st, h, x = query_api("sts", p, key="AKIDUNKNOWN")
        self.assertEqual((st, xml_text(x, "Code")), (403, "InvalidClientTokenId"))
        stale = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + 400))
        st, h, x = query_api("sns", {"Action": "Publish"}, amz_date=stale)
        self.assertEqual((st, xml_text(x, "Code")), (403, "SignatureDoesNotMatch"))
        self.assertTrue(xml_text(x, "Message").startswith("Signature not yet current"))
        st, _, data = raw("POST", "/", b"Action=Publish&Message=x",
                          {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((st, xml_text(ET.fromstring(data), "Code")),
                         (403, "MissingAuthenticationToken"))

    def test_scope_service_must_match_endpoint(self):
        st, h, b = kvs("getDataEndpoint", {"StreamName": "s", "APIName":
                                           "GET_HLS_STREAMING_SESSION_URL"})
        self.assertEqual(st, 200)
        hd = sign_headers("POST", "/getDataEndpoint", "", {"Host": f"127.0.0.1:{Fake.port}"},
                          b"{}", KEY, SECRET, "rekognition")
        st, h, data = raw("POST", "/getDataEndpoint", b"{}", hd)
        self.assertEqual((st, h["x-amzn-errortype"]), (403, "InvalidSignatureException"))
        self.assertIn("kinesisvideo", json.loads(data)["message"])

    # -- Rekognition -----------------------------------------------------------

    def test_rekognition_collections_and_faces(self):
        st, _, b = rek("CreateCollection", {"CollectionId": "vigil-faces"})
        self.assertEqual(st, 200)
        self.assertEqual(b, {"StatusCode": 200, "FaceModelVersion": "6.0", "CollectionArn":
                             f"aws:rekognition:{REGION}:{ACCOUNT}:collection/vigil-faces"})
        st, h, b = rek("CreateCollection", {"CollectionId": "vigil-faces"})
        self.assertEqual((st, b["__type"], h["x-amzn-errortype"]),
                         (400, "ResourceAlreadyExistsException", "ResourceAlreadyExistsException"))
        st, _, b = rek("IndexFaces", {"CollectionId": "vigil-faces", "Image": {"Bytes": b64(JPEG_A)},
                                      "ExternalImageId": "alice", "MaxFaces": 1,
                                      "QualityFilter": "AUTO", "DetectionAttributes": ["DEFAULT"]})
        self.assertEqual(st, 200, b)
        face = b["FaceRecords"][0]["Face"]
        self.assertEqual(face["ExternalImageId"], "alice")
        self.assertRegex(face["FaceId"], fake_aws.UUID_RE)
        self.assertEqual((b["FaceModelVersion"], b["UnindexedFaces"]), ("6.0", []))
        self.assertIn("BoundingBox", b["FaceRecords"][0]["FaceDetail"])
        rek("IndexFaces", {"CollectionId": "vigil-faces", "Image": {"Bytes": b64(PNG)},
                           "ExternalImageId": "bob"})
        st, _, b = rek("ListFaces", {"CollectionId": "vigil-faces", "MaxResults": 1})
        self.assertEqual((len(b["Faces"]), "NextToken" in b), (1, True))
        st, _, b2 = rek("ListFaces", {"CollectionId": "vigil-faces", "MaxResults": 1,
                                      "NextToken": b["NextToken"]})
        self.assertEqual((len(b2["Faces"]), "NextToken" in b2), (1, False))
        self.assertEqual(b2["Faces"][0]["ExternalImageId"], "bob")
        st, _, b = rek("SearchFacesByImage", {"CollectionId": "vigil-faces",
                                              "Image": {"Bytes": b64(JPEG_A)},
                                              "FaceMatchThreshold": 90, "MaxFaces": 5})
        self.assertEqual([(m["Similarity"], m["Face"]["FaceId"]) for m in b["FaceMatches"]],
                         [(99.0, face["FaceId"])])
        self.assertIn("SearchedFaceBoundingBox", b)
        st, _, b = rek("SearchFacesByImage", {"CollectionId": "vigil-faces",
                                              "Image": {"Bytes": b64(JPEG_B)}})
        self.assertEqual(b["FaceMatches"], [])
        st, _, b = rek("DeleteFaces", {"CollectionId": "vigil-faces",
                                       "FaceIds": [face["FaceId"]]})
        self.assertEqual(b["DeletedFaces"], [face["FaceId"]])
        st, _, b = rek("SearchFacesByImage", {"CollectionId": "vigil-faces",
                                              "Image": {"Bytes": b64(JPEG_A)}})
        self.assertEqual(b["FaceMatches"], [])

    def test_rekognition_errors(self):
        st, h, b = rek("ListFaces", {"CollectionId": "nope"})
        self.assertEqual((st, b["__type"]), (400, "ResourceNotFoundException"))
        st, h, b = rek("DetectLabels", {"Image": {"Bytes": b64(b"GIF89a....")}})
        self.assertEqual((st, b["__type"]), (400, "InvalidImageFormatException"))
        big = b"\xff\xd8" + b"\0" * (5 * 1024 * 1024)
        st, h, b = rek("DetectLabels", {"Image": {"Bytes": b64(big)}})
        self.assertEqual((st, b["__type"]), (400, "ImageTooLargeException"))
        st, h, b = rek("DetectLabels", {"Image": {"Bytes": "***"}})
        self.assertEqual((st, b["__type"]), (400, "InvalidParameterException"))
        st, h, b = rek("DetectLabels", {"Image": {"Bytes": b64(JPEG_A)}, "MinConfidence": 101})
        self.assertEqual((st, b["__type"]), (400, "InvalidParameterException"))
        st, h, b = rek("NoSuchOp", {})
        self.assertEqual((st, b["__type"]), (400, "UnknownOperationException"))

    def test_rekognition_detect(self):
        st, _, b = rek("DetectLabels", {"Image": {"Bytes": b64(JPEG_A)}})
        self.assertEqual([lb["Name"] for lb in b["Labels"]], ["Person"])
        self.assertEqual(b["LabelModelVersion"], "3.0")
        person = b["Labels"][0]
        self.assertEqual((person["Confidence"], len(person["Instances"]), person["Parents"],
                          person["Categories"]), (98.5, 1, [], []))
        self.assertEqual(set(person["Instances"][0]["BoundingBox"]),
                         {"Width", "Height", "Left", "Top"})
        st, _, b = rek("DetectLabels", {"Image": {"Bytes": b64(JPEG_A)}, "MinConfidence": 30})
        self.assertEqual([lb["Name"] for lb in b["Labels"]], ["Person", "Package"])
        st, _, b = rek("DetectLabels", {"Image": {"Bytes": b64(JPEG_A)}, "MinConfidence": 30,
                                        "MaxLabels": 1})
        self.assertEqual([lb["Name"] for lb in b["Labels"]], ["Person"])
        st, _, b = rek("DetectFaces", {"Image": {"Bytes": b64(PNG)}, "Attributes": ["DEFAULT"]})
        self.assertEqual(len(b["FaceDetails"]), 1)
        self.assertTrue({"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}
                        <= set(b["FaceDetails"][0]))

    # -- SNS -------------------------------------------------------------------

    def test_sns_publish(self):
        topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:vigil-alerts"
        st, h, x = query_api("sns", {
            "Action": "Publish", "Version": "2010-03-31", "TopicArn": topic,
            "Message": "person at front door", "Subject": "vigil alert",
            "MessageAttributes.entry.1.Name": "camera",
            "MessageAttributes.entry.1.Value.DataType": "String",
            "MessageAttributes.entry.1.Value.StringValue": "front door"})
        self.assertEqual(st, 200)
        self.assertEqual(x.tag, "{http://sns.amazonaws.com/doc/2010-03-31/}PublishResponse")
        msg_id = xml_text(x, "MessageId")
        self.assertRegex(msg_id, fake_aws.UUID_RE)
        self.assertTrue(xml_text(x, "RequestId"))
        msgs = control("GET", "/_fake/sns")[1]
        self.assertEqual((msgs[0]["MessageId"], msgs[0]["Message"], msgs[0]["MessageAttributes"]),
                         (msg_id, "person at front door",
                          {"camera": {"DataType": "String", "StringValue": "front door"}}))
        st, h, x = query_api("sns", {"Action": "Publish", "PhoneNumber": "+15555550100",
                                     "Message": "hi"})
        self.assertEqual(st, 200)
        for params, code, status in (
                ({"TopicArn": topic}, "InvalidParameter", 400),
                ({"Message": "m"}, "InvalidParameter", 400),
                ({"TopicArn": topic, "PhoneNumber": "+15555550100", "Message": "m"},
                 "InvalidParameter", 400),
                ({"TopicArn": "arn:aws:sns:us-east-1:999999999999:other", "Message": "m"},
                 "NotFound", 404),
                ({"TopicArn": topic, "Message": "m", "MessageAttributes.entry.1.Name": "n",
                  "MessageAttributes.entry.1.Value.DataType": "Number",
                  "MessageAttributes.entry.1.Value.StringValue": "abc"},
                 "InvalidParameterValue", 400)):
            st, h, x = query_api("sns", dict(Action="Publish", **params))
            self.assertEqual((st, xml_text(x, "Code")), (status, code), params)
        other = "arn:aws:sns:us-east-1:999999999999:other"
        control("POST", "/_fake/topics", {"arn": other})
        st, h, x = query_api("sns", {"Action": "Publish", "TopicArn": other, "Message": "m"})
        self.assertEqual(st, 200)

    # -- faults ------------------------------------------------------------------

    def test_fault_injection(self):
        control("POST", "/_fake/fail", {"api": "rekognition.DetectLabels", "count": 2,
                                        "status": 429, "code": "ThrottlingException"})
        # A request failing its signature check does not consume the fault.
        st, _, b = rek("DetectLabels", {"Image": {"Bytes": b64(JPEG_A)}}, secret="bad")
        self.assertEqual(b["__type"], "InvalidSignatureException")
        for _ in range(2):
            st, h, b = rek("DetectLabels", {"Image": {"Bytes": b64(JPEG_A)}})
            self.assertEqual((st, b["__type"], h["x-amzn-errortype"]),
                             (429, "ThrottlingException", "ThrottlingException"))
        st, _, b = rek("DetectLabels", {"Image": {"Bytes": b64(JPEG_A)}})
        self.assertEqual(st, 200)
        control("POST", "/_fake/fail", {"api": "sns.Publish", "status": 400, "code": "Throttled",
                                        "message": "Rate exceeded"})
        st, h, x = query_api("sns", {"Action": "Publish", "Message": "m", "TopicArn":
                                     f"arn:aws:sns:{REGION}:{ACCOUNT}:t"})
        self.assertEqual((st, xml_text(x, "Code"), xml_text(x, "Message")),
                         (400, "Throttled", "Rate exceeded"))
        control("POST", "/_fake/fail", {"api": "*", "status": 503})
        st, h, b = kvs("getDataEndpoint", {"StreamName": "s", "APIName": "GET_MEDIA"})
        self.assertEqual((st, h["x-amzn-errortype"]), (503, "ServiceUnavailable"))
        control("POST", "/_fake/fail", {"api": "sts.*", "status": 500})
        st, h, x = query_api("sts", {"Action": "GetCallerIdentity"})
        self.assertEqual((st, xml_text(x, "Code"), xml_text(x, "Type")),
                         (500, "InternalFailure", "Receiver"))
        self.assertEqual(control("GET", "/_fake/fail")[1], [])

    # -- Kinesis Video -----------------------------------------------------------

    def test_kinesis_video(self):
        st, _, b = kvs("getDataEndpoint", {"StreamName": "cam1",
                                           "APIName": "GET_HLS_STREAMING_SESSION_URL"})
        self.assertEqual(b, {"DataEndpoint": f"http://127.0.0.1:{Fake.port}"})
        live = {"StreamName": "cam1", "PlaybackMode": "LIVE", "Expires": 300,
                "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP"}}
        st, _, b = kvs("getHLSStreamingSessionURL", live)
        self.assertEqual(st, 200, b)
        self.assertRegex(b["HLSStreamingSessionURL"],
                         r"^https://b-[0-9a-f]+\.kinesisvideo\.us-east-1\.amazonaws\.com/hls/v1/"
                         r"getHLSMasterPlaylist\.m3u8\?SessionToken=\S+$")
        od = {"StreamName": "cam1", "PlaybackMode": "ON_DEMAND", "ContainerFormat": "FRAGMENTED_MP4",
              "DiscontinuityMode": "ALWAYS", "DisplayFragmentTimestamp": "NEVER",
              "MaxMediaPlaylistFragmentResults": 1000, "Expires": 3600,
              "HLSFragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                                      "TimestampRange": {"StartTimestamp": 1700000000.25,
                                                         "EndTimestamp": 1700000060.5}}}
        st, _, b = kvs("getHLSStreamingSessionURL", od)
        self.assertEqual(st, 200, b)
        self.assertEqual(control("GET", "/_fake/kinesisvideo")[1]["GetHLSStreamingSessionURL"], od)
        bad = [
            dict(live, HLSFragmentSelector={"TimestampRange": {"StartTimestamp": 1.0}}),
            dict(od, HLSFragmentSelector={"TimestampRange": {"StartTimestamp": 1700000000}}),
            {"StreamName": "cam1", "PlaybackMode": "LIVE_REPLAY"},
            dict(live, Expires=299),
            dict(od, HLSFragmentSelector={"TimestampRange": {"StartTimestamp": "2024-01-01",
                                                             "EndTimestamp": 1700000060}}),
        ]
        for body in bad:
            st, h, b = kvs("getHLSStreamingSessionURL", body)
            self.assertEqual((st, h["x-amzn-errortype"]), (400, "InvalidArgumentException"), body)
            self.assertIn("message", b)
        control("POST", "/_fake/config", {"strict_streams": True})
        st, h, b = kvs("getHLSStreamingSessionURL", live)
        self.assertEqual((st, h["x-amzn-errortype"]), (404, "ResourceNotFoundException"))
        control("POST", "/_fake/streams", {"name": "cam1"})
        st, h, b = kvs("getHLSStreamingSessionURL", live)
        self.assertEqual(st, 200)

    # -- IoT data plane --------------------------------------------------------

    def test_iot_publish_double_encoded_path(self):
        path = "/topics/" + quote("vigil/cam 1/events", safe="")
        st, _, data = call("iotdata", "POST", path, "qos=1", b'{"event":"person"}')
        self.assertEqual((st, json.loads(data)), (200, {}))
        msgs = control("GET", "/_fake/iot?topic=" + quote("vigil/cam 1/events"))[1]
        self.assertEqual((len(msgs), msgs[0]["qos"], msgs[0]["payload"]),
                         (1, 1, '{"event":"person"}'))
        # Signing the canonical URI encoded only once is rejected (non-S3 rule).
        amz = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        creq = fake_aws.canonical_request("POST", "/", "qos=0", [
            ("Host", f"127.0.0.1:{Fake.port}"), ("X-Amz-Date", amz)], "host;x-amz-date",
            hashlib.sha256(b"x").hexdigest(), "iotdata").replace("\n/\n", "\n" + path + "\n", 1)
        sig = fake_aws.expected_signature(SECRET, amz, REGION, "iotdata", creq)
        st, h, data = raw("POST", path + "?qos=0", b"x", {
            "Host": f"127.0.0.1:{Fake.port}", "X-Amz-Date": amz,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={KEY}/{amz[:8]}/{REGION}/iotdata/"
                             f"aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}"})
        self.assertEqual((st, h["x-amzn-errortype"]), (403, "InvalidSignatureException"))
        st, h, data = call("iotdata", "POST", path, "qos=2", b"x")
        self.assertEqual((st, h["x-amzn-errortype"]), (400, "InvalidRequestException"))

    # -- STS and temporary credentials ---------------------------------------------

    def test_sts_web_identity_and_session_tokens(self):
        st, _, x = query_api("sts", {"Action": "GetCallerIdentity", "Version": "2011-06-15"})
        self.assertEqual((st, xml_text(x, "Arn"), xml_text(x, "Account")),
                         (200, f"arn:aws:iam::{ACCOUNT}:user/test", ACCOUNT))
        self.assertTrue(xml_text(x, "UserId").startswith("AIDA"))
        role = f"arn:aws:iam::{ACCOUNT}:role/vigil-node"
        params = {"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
                  "RoleArn": role, "RoleSessionName": "vigil-test",
                  "WebIdentityToken": "test-web-identity-token"}
        st, _, data = raw("POST", "/", urlencode(params).encode(),
                          {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 200, data)
        x = ET.fromstring(data)
        akid, secret, token = (xml_text(x, "AccessKeyId"), xml_text(x, "SecretAccessKey"),
                               xml_text(x, "SessionToken"))
        self.assertTrue(akid.startswith("ASIA"))
        self.assertEqual(xml_text(x, "Arn"),
                         f"arn:aws:sts::{ACCOUNT}:assumed-role/vigil-node/vigil-test")
        exp = dt.datetime.strptime(xml_text(x, "Expiration"), "%Y-%m-%dT%H:%M:%SZ")
        self.assertAlmostEqual(exp.replace(tzinfo=dt.timezone.utc).timestamp(),
                               time.time() + 3600, delta=5)
        st, _, data = raw("GET", "/?" + urlencode(params))
        self.assertEqual(st, 200)
        st, _, data = raw("POST", "/", urlencode(dict(params, WebIdentityToken="nope")).encode(),
                          {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((st, xml_text(ET.fromstring(data), "Code")), (400, "InvalidIdentityToken"))
        # The temporary credentials work only with their session token, signed.
        gci = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}
        st, _, x = query_api("sts", gci, key=akid, secret=secret, token=token)
        self.assertEqual((st, xml_text(x, "Arn")),
                         (200, f"arn:aws:sts::{ACCOUNT}:assumed-role/vigil-node/vigil-test"))
        st, _, x = query_api("sts", gci, key=akid, secret=secret)
        self.assertEqual((st, xml_text(x, "Code")), (403, "InvalidClientTokenId"))
        st, _, x = query_api("sts", gci, key=akid, secret=secret, token=token + "x")
        self.assertEqual((st, xml_text(x, "Code")), (403, "InvalidClientTokenId"))
        st, _, x = query_api("sts", gci, key=akid, secret=secret, token=token, sign_token=False)
        self.assertEqual((st, xml_text(x, "Code")), (403, "SignatureDoesNotMatch"))
        st, _, b = rek("ListCollections", {}, key=akid, secret=secret, token=token)
        self.assertEqual(st, 200)
        # Short-lived credentials for refresh tests.
        st, _, data = raw("POST", "/", urlencode(dict(params, DurationSeconds="1")).encode(),
                          {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((st, xml_text(ET.fromstring(data), "Code")), (400, "ValidationError"))
        control("POST", "/_fake/config", {"sts_min_duration": 1})
        st, _, data = raw("POST", "/", urlencode(dict(params, DurationSeconds="1")).encode(),
                          {"Content-Type": "application/x-www-form-urlencoded"})
        x = ET.fromstring(data)
        a2, s2, t2 = (xml_text(x, "AccessKeyId"), xml_text(x, "SecretAccessKey"),
                      xml_text(x, "SessionToken"))
        time.sleep(2.1)
        st, _, b = rek("ListCollections", {}, key=a2, secret=s2, token=t2)
        self.assertEqual((st, b["__type"]), (403, "ExpiredTokenException"))
        st, _, x = query_api("sts", gci, key=a2, secret=s2, token=t2)
        self.assertEqual((st, xml_text(x, "Code")), (403, "ExpiredToken"))
        control("POST", "/_fake/credentials/expire", {"access_key": akid})
        st, _, b = rek("ListCollections", {}, key=akid, secret=secret, token=token)
        self.assertEqual((st, b["__type"]), (403, "ExpiredTokenException"))

    # -- metadata endpoints ------------------------------------------------------

    def test_container_credentials(self):
        st, _, _ = raw("GET", "/container-credentials/v2/abc")
        self.assertEqual(st, 401)
        st, _, _ = raw("GET", "/container-credentials/v2/abc", headers={"Authorization": "wrong"})
        self.assertEqual(st, 401)
        st, _, data = raw("GET", "/container-credentials/v2/abc",
                          headers={"Authorization": "test-container-token"})
        c = json.loads(data)
        self.assertEqual(set(c), {"AccessKeyId", "SecretAccessKey", "Token", "Expiration",
                                  "RoleArn"})
        st, _, b = rek("ListCollections", {}, key=c["AccessKeyId"], secret=c["SecretAccessKey"],
                       token=c["Token"])
        self.assertEqual(st, 200)

    def test_imds_v2(self):
        base = "/latest/meta-data/iam/security-credentials/"
        self.assertEqual(raw("GET", base)[0], 401)
        self.assertEqual(raw("PUT", "/latest/api/token")[0], 400)
        self.assertEqual(raw("PUT", "/latest/api/token", headers={
            "X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "1.2.3.4"})[0], 403)
        st, h, tok = raw("PUT", "/latest/api/token",
                         headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        self.assertEqual((st, h["x-aws-ec2-metadata-token-ttl-seconds"]), (200, "60"))
        auth = {"X-aws-ec2-metadata-token": tok.decode()}
        self.assertEqual(raw("GET", base, headers={"X-aws-ec2-metadata-token": "bogus"})[0], 401)
        st, _, role = raw("GET", base, headers=auth)
        self.assertEqual((st, role), (200, b"vigil-node"))
        st, _, data = raw("GET", base + "vigil-node", headers=auth)
        c = json.loads(data)
        self.assertEqual((c["Code"], c["Type"]), ("Success", "AWS-HMAC"))
        self.assertTrue(c["AccessKeyId"].startswith("ASIA"))
        st, _, b = rek("ListCollections", {}, key=c["AccessKeyId"], secret=c["SecretAccessKey"],
                       token=c["Token"])
        self.assertEqual(st, 200)
        st, _, data = raw("GET", "/latest/dynamic/instance-identity/document", headers=auth)
        self.assertEqual(json.loads(data)["region"], "us-east-1")
        control("POST", "/_fake/fail", {"api": "imds.GetCredentials", "status": 500})
        self.assertEqual(raw("GET", base + "vigil-node", headers=auth)[0], 500)

    def test_requests_log(self):
        rek("ListCollections", {})
        reqs = control("GET", "/_fake/requests?bodies=1")[1]
        self.assertEqual(len(reqs), 1)
        r = reqs[0]
        self.assertEqual((r["api"], r["service"], r["method"], r["path"], r["signed_ok"],
                          r["status"], r["body"]),
                         ("rekognition.ListCollections", "rekognition", "POST", "/", True, 200,
                          "{}"))
        self.assertEqual(r["body_sha256"], hashlib.sha256(b"{}").hexdigest())
        self.assertIn("X-Amz-Target", r["headers"])
        control("POST", "/_fake/reset")
        self.assertEqual(control("GET", "/_fake/requests")[1], [])


# ---------------------------------------------------------------------------
# 3. curl --aws-sigv4
# ---------------------------------------------------------------------------

@unittest.skipUnless(shutil.which("curl"), "curl not installed")
class Curl(unittest.TestCase):
    def setUp(self):
        control("POST", "/_fake/reset")

    def curl(self, service, secret, *args):
        out = subprocess.run(
            ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--aws-sigv4",
             f"aws:amz:{REGION}:{service}", "--user", f"{KEY}:{secret}", *args],
            capture_output=True, check=True, timeout=20).stdout.decode()
        body, _, code = out.rpartition("\n")
        return int(code), body

    def test_curl_rekognition(self):
        args = ["-H", "X-Amz-Target: RekognitionService.CreateCollection",
                "-H", "Content-Type: application/x-amz-json-1.1",
                "-d", '{"CollectionId":"c"}', f"http://127.0.0.1:{Fake.port}/"]
        code, body = self.curl("rekognition", SECRET, *args)
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body)["StatusCode"], 200)
        code, body = self.curl("rekognition", "wrong-secret", *args)
        self.assertEqual(code, 403)
        b = json.loads(body)
        self.assertEqual(b["__type"], "InvalidSignatureException")
        self.assertTrue(b["Message"].startswith("The request signature we calculated does not "
                                                "match the signature you provided"))

    def test_curl_sns_and_kvs(self):
        form = (f"Action=Publish&Version=2010-03-31&TopicArn=arn:aws:sns:{REGION}:{ACCOUNT}:"
                "alerts&Message=hello")
        code, body = self.curl("sns", SECRET, "-d", form, f"http://127.0.0.1:{Fake.port}/")
        self.assertEqual(code, 200, body)
        self.assertTrue(xml_text(ET.fromstring(body), "MessageId"))
        code, body = self.curl("sns", "wrong-secret", "-d", form, f"http://127.0.0.1:{Fake.port}/")
        self.assertEqual((code, xml_text(ET.fromstring(body), "Code")),
                         (403, "SignatureDoesNotMatch"))
        code, body = self.curl("kinesisvideo", SECRET, "-H", "Content-Type: application/json",
                               "-d", '{"StreamName":"cam1","APIName":"GET_HLS_STREAMING_SESSION_URL"}',
                               f"http://127.0.0.1:{Fake.port}/getDataEndpoint")
        self.assertEqual((code, json.loads(body)["DataEndpoint"]),
                         (200, f"http://127.0.0.1:{Fake.port}"))
        reqs = control("GET", "/_fake/requests")[1]
        self.assertEqual([r["signed_ok"] for r in reqs], [True, False, True])


if __name__ == "__main__":
    unittest.main(verbosity=2)
