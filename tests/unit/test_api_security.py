"""Limits and cross-site protection of the schedule API."""

import pytest

from tests.unit.conftest import ALICE, once, token


async def test_inputs_over_256_kb_are_refused(api):
    big = {"blob": "x" * (256 * 1024)}
    r = await api.post("/schedule/", json=once(inputs=big), headers=token(ALICE))
    assert r.status_code == 422 and r.json()["field"] == "inputs"
    assert "256 KB" in r.json()["detail"]
    assert (await api.get("/schedule/", headers=token(ALICE))).json()["total"] == 0


def cookie(role_id: str) -> dict[str, str]:
    return {"kodosumi_jwt": token(role_id)["KODOSUMI_API_KEY"]}


async def test_cookie_requests_from_another_site_cannot_change_schedules(api):
    sid = (await api.post("/schedule/", json=once(), headers=token(ALICE))).json()["id"]
    api.cookies.update(cookie(ALICE))
    try:
        # the same browser session, from a foreign page
        r = await api.post(f"/schedule/{sid}/pause", headers={"sec-fetch-site": "cross-site",
                                                              "origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        r = await api.post(f"/schedule/{sid}/trigger", headers={"origin": "https://evil.example"})
        assert r.status_code == 403
        # an HTML form post (no CORS preflight) is refused even from an unknown origin
        r = await api.post("/schedule/", content=b"flow_url=x",
                           headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 422
        state = (await api.get(f"/schedule/{sid}")).json()["state"]
        assert state == "active"
        # the panel's own pages (same origin) still work with the cookie
        host = "testserver.local"
        r = await api.post(f"/schedule/{sid}/pause", headers={
            "sec-fetch-site": "same-origin", "origin": f"http://{host}", "host": host})
        assert r.status_code == 200, r.text
    finally:
        api.cookies.clear()


async def test_reading_with_a_cookie_is_fine(api):
    api.cookies.update(cookie(ALICE))
    try:
        r = await api.get("/schedule/", headers={"sec-fetch-site": "cross-site"})
        assert r.status_code == 200
    finally:
        api.cookies.clear()


async def test_garbage_token_is_401_without_details(api):
    r = await api.get("/schedule/", headers={"KODOSUMI_API_KEY": "not-a-token"})
    assert r.status_code == 401
    assert "Traceback" not in r.text


ROUTES = [("get", ""), ("put", ""), ("post", "/pause"), ("post", "/resume"),
          ("post", "/trigger"), ("get", "/runs"), ("delete", "")]
CAROL = "9a1f3f3e-1111-4c4c-8888-2b2b2b2b2b2b"  # deactivated in the fixture


@pytest.mark.parametrize("method, suffix", ROUTES)
@pytest.mark.parametrize("who, expected", [
    ("owner", {200, 202, 204, 409}),
    ("other", {404}),
    ("operator", {200, 202, 204, 409}),
    ("none", {401}),
    ("garbage", {401}),
    ("deactivated", {401}),
])
async def test_access_matrix(api, method, suffix, who, expected):
    from tests.unit.conftest import BOB, OPERATOR

    created = (await api.post("/schedule/", json=once(title="Secret plan"),
                              headers=token(ALICE))).json()
    api.app.state["kodosumi_timer"].roles.states[CAROL] = "inactive"
    headers = {"owner": token(ALICE), "other": token(BOB), "operator": token(OPERATOR),
               "none": {}, "garbage": {"KODOSUMI_API_KEY": "garbage"},
               "deactivated": token(CAROL)}[who]
    kwargs = {"json": {"version": created["version"], "title": "x"}} if method == "put" else {}
    r = await getattr(api, method)(f"/schedule/{created['id']}{suffix}", headers=headers,
                                   **kwargs)
    assert r.status_code in expected, (who, method, suffix, r.status_code, r.text)
    if who not in ("owner", "operator"):
        assert ALICE not in r.text and "Secret plan" not in r.text
    # the list never shows someone else's schedule
    if who in ("other", "deactivated", "none", "garbage"):
        listed = await api.get("/schedule/", headers=headers)
        assert "Secret plan" not in listed.text
