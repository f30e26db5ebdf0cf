"""The default notification page in Chromium against the real stack: the bell on the
list, a bad URL named, save (the secret shown once), send a test to a real local
receiver, the schedule page's "by your default", remove. Screenshots light, dark and on
a phone into $KODO_TIMER_SCREENSHOTS/issue-12 when that is set."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from kodosumi_timer.notify import signing
from tests.integration.test_run_later import INPUTS

pytestmark = pytest.mark.e2e

# read by the session stack's panel when it starts (after collection)
os.environ.setdefault("KODO_TIMER_NOTIFY_ALLOW", "http://127.0.0.1")
SHOTS = os.environ.get("KODO_TIMER_SCREENSHOTS")
SETTLED = """() => Promise.all(document.getAnimations()
    .filter(a => a.effect && a.effect.getTiming().iterations !== Infinity)
    .map(a => a.finished))"""


class _Receiver(BaseHTTPRequestHandler):
    got: list[tuple[bytes, dict[str, str]]] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server name)
        raw = self.rfile.read(int(self.headers["content-length"]))
        type(self).got.append((raw, dict(self.headers)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _shot(page: Page, name: str, tmp_path: Path) -> None:
    page.wait_for_load_state("networkidle")
    page.evaluate(SETTLED)
    out = Path(SHOTS) / "issue-12" if SHOTS else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=out / f"notify-{name}.png", full_page=True)


def test_default_notification_page(stack, new_user, open_page, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/kodosumi"
    try:
        user = new_user("bell")
        page = open_page(user.name)
        page.goto(stack.panel_url + "/admin/schedule/")
        page.click("#notify-default-link")
        page.wait_for_url("**/admin/schedule/notify")
        expect(page.locator("#nd-state")).to_have_attribute("data-set", "no")
        expect(page.locator("#nd-test")).to_be_hidden()
        # the default events are preselected
        expect(page.locator("input[name=events][value=error]")).to_be_checked()
        expect(page.locator("input[name=events][value=finished]")).not_to_be_checked()

        page.fill("#nd-url", "http://10.1.2.3/hook")
        page.click("#nd-save")
        expect(page.locator("#err-url")).to_contain_text("private")
        assert user.client.get("/schedule/notify-default").status_code == 404

        page.fill("#nd-url", hook)
        page.click("label:has(input[value=missed])")
        page.click("label:has(input[value=paused])")  # off
        page.click("#nd-save")
        expect(page.locator("#nd-secret")).to_be_visible()
        secret = page.input_value("#nd-secret-value")
        assert len(secret) == 64
        expect(page.locator("#nd-state")).to_have_attribute("data-set", "yes")
        stored = user.client.get("/schedule/notify-default").json()
        assert stored["url"] == hook
        assert stored["events"] == ["error", "failed", "rejected", "unknown", "missed"]

        page.click("#nd-test")
        expect(page.locator("#nd-test-result")).to_contain_text("delivered:")
        raw, headers = _Receiver.got[-1]
        assert signing.verify(secret, raw, headers[signing.HEADER])
        assert json.loads(raw)["notify_source"] == "default"
        _shot(page, "light", tmp_path)
        assert page.js_errors == []  # type: ignore[attr-defined]

        # a reload shows it set, the secret no more
        page.reload()
        expect(page.locator("#nd-url")).to_have_value(hook)
        expect(page.locator("#nd-secret")).to_be_hidden()
        expect(page.locator("input[name=events][value=missed]")).to_be_checked()

        dark = open_page(user.name, theme="dark")
        dark.goto(stack.panel_url + "/admin/schedule/notify")
        expect(dark.locator("#nd-state")).to_have_attribute("data-set", "yes")
        _shot(dark, "dark", tmp_path)
        phone = open_page(user.name, theme="dark", width=390, height=844)
        phone.goto(stack.panel_url + "/admin/schedule/notify")
        _shot(phone, "phone", tmp_path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
        phone.goto(stack.panel_url + "/admin/schedule/")
        expect(phone.locator("#notify-default-link")).to_be_visible()
        _shot(phone, "list-phone", tmp_path)

        # a schedule without a notify of its own says it notifies by the default
        created = user.client.post("/schedule/", json={
            "flow_url": stack.flows["quick"], "schedule_type": "cron",
            "cron_expression": "0 9 * * 1", "timezone": "Europe/Berlin",
            "title": "Weekly digest", "inputs": INPUTS})
        assert created.status_code == 201, created.text
        page.goto(stack.panel_url + f"/admin/schedule/{created.json()['id']}")
        expect(page.locator("#notify-default")).to_contain_text(hook)
        expect(page.locator("#notify-default")).to_contain_text("by your default")
        _shot(page, "detail-light", tmp_path)

        page.goto(stack.panel_url + "/admin/schedule/notify")
        page.click("#nd-remove")
        page.click("#sched-confirm .dialog-ok")
        expect(page.locator("#nd-state")).to_have_attribute("data-set", "no")
        assert user.client.get("/schedule/notify-default").status_code == 404
        assert page.js_errors == []  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
