"""A failing schedule's notification reaches a local receiver, signed, on the real stack."""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kodosumi_timer.notify import signing
from tests.integration.test_run_later import poll, schedule_once

pytestmark = pytest.mark.integration

# read by the session stack's panel and timer when it starts (after collection): the
# receiver below listens on 127.0.0.1, which is refused unless allowed
os.environ.setdefault("KODO_TIMER_NOTIFY_ALLOW", "http://127.0.0.1")


class _Receiver(BaseHTTPRequestHandler):
    got: list[tuple[bytes, dict[str, str]]] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server name)
        raw = self.rfile.read(int(self.headers["content-length"]))
        type(self).got.append((raw, dict(self.headers)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_an_error_is_notified_once_signed(stack, new_user):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        user = new_user("notified")
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        created = schedule_once(user, stack.flows["failing"], 2, inputs={},
                                notify={"url": url, "events": ["error"]})
        secret = created["notify"]["secret"]
        started = time.monotonic()
        raw, headers = poll(lambda: _Receiver.got[0] if _Receiver.got else None, 60,
                            "the notification")
        print(f"notified {time.monotonic() - started:.1f} s after the schedule was made")
        assert signing.verify(secret, raw, headers[signing.HEADER])
        body = json.loads(raw)
        assert body["event"] == "error" and body["schedule_id"] == created["id"]
        assert body["fid"] and body["links"]["execution"].endswith(body["fid"])

        def delivered():  # type: ignore[no-untyped-def]
            runs = user.client.get(f"/schedule/{created['id']}/runs").json()["items"]
            sent = runs[0]["notifications"] if runs else []
            return sent if sent and sent[0]["status"] == "delivered" else None
        assert poll(delivered, 10, "the delivery recorded")[0]["event"] == "error"
        assert len(_Receiver.got) == 1
    finally:
        server.shutdown()
        server.server_close()
