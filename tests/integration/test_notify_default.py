"""A failing schedule without a notify of its own notifies by its owner's default: a
signed delivery reaches a local receiver, on the real stack."""

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


def test_a_failing_schedule_notifies_by_the_owners_default(stack, new_user):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        user = new_user("defaulted")
        url = f"http://127.0.0.1:{server.server_address[1]}/default"
        r = user.client.put("/schedule/notify-default", json={"url": url, "events": ["error"]})
        assert r.status_code == 200, r.text
        secret = r.json()["secret"]
        created = schedule_once(user, stack.flows["failing"], 2, inputs={})
        assert created["notify"] is None
        started = time.monotonic()

        def errors() -> list[tuple[bytes, dict[str, str]]]:
            return [g for g in _Receiver.got if g[1].get("X-Kodosumi-Event") == "error"]
        try:  # the notifier reads runs ended since its last step; a sweep every ~60 s
            raw, headers = poll(lambda: errors()[0] if errors() else None, 120,
                                "the notification by the default")
        except AssertionError as exc:  # say what the timer recorded, for the next look
            runs = user.client.get(f"/schedule/{created['id']}/runs").json()["items"]
            raise AssertionError(f"{exc}; the runs: {runs}") from None
        print(f"notified by the default {time.monotonic() - started:.1f} s after the "
              "schedule was made (its slot 2 s after)")
        assert signing.verify(secret, raw, headers[signing.HEADER])
        body = json.loads(raw)
        assert body["notify_source"] == "default" and body["event"] == "error"
        assert body["schedule_id"] == created["id"] and body["owner"] == user.role_id
        assert body["fid"] and body["links"]["execution"].endswith(body["fid"])

        def delivered():  # type: ignore[no-untyped-def]
            runs = user.client.get(f"/schedule/{created['id']}/runs").json()["items"]
            sent = runs[0]["notifications"] if runs else []
            return sent if sent and sent[0]["status"] == "delivered" else None
        sent = poll(delivered, 10, "the delivery recorded")[0]
        assert sent["source"] == "default" and sent["event"] == "error"
        assert len(errors()) == 1
        # the test delivery goes the same way, signed with the same secret
        answer = user.client.post("/schedule/notify-default/test").json()
        assert answer["delivered"] is True, answer
        raw, headers = _Receiver.got[-1]
        assert headers["X-Kodosumi-Event"] == "test"
        assert signing.verify(secret, raw, headers[signing.HEADER])
        # the schedule's page says where it notifies
        page = user.client.get(f"/admin/schedule/{created['id']}").text
        assert 'id="notify-default"' in page and url in page
    finally:
        server.shutdown()
        server.server_close()
