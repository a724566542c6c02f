"""The HTTP model store: serves the registry read-only (what the runtime's ``model_uri`` names).

Each file is served with its exact ``Content-Length`` and an ``ETag`` of its sha256; the
whole file is always returned (``Range`` is ignored, so a client can never stitch a file
from mismatched parts).
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

_LOGGER = logging.getLogger(__name__)


@lru_cache(maxsize=256)
def _sha256(path: Path, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ModelStore:
    """Serves ``root`` over HTTP on a background thread while open.

    Args:
        root: The registry directory.
        host: Bind address.
        port: Bind port; 0 picks a free one.
    """

    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
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

            def _headers(self, path: Path) -> None:
                stat = path.stat()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Length", str(stat.st_size))
                self.send_header("ETag", f'"{_sha256(path, stat.st_mtime_ns, stat.st_size)}"')
                self.send_header("Accept-Ranges", "none")
                kind = "application/json" if path.suffix == ".json" else "application/octet-stream"
                self.send_header("Content-Type", kind)
                self.end_headers()

            def do_HEAD(self) -> None:
                path = self._resolve()
                if path is None:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                self._headers(path)

            def do_GET(self) -> None:
                path = self._resolve()
                if path is None:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                self._headers(path)
                with path.open("rb") as handle:
                    while chunk := handle.read(1 << 16):
                        self.wfile.write(chunk)

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
