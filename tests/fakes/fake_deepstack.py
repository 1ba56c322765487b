#!/usr/bin/env python3
"""A local fake of the HTTP API that DeepStack and CodeProject.AI Server share
(/v1/vision/detection, /v1/vision/face, and the face recognition API under
/v1/vision/face/), for tests. Python 3 standard library only. See
tests/fakes/README.md, "fake_deepstack.py".

  python3 tests/fakes/fake_deepstack.py --port 0 --port-file /tmp/ds.port \\
      [--mode deepstack|codeproject] [--api-key KEY]

Face recognition (endpoint names for scripts and the request log in brackets):

  POST /v1/vision/face/register [register]  userid + one or more image files
      (any field names: image, image1..imageN). Replaces the user's stored
      faces with these images, as both servers do, and answers
      {"success": true, "message": "face added"}. No userid: "user id not
      specified"; no image: "No valid image file found"; an image holding the
      bytes NOFACE: "No face found in image <field>" (nothing is changed).
  POST /v1/vision/face/recognize [recognize]  image, min_confidence (default
      0.67). An image holding NOFACE: no predictions. An image whose SHA-256
      is one a user registered: that userid with the configured
      match_confidence (0.9); below min_confidence, or not registered:
      {"userid": "unknown", "confidence": 0}. One prediction per image, with
      a box in pixels.
  POST /v1/vision/face/list [list]  {"success": true, "faces": [userid, ...]}.
  POST /v1/vision/face/delete [delete]  userid; success even when the userid
      is not registered (as DeepStack answers).

Every one checks api_key like the vision endpoints, and request errors are
answered per --mode (400, or 200 with success false). Scripts
(POST /_fake/next with "endpoint": register | recognize | list | delete)
inject failures and raw bodies as for detection; a scripted "predictions"
replaces a recognize answer. GET /_fake/faces shows the stored users
({userid: {"images": n, "sha256": [...]}}); POST /_fake/config takes
"match_confidence" (0..1) too.
"""
import argparse
import hashlib
import json
import os
import sys
import time
from urllib.parse import parse_qsl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeserver  # noqa: E402

ENDPOINTS = {"/v1/vision/detection": "detection", "/v1/vision/face": "face",
             "/v1/vision/face/register": "register", "/v1/vision/face/recognize": "recognize",
             "/v1/vision/face/list": "list", "/v1/vision/face/delete": "delete"}
FACE_API = ("register", "recognize", "list", "delete")
SCRIPT_ENDPOINTS = ("detection", "face") + FACE_API + ("*",)
DEFAULT_MATCH_CONFIDENCE = 0.9
MODES = ("deepstack", "codeproject")
MAX_BODY = 32 * 1024 * 1024
DEFAULT_MIN_CONFIDENCE = {"detection": 0.45, "face": 0.45, "recognize": 0.67}
RECOGNIZE_BOX = {"x_min": 40, "y_min": 30, "x_max": 80, "y_max": 80}
DEFAULT_PREDICTIONS = {
    "detection": [{"label": "person", "confidence": 0.91,
                   "x_min": 10, "y_min": 20, "x_max": 110, "y_max": 220}],
    "face": [{"confidence": 0.98, "x_min": 40, "y_min": 30, "x_max": 80, "y_max": 80}],
}
PRED_KEYS = ("confidence", "x_min", "y_min", "x_max", "y_max")
JPEG_MAGIC = b"\xff\xd8"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCRIPT_KEYS = {"endpoint", "count", "predictions", "delay_ms", "status", "success", "error",
               "body", "huge_bytes"}


class State(fakeserver.State):
    def reset(self):
        with self.lock:
            self.mode = self.args.mode
            self.api_key = self.args.api_key
            self.seq = 0
            self.requests = []
            self.scripts = []
            self.users = {}         # userid -> [sha256 of each registered image]
            self.match_confidence = DEFAULT_MATCH_CONFIDENCE

    def take_script(self, endpoint):
        with self.lock:
            for s in self.scripts:
                if s["endpoint"] not in (endpoint, "*"):
                    continue
                if s["count"] is not None:
                    s["count"] -= 1
                    if s["count"] <= 0:
                        self.scripts.remove(s)
                s["hits"] += 1
                return dict(s)
        return None


def check_predictions(preds, endpoint):
    if not isinstance(preds, list):
        raise ValueError("'predictions' must be a list")
    for i, p in enumerate(preds):
        if not isinstance(p, dict):
            raise ValueError(f"predictions[{i}] must be an object")
        if endpoint == "detection" and not isinstance(p.get("label"), str):
            raise ValueError(f"predictions[{i}] needs a 'label' (detection)")
    return preds


def parse_script(b):
    unknown = set(b) - SCRIPT_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; known: {sorted(SCRIPT_KEYS)}")
    endpoint = b.get("endpoint", "detection")
    if endpoint not in SCRIPT_ENDPOINTS:
        raise ValueError(f"'endpoint' must be one of {', '.join(SCRIPT_ENDPOINTS)}")
    count = b.get("count", 1)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise ValueError("'count' must be an integer (<= 0 or null: unlimited)")
    status = b.get("status", 200)
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError("'status' must be an HTTP status")
    for key in ("delay_ms", "huge_bytes"):
        v = b.get(key, 0)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"'{key}' must be a non-negative number")
    if "body" in b and not isinstance(b["body"], str):
        raise ValueError("'body' must be a string (sent as it is)")
    if "success" in b and not isinstance(b["success"], bool):
        raise ValueError("'success' must be true or false")
    s = {"endpoint": endpoint, "count": None if count is None or count <= 0 else count,
         "status": status, "delay_ms": b.get("delay_ms", 0), "hits": 0}
    for key in ("success", "error", "body", "huge_bytes"):
        if key in b:
            s[key] = b[key]
    if "predictions" in b:
        s["predictions"] = check_predictions(b["predictions"], endpoint)
    return s


class Handler(fakeserver.Handler):
    server_version = "FakeDeepStack/1.0"

    def _record(self, status):
        """The request went into the log when it arrived (so a client holding
        its answer, or waiting for it, finds it there); now its status."""
        self._status = status
        if self._rec is not None:
            with self.state.lock:
                self._rec["status"] = status
            sys.stderr.write(f"fake_deepstack {self.command} {self._rec['path']} "
                             f"status={status}\n")
            self._rec = None

    def _send(self, status, body: bytes, ctype="application/json"):
        self._record(status)
        super()._send(status, body, ctype)

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError(f"body larger than {MAX_BODY} bytes")
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self):
        self._status = None
        path, _, query = self.path.partition("?")
        rec = {"time": time.time(), "method": self.command, "path": path,
               "endpoint": ENDPOINTS.get(path), "fields": {}, "status": None}
        self._rec = None if path.startswith("/_fake/") else rec
        if self._rec is not None:
            self.state.record(rec)
        try:
            body = self._read_body()
            if path.startswith("/_fake/"):
                return self._control(path, query, body)
            if self.command != "POST" or path not in ENDPOINTS:
                rec["endpoint"] = None
                return self._send_json(404, {"success": False,
                                             "error": f"no endpoint {self.command} {path}"})
            self._vision(ENDPOINTS[path], body, rec)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except ValueError as e:
            self.close_connection = True
            self._send_json(400, {"success": False, "error": str(e)})
        finally:
            self._record(self._status)     # no answer went out (the client hung up)

    # --- the vision API -------------------------------------------------------

    def _fail(self, status, error):
        """A request error the way the configured server answers it: DeepStack
        with the HTTP status, CodeProject.AI with 200 and success false."""
        if self.state.mode == "codeproject" and status == 400:
            status = 200
        self._send_json(status, {"success": False, "error": error})

    def _vision(self, endpoint, body, rec):
        st = self.state
        fields = fakeserver.parse_form(self.headers.get("Content-Type") or "", body) or {}
        if not self._form_ok(fields, rec):
            return
        if endpoint in FACE_API:
            return getattr(self, "_face_" + endpoint)(fields)
        image = fields.get("image")
        if image is None or not image["data"]:
            return self._fail(400, "No image supplied" if st.mode == "codeproject"
                              else "image is required (multipart field 'image')")
        if not (image["data"].startswith(JPEG_MAGIC) or image["data"].startswith(PNG_MAGIC)):
            return self._fail(400, "Unable to decode the image")
        min_conf = self._min_confidence(fields, endpoint)
        if min_conf is None:
            return
        self._answer(endpoint, min_conf, st.take_script(endpoint))

    def _form_ok(self, fields, rec):
        """Log the form and check the key; False when an answer went out."""
        st = self.state
        # Text fields' values are shown, except the key; files by size.
        fields_view = {k: {"len": len(v["data"]), "filename": v["filename"],
                           "content_type": v["content_type"],
                           **({"value": v["data"].decode("utf-8", "replace")}
                              if v["filename"] is None and k != "api_key" else {})}
                       for k, v in fields.items()}
        with st.lock:
            rec["fields"] = fields_view
            api_key = st.api_key
        if api_key and (fields.get("api_key", {}).get("data", b"").decode("utf-8", "replace")
                        != api_key):
            self._send_json(403, {"success": False, "error": "Incorrect api key"})
            return False
        return True

    def _min_confidence(self, fields, endpoint):
        """The form's min_confidence (the default without one); None when an
        error answer went out."""
        if "min_confidence" not in fields:
            return DEFAULT_MIN_CONFIDENCE[endpoint]
        try:
            return float(fields["min_confidence"]["data"].decode())
        except (ValueError, UnicodeDecodeError):
            self._fail(400, "min_confidence must be a number")
            return None

    # --- the face recognition API ---------------------------------------------

    @staticmethod
    def _text(fields, name):
        f = fields.get(name)
        if f is None or f["filename"] is not None:
            return None
        return f["data"].decode("utf-8", "replace")

    def _scripted(self, endpoint):
        """A scripted failure or raw answer for endpoint, sent; else the
        script (or None) for the endpoint to use."""
        s = self.state.take_script(endpoint)
        if s is None:
            return False, None
        if s["delay_ms"]:
            self.state.stop.wait(s["delay_ms"] / 1000.0)
        if "body" in s:
            self._send(s["status"], s["body"].encode())
            return True, s
        if s.get("huge_bytes"):
            self._send_huge(s["status"], int(s["huge_bytes"]))
            return True, s
        if s.get("success") is False or s["status"] != 200:
            self._send_json(s["status"], {"success": False,
                                          "error": s.get("error", "Injected failure")})
            return True, s
        return False, s

    def _face_ok(self, out, endpoint):
        out = dict({"success": True}, **out)
        if self.state.mode == "codeproject":
            out.update({"moduleId": "FaceProcessing", "command": endpoint, "code": 200,
                        "inferenceMs": 8, "processMs": 10, "analysisRoundTripMs": 14})
        else:
            out["duration"] = 0
        self._send_json(200, out)

    def _face_register(self, fields):
        st = self.state
        userid = self._text(fields, "userid")
        images = [(k, v["data"]) for k, v in fields.items() if v["filename"] is not None]
        if not userid:
            return self._fail(400, "user id not specified")
        if not images or any(not d for _, d in images):
            return self._fail(400, "No valid image file found")
        for name, data in images:
            if not (data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC)):
                return self._fail(400, f"Unable to decode the image {name}")
            if b"NOFACE" in data:
                return self._fail(400, f"No face found in image {name}")
        sent, _ = self._scripted("register")
        if sent:
            return
        with st.lock:
            st.users[userid] = [hashlib.sha256(d).hexdigest() for _, d in images]
        self._face_ok({"message": "face added"}, "register")

    def _face_recognize(self, fields):
        st = self.state
        image = fields.get("image")
        if image is None or not image["data"]:
            return self._fail(400, "No image supplied" if st.mode == "codeproject"
                              else "No valid image file found")
        data = image["data"]
        if not (data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC)):
            return self._fail(400, "Unable to decode the image")
        min_conf = self._min_confidence(fields, "recognize")
        if min_conf is None:
            return
        sent, script = self._scripted("recognize")
        if sent:
            return
        if script is not None and "predictions" in script:
            preds = script["predictions"]
        elif b"NOFACE" in data:
            preds = []
        else:
            sha = hashlib.sha256(data).hexdigest()
            with st.lock:
                users = [u for u, shas in st.users.items() if sha in shas]
                conf = st.match_confidence
            if users and conf >= min_conf:
                preds = [dict(RECOGNIZE_BOX, userid=users[0], confidence=conf)]
            else:
                preds = [dict(RECOGNIZE_BOX, userid="unknown", confidence=0)]
        out = {"predictions": preds}
        if st.mode == "codeproject":
            out.update({"message": f"Found {len(preds)} faces", "count": len(preds)})
        self._face_ok(out, "recognize")

    def _face_list(self, fields):
        sent, _ = self._scripted("list")
        if sent:
            return
        with self.state.lock:
            faces = list(self.state.users)
        self._face_ok({"faces": faces}, "list")

    def _face_delete(self, fields):
        userid = self._text(fields, "userid")
        if not userid:
            return self._fail(400, "user id not specified")
        sent, _ = self._scripted("delete")
        if sent:
            return
        with self.state.lock:
            self.state.users.pop(userid, None)
        self._face_ok({"message": "face deleted"} if self.state.mode == "codeproject" else {},
                      "delete")

    def _answer(self, endpoint, min_conf, script):
        s = script or {"status": 200, "delay_ms": 0}
        if s["delay_ms"]:
            self.state.stop.wait(s["delay_ms"] / 1000.0)
        if "body" in s:
            return self._send(s["status"], s["body"].encode())
        if s.get("huge_bytes"):
            return self._send_huge(s["status"], int(s["huge_bytes"]))
        if s.get("success") is False or s["status"] != 200:
            return self._send_json(s["status"], {"success": False,
                                                 "error": s.get("error", "Injected failure")})
        preds = s.get("predictions", DEFAULT_PREDICTIONS[endpoint])
        preds = [p for p in preds if p.get("confidence", 1) >= min_conf]
        out = {"success": True, "predictions": preds}
        if self.state.mode == "codeproject":
            out.update({"message": f"Found {len(preds)} objects", "count": len(preds),
                        "inferenceMs": 12, "processMs": 15, "analysisRoundTripMs": 20,
                        "moduleId": "ObjectDetectionYOLOv5-6.2" if endpoint == "detection"
                        else "FaceProcessing", "command": endpoint, "code": 200})
        else:
            out["duration"] = 0
        self._send_json(200, out)

    def _send_huge(self, status, n):
        """A valid JSON object of n bytes, sent in pieces (the client may hang up)."""
        head, tail = b'{"success":true,"predictions":[],"padding":"', b'"}'
        pad = max(0, n - len(head) - len(tail))
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(head) + pad + len(tail)))
        self.end_headers()
        self.wfile.write(head)
        chunk = b"x" * 65536
        while pad > 0:
            self.wfile.write(chunk[:min(pad, len(chunk))])
            pad -= min(pad, len(chunk))
        self.wfile.write(tail)

    # --- control API ------------------------------------------------------------

    def _control(self, path, query, body):
        try:
            b = json.loads(body.decode("utf-8")) if body.strip() else {}
            if not isinstance(b, dict):
                raise ValueError("body must be a JSON object")
            out = self._control_route(self.command, path.rstrip("/"),
                                      dict(parse_qsl(query)), b)
        except (ValueError, UnicodeDecodeError) as e:
            return self._send_json(400, {"error": str(e)})
        if out is None:
            return self._send_json(404, {"error": f"no control endpoint {self.command} {path}"})
        self._send_json(200, out)

    def _control_route(self, method, path, q, b):
        st = self.state
        if (method, path) == ("GET", "/_fake/health"):
            return {"ok": True, "port": st.port, "mode": st.mode}
        if (method, path) == ("POST", "/_fake/reset"):
            st.reset()
            return {"ok": True}
        if path == "/_fake/next":
            if method == "POST":
                s = parse_script(b)
                with st.lock:
                    st.scripts.append(s)
                return s
            with st.lock:
                if method == "GET":
                    return list(st.scripts)
                if method == "DELETE":
                    st.scripts.clear()
                    return {"ok": True}
        if (method, path) == ("GET", "/_fake/faces"):
            with st.lock:
                return {u: {"images": len(v), "sha256": list(v)} for u, v in st.users.items()}
        if (method, path) == ("GET", "/_fake/requests"):
            with st.lock:
                recs = [dict(r) for r in st.requests]
            if "endpoint" in q:
                recs = [r for r in recs if r["endpoint"] == q["endpoint"]]
            return recs
        if path == "/_fake/config":
            if method == "POST":
                return self._set_config(b)
            if method == "GET":
                with st.lock:
                    return {"mode": st.mode, "api_key_set": bool(st.api_key),
                            "match_confidence": st.match_confidence}
        return None

    def _set_config(self, b):
        st = self.state
        unknown = set(b) - {"mode", "api_key", "match_confidence"}
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; known: api_key, mode, "
                             "match_confidence")
        mc = b.get("match_confidence", 0.5)
        if not isinstance(mc, (int, float)) or isinstance(mc, bool) or not 0 <= mc <= 1:
            raise ValueError("'match_confidence' must be a number in 0..1")
        if "mode" in b and b["mode"] not in MODES:
            raise ValueError(f"'mode' must be one of {list(MODES)}")
        if "api_key" in b and b["api_key"] is not None and not isinstance(b["api_key"], str):
            raise ValueError("'api_key' must be a string or null")
        with st.lock:
            st.mode = b.get("mode", st.mode)
            if "api_key" in b:
                st.api_key = b["api_key"] or None
            if "match_confidence" in b:
                st.match_confidence = float(b["match_confidence"])
            return {"mode": st.mode, "api_key_set": bool(st.api_key),
                    "match_confidence": st.match_confidence}


class Server(fakeserver.Server):
    block_on_close = False      # a hanging scripted answer must not hold up shutdown


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake DeepStack / CodeProject.AI (tests only).")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = pick one)")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--mode", choices=MODES, default="deepstack",
                    help="how request errors are answered: deepstack = HTTP 400, "
                         "codeproject = HTTP 200 with success false")
    ap.add_argument("--api-key", default=None, help="require this api_key form field (403)")
    args = ap.parse_args(argv)
    state = State(args)
    server = Server(args.port, Handler, state)
    state.port = server.port
    fakeserver.serve(server, args.port_file,
                     f"fake_deepstack listening on 127.0.0.1:{state.port} ({args.mode})",
                     on_stop=state.stop.set)
    return 0


if __name__ == "__main__":
    sys.exit(main())
