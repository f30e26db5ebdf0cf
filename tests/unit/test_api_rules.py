"""Issue 13 through the API: interval rules, dates left out, DST policy, jitter, timeout,
pausing after failures, the new overlaps and rules in words, on create, on update and in
the preview; each bad value a 422 naming its field, nothing written."""

import pytest

from tests.unit.conftest import ALICE, token
from tests.unit.test_api_manage import create, cron

# T0 is Monday 2027-03-01 08:00 UTC


def interval(**over):
    body = {"flow_url": cron()["flow_url"], "schedule_type": "interval", "every": "90m",
            "timezone": "Europe/Berlin", "inputs": {"message": "tick"}}
    body.update(over)
    return body


async def test_an_interval_counts_from_its_creation_in_elapsed_time(api):
    s = await create(api, interval())
    assert (s["schedule_type"], s["every"], s["anchor"]) == \
        ("interval", "90m", "2027-03-01T08:00:00Z")
    assert s["next_run"] == "2027-03-01T09:30:00Z"  # one interval after it was saved
    assert s["cron_expression"] is None and s["run_at"] is None


async def test_an_interval_anchor_is_wall_time_in_the_zone_and_seconds_are_accepted(api):
    s = await create(api, interval(every=7200, anchor="2027-03-01T10:15:00"))
    assert (s["every"], s["anchor"], s["next_run"]) == \
        ("2h", "2027-03-01T09:15:00Z", "2027-03-01T09:15:00Z")  # 10:15 CET
    past = await create(api, interval(every="1h30m", anchor="2027-02-28T00:00:00Z"))
    # 2027-02-28 00:00 + k * 90 min: the first after 08:00 is 09:00
    assert past["next_run"] == "2027-03-01T09:00:00Z" and past["every"] == "90m"


@pytest.mark.parametrize("over, field, words", [
    ({"every": "5s"}, "every", "at least every 10 seconds"),
    ({"every": "soon"}, "every", "not a duration"),
    ({"every": 400 * 86400}, "every", "at most every 366 days"),
    ({"every": None}, "every", "required"),
    ({"cron_expression": "* * * * *"}, "cron_expression", "interval schedule takes every"),
    ({"run_at": "2027-03-02T09:00:00"}, "run_at", "takes every, not run_at"),
    ({"anchor": "tomorrow"}, "anchor", "ISO 8601"),
    ({"jitter": -1}, "jitter", ""),
    ({"jitter": 86401}, "jitter", ""),
    ({"timeout": 0}, "timeout", ""),
    ({"pause_after_failures": 0}, "pause_after_failures", ""),
    ({"overlap": "queue"}, "overlap", ""),
    ({"exclude_dates": ["2027-13-01"]}, "exclude_dates", ""),
    ({"dst_policy": {"gap": "later"}}, "dst_policy", ""),
    ({"dst_policy": {"jump": "skip"}}, "dst_policy", ""),
    ({"schedule_type": None}, "schedule_type", "required"),
])
async def test_bad_rule_fields_are_refused_naming_the_field(api, over, field, words):
    r = await api.post("/schedule/", json=interval(**over), headers=token(ALICE))
    assert r.status_code == 422, r.text
    assert r.json()["field"].split(".")[0] == field and words in r.json()["detail"], r.json()
    assert "Value error" not in r.json()["detail"]  # pydantic's wording stays inside
    assert (await api.get("/schedule/", headers=token(ALICE))).json()["total"] == 0


async def test_excluded_dates_are_jumped_in_the_schedules_zone(api):
    # weekdays at 09:00 Berlin; Tuesday 2 and Wednesday 3 March left out
    s = await create(api, cron(exclude_dates=["2027-03-03", "2027-03-02", "2027-03-02"]))
    assert s["exclude_dates"] == ["2027-03-02", "2027-03-03"]
    assert s["next_run"] == "2027-03-04T08:00:00Z"
    r = await api.post("/schedule/", json=cron(schedule_type="once", cron_expression=None,
                                               run_at="2027-03-05T09:00:00",
                                               exclude_dates=["2027-03-05"]),
                       headers=token(ALICE))
    assert r.status_code == 422 and r.json()["field"] == "exclude_dates"


async def test_the_new_settings_are_stored_and_shown(api):
    s = await create(api, cron(dst_policy={"gap": "skip"}, jitter=30, timeout=600,
                               pause_after_failures=3, overlap="buffer_one",
                               hook_inputs=True))
    assert s["dst_policy"] == {"gap": "skip", "repeat": None}
    assert (s["jitter"], s["timeout"], s["pause_after_failures"], s["overlap"]) == \
        (30, 600, 3, "buffer_one")
    assert (s["hook"], s["hook_inputs"], s["failures_in_row"]) == (False, True, 0)
    got = (await api.get(f"/schedule/{s['id']}", headers=token(ALICE))).json()
    assert got["dst_policy"] == s["dst_policy"] and got["timeout"] == 600
    plain = await create(api, cron(overlap="replace"))
    assert plain["dst_policy"] == {"gap": None, "repeat": None} and plain["jitter"] is None
    assert plain["overlap"] == "replace"


async def test_what_get_returns_can_be_put_back_unchanged(api):
    s = await create(api, interval(exclude_dates=["2027-03-02"], jitter=5, timeout=60))
    r = await api.put(f"/schedule/{s['id']}", json=s, headers=token(ALICE))
    assert r.status_code == 200, r.text
    assert r.json()["version"] == s["version"]  # nothing changed, nothing logged
    c = await create(api, cron(dst_policy={"repeat": "twice"}))
    r = await api.put(f"/schedule/{c['id']}", json=c, headers=token(ALICE))
    assert r.status_code == 200 and r.json()["version"] == c["version"]


async def test_rules_in_words_on_create_give_exactly_the_cron_rule(api):
    s = await create(api, {"flow_url": cron()["flow_url"], "text": "every weekday at 9am",
                           "timezone": "Europe/Berlin", "inputs": {"message": "x"}})
    assert (s["schedule_type"], s["cron_expression"]) == ("cron", "0 9 * * 1-5")
    twin = await create(api, cron(cron_expression="0 9 * * 1-5"))
    assert s["next_run"] == twin["next_run"] == "2027-03-02T08:00:00Z"
    every = await create(api, {"flow_url": cron()["flow_url"], "text": "every 90 minutes",
                               "inputs": {"message": "x"}})
    assert (every["schedule_type"], every["every"]) == ("interval", "90m")


@pytest.mark.parametrize("over, words", [
    ({"text": "every weekday at 9am", "cron_expression": "0 9 * * *"}, "not both"),
    ({"text": "every 90 minutes", "schedule_type": "cron"}, "interval rule"),
    ({"text": "whenever the moon is full"}, ""),
])
async def test_text_that_cannot_be_used_is_refused_naming_text(api, over, words):
    body = {"flow_url": cron()["flow_url"], "inputs": {"message": "x"}, **over}
    r = await api.post("/schedule/", json=body, headers=token(ALICE))
    assert r.status_code == 422 and r.json()["field"] == "text", r.text
    assert words in r.json()["detail"]


async def test_an_update_in_words_switches_the_kind_of_rule_and_clears_the_old_one(api):
    s = await create(api, cron())
    r = await api.patch(f"/schedule/{s['id']}", json={"text": "every 90 minutes"},
                        headers={**token(ALICE),
                                 "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["schedule_type"], got["every"], got["cron_expression"]) == \
        ("interval", "90m", None)
    assert got["anchor"] == "2027-03-01T08:00:00Z" and got["next_run"] == "2027-03-01T09:30:00Z"
    back = await api.patch(f"/schedule/{s['id']}",
                           json={"schedule_type": "once", "run_at": "2027-03-09T09:00:00"},
                           headers={**token(ALICE),
                                    "Content-Type": "application/merge-patch+json"})
    assert back.status_code == 200, back.text
    assert (back.json()["every"], back.json()["anchor"]) == (None, None)
    changes = (await api.get(f"/schedule/{s['id']}/changes", headers=token(ALICE))).json()
    assert "every_seconds" in {c["field"] for c in changes["items"][1]["changes"]}


async def test_the_preview_shows_skipped_dates_send_times_and_dst_choices(api):
    r = await api.post("/schedule/preview", headers=token(ALICE), json={
        "every": "1d", "anchor": "2027-03-01T12:00:00Z", "exclude_dates": ["2027-03-03"],
        "jitter": 60, "count": 3, "timezone": "UTC"})
    assert r.status_code == 200, r.text
    times = r.json()["times"]
    assert [(t["utc"][:10], t["skipped"]) for t in times] == [
        ("2027-03-01", None), ("2027-03-02", None), ("2027-03-03", "excluded date"),
        ("2027-03-04", None)]
    for t in times:
        lag = int(t["send_at"][17:19]) - int(t["utc"][17:19])
        assert t["send_at"][:16] == t["utc"][:16] and 0 <= lag < 60
    assert "not on 2027-03-03" in r.json()["description"]
    dst = await api.post("/schedule/preview", headers=token(ALICE), json={
        "cron_expression": "30 2 * * *", "timezone": "Europe/Berlin",
        "dst_policy": {"gap": "skip"}})
    effects = dst.json()["dst_effects"]
    assert effects and effects[0].startswith("2027-03-28") and "gap=skip" in effects[0]
    assert "this schedule: skip" in effects[0]


@pytest.mark.parametrize("body, field", [
    ({"every": "90m", "cron_expression": "* * * * *"}, "every"),
    ({"cron_expression": "* * * * *", "anchor": "2027-03-01T00:00:00Z"}, "anchor"),
    ({"text": "every day at 9", "every": "1h"}, "text"),
    ({}, "cron_expression"),
])
async def test_a_preview_of_two_rules_at_once_is_refused(api, body, field):
    r = await api.post("/schedule/preview", headers=token(ALICE), json=body)
    assert r.status_code == 422 and r.json()["field"] == field, r.text
