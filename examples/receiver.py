"""A tiny destination for the README tour: prints every request auditrelay sends it.

    python3 examples/receiver.py 9000
"""

import http.server
import sys


class PrintingReceiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        token = self.headers.get("X-Auditrelay-Streaming-Token")
        print(f"POST {self.path} (verification token {token}):\n{body.decode(errors='replace')}\n", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
http.server.ThreadingHTTPServer(("127.0.0.1", port), PrintingReceiver).serve_forever()
