"""A local SMTP server that keeps nothing but a line per message delivered to it: the load
test's mail server (MAIL_SERVER/MAIL_PORT of both instances), so the checks can tell that
each outbox message was delivered exactly once, whichever instance's jobs sent it.

    python bench/smtp_sink.py PORT DELIVERIES.jsonl

Each line: {"message_id": "<outbox-…>", "to": [...], "bytes": N}. Stops on SIGTERM/SIGINT.
"""

import json
import signal
import sys
import threading
from email.parser import BytesHeaderParser

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, path: str):
        self.out = open(path, "a", buffering=1)  # noqa: SIM115 (open while serving)
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        headers = BytesHeaderParser().parsebytes(envelope.original_content or b"")
        line = json.dumps({"message_id": headers.get("Message-ID", ""),
                           "to": list(envelope.rcpt_tos),
                           "bytes": len(envelope.original_content or b"")})
        with self.lock:
            self.out.write(line + "\n")
        return "250 Message accepted"


def main(port: int, path: str) -> None:
    controller = Controller(Sink(path), hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"smtp sink on 127.0.0.1:{port}", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(int(sys.argv[1]), sys.argv[2])
