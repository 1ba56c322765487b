#!/usr/bin/env python3
"""A local fake of the Telegram Bot API methods the telegram sink calls
(sendPhoto, sendMessage), checking requests as the real API does. Python 3
standard library only. See tests/fakes/README.md, "fake_telegram.py".

  python3 tests/fakes/fake_telegram.py --port 0 --port-file /tmp/tg.port \\
      --token 123456:TEST-token --chats 1001,-100200300,@vigil_home \\
      [--max-photo-bytes 10485760]

POST /bot<token>/sendPhoto (multipart/form-data) and /bot<token>/sendMessage
(JSON, form-urlencoded or multipart). A wrong token is 401 "Unauthorized", an
unknown method 404 "Not Found". Then, in this order: chat_id (missing: 400
"Bad Request: chat_id is empty"; not one of the known chats: 400 "Bad
Request: chat not found"), scripted faults (POST /_fake/fail), parse_mode
(HTML, MarkdownV2, Markdown or none), the caption or text parsed for
entities as Telegram does (errors: 400 "Bad Request: can't parse entities:
..."), its length after parsing in UTF-16 units (caption > 1024: "Bad
Request: message caption is too long"; text > 4096: "Bad Request: message is
too long"; empty text: "Bad Request: message text is empty"), and for
sendPhoto the photo: a file part (missing: "Bad Request: there is no photo in
the request"; a text field: "Bad Request: wrong remote file identifier
specified: Wrong string length"), a JPEG (else "Bad Request:
IMAGE_PROCESS_FAILED"), at most --max-photo-bytes (else "Bad Request:
PHOTO_INVALID_DIMENSIONS"). Answers are the Bot API's shapes:
{"ok":true,"result":{message}} and {"ok":false,"error_code":N,
"description":"...","parameters":{"retry_after":S}}.
"""
import argparse
import base64
import hashlib
import json
import os
import re
import sys
import time
from urllib.parse import parse_qsl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeserver  # noqa: E402

METHODS = ("sendPhoto", "sendMessage")
CAPTION_MAX = 1024
TEXT_MAX = 4096
MAX_BODY = 64 * 1024 * 1024
DEFAULT_TOKEN = "123456:TEST-token_abc"
DESCRIPTIONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden: bot was blocked by "
                "the user", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway",
                503: "Service Unavailable"}
FAULT_KEYS = {"method", "chat_id", "count", "status", "description", "retry_after",
              "migrate_to_chat_id", "delay_ms", "body"}


class ParseError(Exception):
    pass


def utf16_len(s):
    return sum(2 if ord(c) > 0xFFFF else 1 for c in s)


def _byte_offset(text, i):
    return len(text[:i].encode("utf-8", "surrogatepass"))


# --- HTML, as https://core.telegram.org/bots/api#html-style describes it ------

HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
             "tg-spoiler", "a", "code", "pre", "blockquote", "tg-emoji"}
HTML_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|lt|gt|amp|quot);")
NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
ATTR = re.compile(r'\s+([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|\'([^\']*)\'|([^\s"\'>]+)))?')


def _entity(m):
    name = m.group(1)
    if name in NAMED:
        return NAMED[name]
    cp = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
    if cp == 0 or cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
        raise ParseError("Unsupported HTML entity")
    return chr(cp)


def _attrs(text, where):
    out, pos = {}, 0
    while pos < len(text):
        m = ATTR.match(text, pos)
        if not m:
            if text[pos:].strip() in ("", "/"):
                break
            raise ParseError(f"Can't parse attributes of a tag at byte offset {where}")
        out[m.group(1).lower()] = m.group(2) or m.group(3) or m.group(4) or ""
        pos = m.end()
    return out


def parse_html(text):
    """The visible text; ParseError as Telegram words it. Stricter than
    Telegram in one way: a '&' that starts no entity is an error here."""
    out, stack, i = [], [], 0
    while i < len(text):
        c = text[i]
        off = _byte_offset(text, i)
        if c == "<":
            j = text.find(">", i)
            if j < 0:
                raise ParseError(f"Unclosed start tag at byte offset {off}")
            inner = text[i + 1:j]
            if inner.startswith("/"):
                name = inner[1:].strip().lower()
                if not stack:
                    raise ParseError(f"Unexpected end tag at byte offset {off}")
                if stack[-1] != name:
                    raise ParseError(f'Unmatched end tag at byte offset {off}, expected '
                                     f'"</{stack[-1]}>", found "</{name}>"')
                stack.pop()
            else:
                m = re.match(r"([a-zA-Z][a-zA-Z0-9-]*)", inner)
                name = m.group(1).lower() if m else inner
                if name not in HTML_TAGS:
                    raise ParseError(f'Unsupported start tag "{name}" at byte offset {off}')
                attrs = _attrs(inner[m.end():], off)
                if name == "span" and attrs.get("class") != "tg-spoiler":
                    raise ParseError(f'Tag "span" must have class "tg-spoiler" at byte '
                                     f'offset {off}')
                stack.append(name)
            i = j + 1
        elif c == "&":
            m = HTML_ENTITY.match(text, i)
            if not m:
                raise ParseError(f"Unsupported HTML entity at byte offset {off}")
            out.append(_entity(m))
            i = m.end()
        else:
            out.append(c)
            i += 1
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


# --- MarkdownV2, as https://core.telegram.org/bots/api#markdownv2-style says --

MD_RESERVED = set("_*[]()~`>#+-=|{}.!")
MD_NAMES = {"bold": "Bold", "italic": "Italic", "underline": "Underline",
            "strike": "Strikethrough", "spoiler": "Spoiler", "code": "Code", "pre": "Pre",
            "link": "TextUrl"}


def _md_url(text, i):
    """text[i] == '(': the URL up to the unescaped ')'; (url, index after)."""
    url, j = [], i + 1
    while j < len(text) and text[j] != ")":
        if text[j] == "\\" and j + 1 < len(text):
            j += 1
        url.append(text[j])
        j += 1
    if j >= len(text):
        raise ParseError(f"Can't find end of a URL at byte offset {_byte_offset(text, i)}")
    return "".join(url), j + 1


def parse_markdown_v2(text):
    """The visible text; ParseError as Telegram words it. A marker closes the
    innermost entity when it is of its kind, else opens one; '__' is an
    underline, read greedily; every reserved character outside that syntax
    must be escaped."""
    out, stack, i = [], [], 0
    while i < len(text):
        c = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        top = stack[-1][0] if stack else None
        if c == "\\" and nxt and 0 < ord(nxt) < 127:
            out.append(nxt)
            i += 2
            continue
        if top in ("pre", "code"):
            if top == "pre" and text.startswith("```", i):
                stack.pop()
                i += 3
            elif top == "code" and c == "`":
                stack.pop()
                i += 1
            elif c == "\\":
                raise ParseError(f"Character '\\' is reserved and must be escaped with the "
                                 f"preceding '\\'")
            else:
                out.append(c)
                i += 1
            continue
        if c == "\\":
            raise ParseError("Character '\\' is reserved and must be escaped with the "
                             "preceding '\\'")
        if c not in MD_RESERVED:
            out.append(c)
            i += 1
            continue
        off = _byte_offset(text, i)
        kind, width = None, 1
        if c == "*":
            kind = "bold"
        elif c == "~":
            kind = "strike"
        elif c == "_":
            if top == "italic" and nxt != "_":
                kind = "italic"
            elif nxt == "_":
                kind, width = "underline", 2
            else:
                kind = "italic"
        elif c == "|" and nxt == "|":
            kind, width = "spoiler", 2
        if kind:
            if top == kind:
                stack.pop()
            else:
                stack.append((kind, off))
            i += width
            continue
        if c == "`":
            if text.startswith("```", i):
                i += 3
                m = re.match(r"[^\s`]*\n", text[i:])   # the language line
                if m:
                    i += m.end()
                stack.append(("pre", off))
            else:
                stack.append(("code", off))
                i += 1
            continue
        if c == "[" or (c == "!" and nxt == "["):
            stack.append(("link", off))
            i += 1 if c == "[" else 2
            continue
        if c == "]" and top == "link":
            stack.pop()
            i += 1
            if i < len(text) and text[i] == "(":
                _, i = _md_url(text, i)
            continue
        if c == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1                      # a block quote, to the end of the line
            continue
        raise ParseError(f"Character '{c}' is reserved and must be escaped with the "
                         f"preceding '\\'")
    if stack:
        kind, off = stack[-1]
        raise ParseError(f"Can't find end of {MD_NAMES[kind]} entity at byte offset {off}")
    return "".join(out)


def parse_entities(text, mode):
    mode = (mode or "").strip()
    if mode == "":
        return text
    if mode == "HTML":
        return parse_html(text)
    if mode == "MarkdownV2":
        return parse_markdown_v2(text)
    if mode == "Markdown":          # legacy; no check beyond the markers pairing up
        return text.replace("*", "").replace("_", "").replace("`", "")
    raise ValueError(f"unsupported parse_mode {mode!r}")


# --- state ------------------------------------------------------------------

class State(fakeserver.State):
    def reset(self):
        with self.lock:
            self.token = self.args.token
            self.chats = [c.strip() for c in self.args.chats.split(",") if c.strip()]
            self.max_photo_bytes = self.args.max_photo_bytes
            self.seq = 0
            self.message_ids = {}
            self.requests = []
            self.faults = []

    def take_fault(self, method, chat_id):
        with self.lock:
            for f in self.faults:
                if f["method"] not in (method, "*"):
                    continue
                if f.get("chat_id") is not None and f["chat_id"] != chat_id:
                    continue
                if f["count"] is not None:
                    f["count"] -= 1
                    if f["count"] <= 0:
                        self.faults.remove(f)
                f["hits"] += 1
                return dict(f)
        return None


def parse_fault(b):
    unknown = set(b) - FAULT_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; known: {sorted(FAULT_KEYS)}")
    method = b.get("method", "*")
    if method not in METHODS + ("*",):
        raise ValueError(f"'method' must be one of {', '.join(METHODS)}, *")
    count = b.get("count", 1)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise ValueError("'count' must be an integer (<= 0 or null: forever)")
    status = b.get("status", 429)
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError("'status' must be an HTTP status")
    for key in ("retry_after", "migrate_to_chat_id", "delay_ms"):
        if key in b and (not isinstance(b[key], int) or isinstance(b[key], bool)):
            raise ValueError(f"'{key}' must be an integer")
    f = {"method": method, "count": None if count is None or count <= 0 else count,
         "status": status, "hits": 0,
         "chat_id": None if b.get("chat_id") is None else str(b["chat_id"])}
    for key in ("description", "retry_after", "migrate_to_chat_id", "delay_ms", "body"):
        if key in b:
            f[key] = b[key]
    return f


class ApiError(Exception):
    def __init__(self, status, description, parameters=None):
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters


class RawAnswer(Exception):
    """A scripted answer that is not the API's JSON (a proxy's error page)."""

    def __init__(self, status, body):
        super().__init__(status)
        self.status, self.body = status, body


def bad(description):
    return ApiError(400, "Bad Request: " + description)


class Handler(fakeserver.Handler):
    server_version = "FakeTelegram/1.0"

    def _handle(self):
        path, _, query = self.path.partition("?")
        try:
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                raise ValueError(f"body larger than {MAX_BODY} bytes")
            body = self.rfile.read(n) if n > 0 else b""
            if path.startswith("/_fake/"):
                return self._control(path, query, body)
            self._api(path, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except ValueError as e:
            self.close_connection = True
            self._send_json(400, {"ok": False, "error_code": 400, "description": str(e)})

    # --- the Bot API ----------------------------------------------------------

    def _api(self, path, body):
        st = self.state
        m = re.fullmatch(r"/bot([^/]*)/([A-Za-z]+)", path)
        rec = {"time": time.time(), "http_method": self.command,
               "method": m.group(2) if m else None, "token_ok": False,
               "content_type": self.headers.get("Content-Type", ""), "status": None}
        try:
            with st.lock:
                token = st.token
            if not m or m.group(1) != token:
                raise ApiError(401, "Unauthorized")
            rec["token_ok"] = True
            if m.group(2) not in METHODS or self.command not in ("POST", "GET"):
                raise ApiError(404, "Not Found")
            fields = self._fields(body)
            self._describe(rec, fields)
            result = self._method(m.group(2), fields, rec)
            rec["status"] = 200
            st.record(rec)
            self._log(rec)
            self._send_json(200, {"ok": True, "result": result})
        except RawAnswer as e:
            rec["status"], rec["description"] = e.status, "(raw body)"
            st.record(rec)
            self._log(rec)
            self._send(e.status, e.body.encode(), "text/html")
        except ApiError as e:
            rec["status"], rec["description"] = e.status, e.description
            st.record(rec)
            self._log(rec)
            out = {"ok": False, "error_code": e.status, "description": e.description}
            if e.parameters:
                out["parameters"] = e.parameters
            self._send_json(e.status, out)

    def _log(self, rec):
        sys.stderr.write(f"fake_telegram {rec['method']} chat={rec.get('chat_id')} "
                         f"status={rec['status']} {rec.get('description', '')}\n")

    def _fields(self, body):
        """Every field as {"data": bytes|value, "filename", "content_type"}."""
        ctype = self.headers.get("Content-Type", "")
        low = ctype.lower()
        if low.startswith("multipart/form-data"):
            fields = fakeserver.parse_form(ctype, body)
            if fields is None:
                raise ValueError("a multipart body without parts")
            return fields
        if low.startswith("application/json"):
            try:
                obj = json.loads(body or b"{}")
            except ValueError:
                raise bad("can't parse JSON object") from None
            if not isinstance(obj, dict):
                raise bad("JSON object expected")
            return {k: {"data": v, "filename": None, "content_type": "json"}
                    for k, v in obj.items()}
        if low.startswith("application/x-www-form-urlencoded") or not body:
            return {k: {"data": v, "filename": None, "content_type": "text/plain"}
                    for k, v in parse_qsl(body.decode("utf-8", "replace"))}
        raise bad(f"unsupported Content-Type {ctype!r}")

    @staticmethod
    def _text(fields, name):
        f = fields.get(name)
        if f is None:
            return None
        v = f["data"]
        if isinstance(v, bytes):
            try:
                return v.decode("utf-8")
            except UnicodeDecodeError:
                raise bad(f"{name} must be encoded in UTF-8") from None
        if isinstance(v, bool):
            return "true" if v else "false"
        return v if isinstance(v, str) else json.dumps(v) if isinstance(v, dict) else str(v)

    def _describe(self, rec, fields):
        """What the request carried, for GET /_fake/requests."""
        preview = fields.get("link_preview_options")
        lp = self._text(fields, "link_preview_options") if preview else None
        try:
            lp_disabled = bool(json.loads(lp).get("is_disabled")) if lp else False
        except (ValueError, AttributeError):
            lp_disabled = False
        rec.update({"chat_id": self._text(fields, "chat_id"),
                    "parse_mode": self._text(fields, "parse_mode"),
                    "caption": self._text(fields, "caption"),
                    "text": self._text(fields, "text"),
                    "disable_notification": self._text(fields, "disable_notification"),
                    "link_preview_disabled": lp_disabled or
                    self._text(fields, "disable_web_page_preview") == "true",
                    "fields": sorted(fields)})
        photo = fields.get("photo")
        if photo is not None and isinstance(photo["data"], bytes) and photo["filename"]:
            rec["photo"] = {"len": len(photo["data"]),
                            "sha256": hashlib.sha256(photo["data"]).hexdigest(),
                            "filename": photo["filename"],
                            "content_type": photo["content_type"],
                            "b64": base64.b64encode(photo["data"]).decode()}
        else:
            rec["photo"] = None

    def _method(self, method, fields, rec):
        st = self.state
        chat = rec["chat_id"]
        if not chat:
            raise bad("chat_id is empty")
        with st.lock:
            known = chat in st.chats
            max_photo = st.max_photo_bytes
        if not known:
            raise bad("chat not found")
        fault = st.take_fault(method, chat)
        if fault:
            self._fault(fault)
        mode = rec["parse_mode"]
        if mode not in (None, "", "HTML", "MarkdownV2", "Markdown"):
            raise bad("unsupported parse_mode")
        if rec["disable_notification"] not in (None, "true", "false", "True", "False"):
            raise bad("can't parse disable_notification")
        source = rec["caption"] if method == "sendPhoto" else rec["text"]
        try:
            visible = parse_entities(source or "", mode)
        except ParseError as e:
            raise bad(f"can't parse entities: {e}") from None
        rec["parsed_text"] = visible
        if method == "sendPhoto":
            if utf16_len(visible) > CAPTION_MAX:
                raise bad("message caption is too long")
            self._check_photo(fields.get("photo"), max_photo)
        else:
            if not visible.strip():
                raise bad("message text is empty")
            if utf16_len(visible) > TEXT_MAX:
                raise bad("message is too long")
        return self._message(method, chat, visible, rec)

    @staticmethod
    def _check_photo(photo, max_photo):
        if photo is None:
            raise bad("there is no photo in the request")
        if not photo["filename"] or not isinstance(photo["data"], bytes):
            raise bad("wrong remote file identifier specified: Wrong string length")
        data = photo["data"]
        if not data.startswith(b"\xff\xd8\xff"):
            raise bad("IMAGE_PROCESS_FAILED")
        if len(data) > max_photo:
            raise bad("PHOTO_INVALID_DIMENSIONS")

    def _message(self, method, chat, visible, rec):
        st = self.state
        with st.lock:
            mid = st.message_ids.get(chat, 0) + 1
            st.message_ids[chat] = mid
        rec["message_id"] = mid
        chat_obj = ({"id": -1000000000000 - len(chat), "title": chat[1:], "username": chat[1:],
                     "type": "channel"} if chat.startswith("@")
                    else {"id": int(chat), "type": "private" if int(chat) > 0 else "supergroup"})
        msg = {"message_id": mid, "date": int(time.time()), "chat": chat_obj,
               "from": {"id": int(st.token.split(":")[0]), "is_bot": True,
                        "first_name": "vigil"}}
        if method == "sendPhoto":
            p = rec["photo"]
            msg["photo"] = [{"file_id": "AgAC" + p["sha256"][:24], "file_unique_id":
                             p["sha256"][:16], "file_size": p["len"], "width": 320,
                             "height": 240}]
            if visible:
                msg["caption"] = visible
        else:
            msg["text"] = visible
        return msg

    def _fault(self, f):
        if f.get("delay_ms"):
            self.state.stop.wait(f["delay_ms"] / 1000.0)
        status = f["status"]
        if "body" in f:
            raise RawAnswer(status, f["body"])
        params = {}
        if "retry_after" in f:
            params["retry_after"] = f["retry_after"]
        if "migrate_to_chat_id" in f:
            params["migrate_to_chat_id"] = f["migrate_to_chat_id"]
        desc = f.get("description")
        if desc is None:
            desc = (f"Too Many Requests: retry after {f.get('retry_after', 1)}"
                    if status == 429 else DESCRIPTIONS.get(status, f"HTTP {status}"))
        raise ApiError(status, desc, params or None)

    # --- control ---------------------------------------------------------------

    def _control(self, path, query, body):
        st = self.state
        q = dict(parse_qsl(query))
        obj = json.loads(body) if body.strip() else {}
        if path == "/_fake/health":
            return self._send_json(200, {"ok": True, "port": st.port})
        if path == "/_fake/reset" and self.command == "POST":
            st.reset()
            return self._send_json(200, {"ok": True})
        if path == "/_fake/requests":
            with st.lock:
                reqs = [dict(r) for r in st.requests]
            for key in ("method", "chat_id", "status"):
                if key in q:
                    reqs = [r for r in reqs if str(r.get(key)) == q[key]]
            if "since" in q:
                reqs = [r for r in reqs if r["seq"] > int(q["since"])]
            if q.get("photos") != "1":
                for r in reqs:
                    if r.get("photo"):
                        r["photo"] = {k: v for k, v in r["photo"].items() if k != "b64"}
            return self._send_json(200, {"requests": reqs})
        if path == "/_fake/fail":
            if self.command == "POST":
                f = parse_fault(obj)
                with st.lock:
                    st.faults.append(f)
                return self._send_json(200, {"ok": True, "fault": f})
            if self.command == "DELETE":
                with st.lock:
                    st.faults = []
                return self._send_json(200, {"ok": True})
            with st.lock:
                return self._send_json(200, {"faults": list(st.faults)})
        if path == "/_fake/config":
            if self.command == "POST":
                unknown = set(obj) - {"chats", "max_photo_bytes", "token"}
                if unknown:
                    raise ValueError(f"unknown keys {sorted(unknown)}")
                with st.lock:
                    if "chats" in obj:
                        st.chats = [str(c) for c in obj["chats"]]
                    if "max_photo_bytes" in obj:
                        st.max_photo_bytes = int(obj["max_photo_bytes"])
                    if "token" in obj:
                        st.token = str(obj["token"])
            with st.lock:
                return self._send_json(200, {"chats": st.chats,
                                             "max_photo_bytes": st.max_photo_bytes})
        self._send_json(404, {"ok": False, "error_code": 404, "description": "no such control"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--token", default=DEFAULT_TOKEN)
    ap.add_argument("--chats", default="", help="known chat ids, comma-separated")
    ap.add_argument("--max-photo-bytes", type=int, default=10 * 1024 * 1024)
    args = ap.parse_args()
    state = State(args)
    server = fakeserver.Server(args.port, Handler, state)
    state.port = server.port
    fakeserver.serve(server, args.port_file, f"fake_telegram listening on 127.0.0.1:{server.port}",
                     on_stop=state.stop.set)
    return 0


if __name__ == "__main__":
    sys.exit(main())
