"""The HTTP model store: the registry read-only (what ``model_uri`` names), and the intake.

The sample intake (``POST /v1/samples``, ``cloud_trainer.samples``) runs when given one.

Each file is served with its exact ``Content-Length`` and a strong ``ETag`` of its sha256.
Single byte ranges are honoured (``206`` with ``Content-Range``) so an interrupted download
can resume; ``If-Range`` with another ETag gets the whole file, so a client can never stitch
a file from mismatched parts. Multi-range requests get the whole file.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cloud_trainer.samples import SampleIntake
from edgeinfer.intake import INTAKE_PATH

_LOGGER = logging.getLogger(__name__)


@lru_cache(maxsize=256)
def _sha256(path: Path, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


UNSATISFIABLE = (-1, -1)


def byte_range(
    header: str | None, if_range: str | None, etag: str, size: int
) -> tuple[int, int] | None:
    """The inclusive byte span a ``Range`` header asks for.

    Returns:
        ``None`` to send the whole file (no, malformed or multi-range header, or an
        ``If-Range`` naming another version), ``UNSATISFIABLE`` for a range past the end,
        else ``(first, last)``.
    """
    if not header or (if_range is not None and if_range.strip() != etag):
        return None
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first_text:  # suffix range: the last N bytes
            count = int(last_text)
            return (max(size - count, 0), size - 1) if count > 0 and size else UNSATISFIABLE
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first >= size:
        return UNSATISFIABLE
    if last < first:
        return None
    return first, min(last, size - 1)


class ModelStore:
    """Serves ``root`` over HTTP on a background thread while open.

    Args:
        root: The registry directory.
        host: Bind address.
        port: Bind port; 0 picks a free one.
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        intake: SampleIntake | None = None,
    ) -> None:
        self._root = root.resolve()
        root_dir = self._root

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                _LOGGER.debug(format, *args)

            def _resolve(self) -> Path | None:
                relative = self.path.split("?", 1)[0].lstrip("/")
                candidate = (root_dir / relative).resolve()
                if root_dir not in candidate.parents or not candidate.is_file():
                    return None
                if any(part.startswith(".") for part in candidate.relative_to(root_dir).parts):
                    return None  # staging directories and hidden files are not published
                return candidate

            def _respond(self, *, body: bool) -> None:
                path = self._resolve()
                if path is None:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                stat = path.stat()
                etag = f'"{_sha256(path, stat.st_mtime_ns, stat.st_size)}"'
                span = byte_range(
                    self.headers.get("Range"), self.headers.get("If-Range"), etag, stat.st_size
                )
                if span == UNSATISFIABLE:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{stat.st_size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, end = span or (0, stat.st_size - 1)
                self.send_response(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK)
                if span:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{stat.st_size}")
                self.send_header("Content-Length", str(max(end - start + 1, 0)))
                self.send_header("ETag", etag)
                self.send_header("Accept-Ranges", "bytes")
                kind = "application/json" if path.suffix == ".json" else "application/octet-stream"
                self.send_header("Content-Type", kind)
                self.end_headers()
                if not body:
                    return
                with path.open("rb") as handle:
                    handle.seek(start)
                    remaining = end - start + 1
                    while remaining > 0 and (chunk := handle.read(min(1 << 16, remaining))):
                        self.wfile.write(chunk)
                        remaining -= len(chunk)

            def do_HEAD(self) -> None:
                self._respond(body=False)

            def do_GET(self) -> None:
                self._respond(body=True)

            def do_POST(self) -> None:
                if intake is None or self.path.split("?", 1)[0] != INTAKE_PATH:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                if not intake.authorized(self.headers.get("Authorization")):
                    self._answer(HTTPStatus.UNAUTHORIZED, "a bearer token is required")
                    return
                length = self.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    self._answer(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
                    return
                if int(length) > intake.max_bytes:
                    self.close_connection = True  # the body is not read
                    self._answer(
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"larger than {intake.max_bytes}"
                    )
                    return
                status, text = intake.accept(self.rfile.read(int(length)))
                self._answer(status, text)

            def _answer(self, status: HTTPStatus, text: str) -> None:
                body = (text + "\n").encode()
                self.send_response(status)
                if status == HTTPStatus.UNAUTHORIZED:
                    self.send_header("WWW-Authenticate", "Bearer")
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="model-store", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def manifest_uri(self, name: str, version: str) -> str:
        """The ``model_uri`` of a version."""
        return f"{self.url}/{name}/{version}/manifest.json"

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop``."""
        self._server.serve_forever()
