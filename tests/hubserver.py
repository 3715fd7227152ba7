"""A tiny stand-in for the Hugging Face hub on 127.0.0.1: the API routes snapshot_download uses, over one
in-memory repo, with a log of every request so tests can assert that offline reuse made none."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class FakeHub:
    def __init__(
        self,
        repo: str,
        files: dict[str, bytes],
        commit: str = "c0ffee" * 6 + "abcd",
        raw: dict[str, bytes] | None = None,
        others: dict[str, dict[str, bytes]] | None = None,
    ):
        """`raw`: other files served as they are at /raw/<name> (what a GitHub raw URL would give); `others`:
        more repositories whose files are served at /<repo>/resolve/main/<name> (downloads only)."""
        self.repo, self.files, self.commit, self.raw = repo, files, commit, raw or {}
        self.others = others or {}
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub._serve(self, body=False)

            def do_GET(self):
                hub._serve(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _send(self, h, status: int, payload: bytes, headers: dict[str, str], body: bool) -> None:
        h.send_response(status)
        for k, v in {"Content-Length": str(len(payload)), **headers}.items():
            h.send_header(k, v)
        h.end_headers()
        if body:
            h.wfile.write(payload)

    def _json(self, h, obj, body: bool, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(h, status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})}, body)

    def _serve(self, h, body: bool) -> None:
        path = unquote(urlparse(h.path).path)
        self.requests.append((h.command, path))
        if path.startswith("/raw/") and path[5:] in self.raw:
            return self._send(h, 200, self.raw[path[5:]], {"Content-Type": "application/octet-stream"}, body)
        api = f"/api/models/{self.repo}/"
        if path.startswith(api + "revision/"):
            rev = path[len(api + "revision/") :]
            if rev not in ("main", self.commit):
                return self._json(h, {"error": "Invalid rev id"}, body, 404, {"X-Error-Code": "RevisionNotFound"})
            siblings = [
                {"rfilename": p, "size": len(d), "blobId": hashlib.sha1(d).hexdigest()}
                for p, d in sorted(self.files.items())
            ]
            return self._json(
                h,
                {
                    "id": self.repo,
                    "modelId": self.repo,
                    "sha": self.commit,
                    "siblings": siblings,
                    "private": False,
                    "disabled": False,
                    "tags": [],
                },
                body,
            )
        if path.startswith(api + "tree/"):
            entries = [
                {"type": "file", "path": p, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                for p, d in sorted(self.files.items())
            ]
            return self._json(h, entries, body)
        if path.startswith("/api/models/"):
            return self._json(h, {"error": "Repository not found"}, body, 404, {"X-Error-Code": "RepoNotFound"})
        for other, files in self.others.items():
            if path.startswith(f"/{other}/resolve/main/"):
                data = files.get(path[len(f"/{other}/resolve/main/") :])
                if data is None:
                    return self._json(h, {"error": "Entry not found"}, body, 404, {"X-Error-Code": "EntryNotFound"})
                return self._send(h, 200, data, {"Content-Type": "application/octet-stream"}, body)
        prefix = f"/{self.repo}/resolve/"
        if path.startswith(prefix):
            rev, _, name = path[len(prefix) :].partition("/")
            data = self.files.get(name)
            if data is None or rev not in ("main", self.commit):
                return self._json(h, {"error": "Entry not found"}, body, 404, {"X-Error-Code": "EntryNotFound"})
            etag = hashlib.sha1(data).hexdigest()
            return self._send(
                h,
                200,
                data,
                {"X-Repo-Commit": self.commit, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"},
                body,
            )
        return self._json(h, {"error": "not found"}, body, 404)
