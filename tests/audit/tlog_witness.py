"""A small C2SP tlog-witness on loopback for the tests: ``POST /add-checkpoint`` checks the log's
note signature, the old size against the one it cosigned last (409 with ``text/x.tlog.size``),
the consistency proof (422), and answers with a ``cosignature/v1`` line."""

from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vern.audit import note
from vern.audit.merkle import verify_consistency


class Witness:
    def __init__(self, log_vkey: str, name: str = "witness.example.com/w1") -> None:
        self.log = note.Verifier.parse(log_vkey)
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        self.vkey = note.vkey(name, note.raw_public(self.key.public_key()), note.COSIGNATURE_V1)
        self.size = 0
        self.root: bytes | None = None
        self.requests: list[tuple[int, int]] = []  # (old, status)
        self._lock = threading.Lock()
        witness = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                status, ctype, answer = witness.add(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, path: str, body: str) -> tuple[int, str, bytes]:  # noqa: PLR0911
        if path != "/add-checkpoint":
            return 404, "text/plain", b"not found\n"
        head, sep, signed = body.partition("\n\n")
        lines = head.split("\n")
        if not sep or not lines[0].startswith("old "):
            return 400, "text/plain", b"malformed\n"
        old = int(lines[0][4:])
        proof = [base64.b64decode(x) for x in lines[1:] if x]
        try:
            parsed = note.Note.parse(signed)
            cp = note.parse_checkpoint(parsed.text)
        except note.NoteError:
            return 400, "text/plain", b"malformed note\n"
        if cp.origin != self.log.name:
            return 404, "text/plain", b"unknown origin\n"
        try:
            if not parsed.verified_by(self.log):
                return 403, "text/plain", b"no trusted signature\n"
        except note.NoteError:
            return 403, "text/plain", b"bad signature\n"
        with self._lock:
            status = self._check(old, proof, cp)
            self.requests.append((old, status))
            if status == 409:
                return 409, "text/x.tlog.size", f"{self.size}\n".encode()
            if status != 200:
                return status, "text/plain", b"refused\n"
            self.size, self.root = cp.size, cp.root
        line = note.cosign(parsed.text, self.name, self.key, int(time.time()))
        return 200, "text/plain", line.encode()

    def _check(self, old: int, proof: list[bytes], cp: note.CheckpointBody) -> int:
        if old > cp.size:
            return 400
        if old != self.size:
            return 409
        if old == 0:
            return 200 if not proof else 422
        assert self.root is not None
        if old == cp.size:
            return 200 if cp.root == self.root else 409
        return 200 if verify_consistency(old, cp.size, self.root, cp.root, proof) else 422
