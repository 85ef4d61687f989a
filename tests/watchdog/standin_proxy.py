"""A stand-in for `podmgr proxy` in watchdog tests: answers GET /health like the proxy.

Run as `python standin_proxy.py proxy --config PATH`; it reads proxy_port from the config
file and reports `last_request_at` from the file `last_request_at` beside the config
(missing: null), so a test can play "a client made a request at time T".
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    config_path = Path(sys.argv[sys.argv.index("--config") + 1])
    port = int(json.loads(config_path.read_text()).get("proxy_port", 8000))
    marker = config_path.parent / "last_request_at"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            last = float(marker.read_text()) if marker.exists() else None
            body = json.dumps({"status": "ok", "pid": os.getpid(), "last_request_at": last})
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_args: object) -> None:
            return

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
