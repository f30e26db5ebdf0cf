"""``koco-timer notify-default`` against the composed panel served by uvicorn (real
login, real API and store), delivering its test to a real local receiver."""

from collections.abc import Iterator

import pytest

from tests.unit.test_cli_user import _serve_panel, fails, ok
from tests.unit.test_notify_default import ThreadReceiver


@pytest.fixture(scope="module")
def panel(tmp_path_factory) -> Iterator[str]:
    # the receiver is on loopback: the panel's settings (read at its start) allow it
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KODO_TIMER_NOTIFY_ALLOW", "http://127.0.0.1")
        yield from _serve_panel(tmp_path_factory.mktemp("panel"))


@pytest.fixture
def logged_in(panel, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("KODO_TIMER_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.delenv("KODO_TIMER_PANEL_URL", raising=False)
    ok("login", "--url", panel, "--name", "admin", "--password", "admin")
    return panel


@pytest.fixture
def receiver() -> Iterator[ThreadReceiver]:
    r = ThreadReceiver()
    yield r
    r.close()


def test_set_show_test_rotate_remove(logged_in, receiver):
    assert "no default notification" in ok("notify-default")
    out = ok("notify-default", "--to", receiver.url, "--events", "error,missed")
    assert receiver.url in out and "error, missed" in out
    assert "secret" in out and "shown only now" in out
    shown = ok("notify-default")
    assert receiver.url in shown and "secret" not in shown
    assert "delivered" in ok("notify-default", "--test")
    assert len(receiver.got) == 1 and receiver.got[0][1]["X-Kodosumi-Event"] == "test"
    receiver.script = [500]
    assert fails("notify-default", "--test") == "Error: not delivered: HTTP 500"
    assert "shown only now" in ok("notify-default", "--rotate")
    assert "removed" in ok("notify-default", "--remove")
    assert "no default notification" in ok("notify-default")
    assert "no default notification" in fails("notify-default", "--remove")


def test_bad_input_names_the_option(logged_in):
    assert fails("notify-default", "--to", "ftp://x.example/") == \
        "Error: --to: must be an http:// or https:// URL"
    assert fails("notify-default", "--to", "http://10.1.2.3/") .startswith("Error: --to: ")
    assert fails("notify-default", "--to", "https://x.example/", "--events", "boom") == \
        ("Error: --events: unknown event 'boom'; events are error, failed, rejected, "
         "unknown, missed, paused, finished")
    assert fails("notify-default", "--remove", "--rotate") == \
        "Error: give one of --to, --remove, --rotate, --test (not --remove and --rotate)"
    assert fails("notify-default", "--events", "error") == "Error: --events goes with --to URL"


def test_the_page_and_the_bell_render(panel):
    import httpx

    key = httpx.post(f"{panel}/api/login", json={"name": "admin", "password": "admin"}
                     ).json()["KODOSUMI_API_KEY"]
    with httpx.Client(base_url=panel, headers={"KODOSUMI_API_KEY": key}) as web:
        listing = web.get("/admin/schedule/")
        assert 'id="notify-default-link"' in listing.text
        page = web.get("/admin/schedule/notify")
        assert page.status_code == 200
        assert 'id="nd-form"' in page.text and 'data-set="no"' in page.text
        assert 'value="finished">' in page.text  # every event has its box


def test_a_schedule_page_says_it_notifies_by_the_default(panel):
    import httpx

    from tests.unit.factories import FLOW

    key = httpx.post(f"{panel}/api/login", json={"name": "admin", "password": "admin"}
                     ).json()["KODOSUMI_API_KEY"]
    with httpx.Client(base_url=panel, headers={"KODOSUMI_API_KEY": key}) as web:
        made = web.post("/schedule/", json={"flow_url": FLOW, "schedule_type": "cron",
                                            "cron_expression": "0 9 * * 1", "inputs": {}})
        assert made.status_code == 201, made.text
        page = f"/admin/schedule/{made.json()['id']}"
        assert 'id="notify-default"' not in web.get(page).text
        hook = "https://hooks.example/default"
        assert web.put("/schedule/notify-default", json={"url": hook}).status_code == 200
        try:
            shown = web.get(page).text
            assert 'id="notify-default"' in shown and hook in shown
            assert "by your" in shown
        finally:
            web.delete("/schedule/notify-default")
