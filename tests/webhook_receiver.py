"""A real HTTP receiver for the outgoing webhooks' tests (issue 18 W): a
ThreadingHTTPServer on 127.0.0.1, port 0, in a thread, with configurable answers."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A real HTTP server on 127.0.0.1 (port 0), in a thread. Each POST is recorded (headers,
    body) and answered with the next of `answers` (then `default`): a status code, or
    "sleep" (hold the request `sleep` seconds, past the sender's timeout)."""

    def __init__(self):
        self.answers: list = []
        self.default = 200
        self.sleep = 1.0
        self.received: list[tuple[dict, bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.received.append((dict(self.headers.items()), body))
                    answer = receiver.answers.pop(0) if receiver.answers else receiver.default
                if answer == "sleep":
                    time.sleep(receiver.sleep)
                    answer = 200
                try:
                    self.send_response(answer)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
