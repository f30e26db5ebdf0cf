"""Inputs checked against an agent's form and written as kodosumi's own form posts them.

The forms are built with kodosumi's own form classes, so the elements are exactly what
GET on a flow's URL answers."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kodosumi.core import forms as F
from litestar.testing import AsyncTestClient

from kodosumi_timer.config import TimerSettings
from kodosumi_timer.errors import FlowUnavailable, InvalidInput
from kodosumi_timer.forminputs import normalise
from kodosumi_timer.panel.app import create_api_app
from kodosumi_timer.panel.services import PanelServices
from kodosumi_timer.store import open_store
from tests.unit.conftest import ALICE, OPERATOR, once, token
from tests.unit.factories import FLOW, T0, Clock, FakeFlows, FakeRoles

OTHER = "/-/127.0.0.1/8001/other/-/"

QUICK = F.Model(
    F.Markdown("# Quick demo agent\nEchoes its inputs."),
    F.Errors(),
    F.InputText(label="Message", name="message", required=True),
    F.InputNumber(label="Repeat", name="repeat", value="1", min_value=1, max_value=10, step=1),
    F.Select(label="Colour", name="colour", value="green",
             option=[F.InputOption(label=n.title(), name=n) for n in ("red", "green", "blue")]),
    F.Checkbox(label="Shout", name="shout", option="Echo in upper case", value=False),
    F.InputDate(label="Reference date", name="day"),
    F.Submit("Run"),
    F.Cancel("Cancel"),
).get_model()


def refused(elements, inputs) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        normalise(elements, inputs)
    assert info.value.status == 422
    return info.value


def form(*elements) -> list[dict]:
    return F.Model(*elements).get_model()


def test_the_quick_form_posts_strings_and_fills_what_an_untouched_form_sends():
    assert normalise(QUICK, {"message": "hi", "repeat": 2, "shout": True}) == {
        "message": "hi", "repeat": "2", "colour": "green", "shout": "on", "day": ""}


def test_a_required_input_left_out_is_refused_by_its_name():
    err = refused(QUICK, {"repeat": "2"})
    assert err.field == "inputs.message"
    assert "inputs.message" in err.detail and "Message" in err.detail and "required" in err.detail


@pytest.mark.parametrize("value", ["", None])
def test_a_required_input_given_empty_is_refused(value):
    assert refused(QUICK, {"message": value}).field == "inputs.message"


def test_a_required_field_with_a_default_is_filled_with_it():
    elements = form(F.InputText(name="who", value="world", required=True))
    assert normalise(elements, {}) == {"who": "world"}


def test_unknown_names_are_refused_and_all_named():
    err = refused(QUICK, {"message": "hi", "colr": "red", "zz": 1})
    assert err.field == "inputs.colr"
    assert "inputs.colr" in err.detail and "inputs.zz" in err.detail
    assert "message" in err.detail  # says which inputs the form has


def test_numbers_are_strings_as_typed_and_ints_and_floats_become_them():
    elements = form(F.InputNumber(name="x", step=0.5))
    assert normalise(elements, {"x": 3}) == {"x": "3"}
    assert normalise(elements, {"x": 2.5}) == {"x": "2.5"}
    assert normalise(elements, {"x": " 1.5 "}) == {"x": "1.5"}
    assert normalise(elements, {"x": "-1e1"}) == {"x": "-1e1"}


@pytest.mark.parametrize("value, words", [
    ("abc", "not a number"), ("1,5", "not a number"), (True, "true/false"),
    ([1], "a list"), ({"a": 1}, "an object"), (float("nan"), "not a number"),
    (0, "less than its minimum 1"), ("11", "more than its maximum 10"),
    ("2.5", "the nearest are 2 and 3"), ("1e999999", "more than its maximum 10"),
])
def test_a_number_the_form_cannot_send_is_refused(value, words):
    err = refused(QUICK, {"message": "hi", "repeat": value})
    assert err.field == "inputs.repeat" and words in err.detail, err.detail


def test_a_number_too_far_from_its_step_base_to_tell_is_refused_not_crashed():
    assert "out of range" in refused(form(F.InputNumber(name="x")), {"x": "1e999999"}).detail


def test_a_number_without_step_takes_whole_steps_from_its_default_like_a_browser():
    elements = form(F.InputNumber(name="x", value="0.5"))
    assert normalise(elements, {"x": "2.5"}) == {"x": "2.5"}
    assert "the nearest are 1.5 and 2.5" in refused(elements, {"x": "2"}).detail
    # kodosumi does not render a falsy min (0): the browser does not enforce it
    assert normalise(form(F.InputNumber(name="y", min_value=0)), {"y": -3}) == {"y": "-3"}


def test_text_takes_numbers_as_the_text_typed_and_refuses_structures():
    elements = form(F.InputText(name="start"), F.InputArea(name="notes"))
    assert normalise(elements, {"start": 0, "notes": 300000}) == {"start": "0", "notes": "300000"}
    assert refused(elements, {"start": [1]}).field == "inputs.start"
    assert refused(elements, {"notes": False}).field == "inputs.notes"


def test_text_pattern_and_lengths_are_checked_as_the_browser_does():
    elements = form(F.InputText(name="code", pattern="[A-Z]{3}"),
                    F.InputPassword(name="pw", min_length=4, max_length=6),
                    F.InputArea(name="area", max_length=3))
    assert normalise(elements, {"code": "ABC", "pw": "abcd", "area": "abc"}) == {
        "code": "ABC", "pw": "abcd", "area": "abc"}
    assert "pattern" in refused(elements, {"code": "ABCD"}).detail
    assert "shorter than 4" in refused(elements, {"pw": "abc"}).detail
    assert "longer than 6" in refused(elements, {"pw": "abcdefg"}).detail
    assert "longer than 3" in refused(elements, {"area": "abcd"}).detail
    # an empty optional field is not held to its pattern
    assert normalise(elements, {"code": ""})["code"] == ""


@pytest.mark.parametrize("value, posted", [
    (True, "on"), ("on", "on"), ("true", "on"), ("ON", "on"),
    (False, None), (None, None), ("off", None), ("", None), ("false", None),
])
def test_a_checkbox_is_on_or_left_out(value, posted):
    out = normalise(QUICK, {"message": "m", "shout": value})
    assert out.get("shout") == posted and ("shout" in out) == (posted is not None)


@pytest.mark.parametrize("value", ["yes", 1, 0, [True]])
def test_a_checkbox_refuses_anything_else(value):
    err = refused(QUICK, {"message": "m", "shout": value})
    assert err.field == "inputs.shout" and '"on"' in err.detail


def test_a_checkbox_left_out_stays_out_even_if_checked_by_default():
    # absent is how the form says "unchecked"
    elements = form(F.Checkbox(name="agree", value=True))
    assert normalise(elements, {}) == {}


def test_a_select_takes_one_of_its_options():
    assert normalise(QUICK, {"message": "m", "colour": "blue"})["colour"] == "blue"
    err = refused(QUICK, {"message": "m", "colour": "purple"})
    assert err.field == "inputs.colour" and "red, green, blue" in err.detail
    numbers = form(F.Select(name="n", option=[F.InputOption(name="1"), F.InputOption(name="2")]))
    assert normalise(numbers, {"n": 2}) == {"n": "2"}
    # no option selected: the browser sends the first
    assert normalise(numbers, {}) == {"n": "1"}


@pytest.mark.parametrize("value, posted", [
    ("2027-01-31", "2027-01-31"), (" 2027-01-31 ", "2027-01-31"), ("", ""),
])
def test_dates(value, posted):
    assert normalise(QUICK, {"message": "m", "day": value})["day"] == posted


@pytest.mark.parametrize("value", ["2027-02-30", "31.01.2027", "2027-1-31", 20270131,
                                   "2027-01-31T10:00"])
def test_a_date_the_form_cannot_send_is_refused(value):
    err = refused(QUICK, {"message": "m", "day": value})
    assert err.field == "inputs.day"


def test_date_bounds():
    elements = form(F.InputDate(name="d", min_date="2027-01-01", max_date="2027-12-31"))
    assert normalise(elements, {"d": "2027-06-01"}) == {"d": "2027-06-01"}
    assert "earliest" in refused(elements, {"d": "2026-12-31"}).detail
    assert "latest" in refused(elements, {"d": "2028-01-01"}).detail


def test_times_are_posted_to_the_minute_unless_the_field_takes_seconds():
    minutes = form(F.InputTime(name="t", min_time="08:00"))
    assert normalise(minutes, {"t": "09:30"}) == {"t": "09:30"}
    assert normalise(minutes, {"t": "09:30:00"}) == {"t": "09:30"}
    assert "whole minutes" in refused(minutes, {"t": "09:30:15"}).detail
    assert "earliest" in refused(minutes, {"t": "07:59"}).detail
    assert refused(minutes, {"t": "25:00"}).field == "inputs.t"
    seconds = form(F.InputTime(name="t", step=1))
    assert normalise(seconds, {"t": "09:30:15"}) == {"t": "09:30:15"}


def test_a_local_date_time_is_posted_with_a_t():
    elements = form(F.InputDateTime(name="at", max_datetime="2027-12-31T23:59"))
    assert normalise(elements, {"at": "2027-01-04 09:00"}) == {"at": "2027-01-04T09:00"}
    assert normalise(elements, {"at": "2027-01-04T09:00:00"}) == {"at": "2027-01-04T09:00"}
    assert "latest" in refused(elements, {"at": "2028-01-01T00:00"}).detail
    assert refused(elements, {"at": "2027-01-04"}).field == "inputs.at"


def test_files_cannot_be_scheduled():
    optional = form(F.InputFiles(name="upload"))
    assert normalise(optional, {}) == {}
    assert "no files" in refused(optional, {"upload": "{}"}).detail
    assert "no files" in refused(form(F.InputFiles(name="upload", required=True)), {}).detail


def test_action_buttons_post_their_value_only_when_given():
    elements = form(F.Action(name="go", value="fast", text="Fast"),
                    F.Action(name="go", value="slow", text="Slow"))
    assert normalise(elements, {}) == {}
    assert normalise(elements, {"go": "slow"}) == {"go": "slow"}
    assert refused(elements, {"go": "medium"}).field == "inputs.go"


def test_layout_elements_take_no_input():
    elements = form(F.Markdown("# hi"), F.HTML("<b>x</b>"), F.Break(), F.HR(), F.Errors())
    assert normalise(elements, {}) == {}
    assert refused(elements, {"_global_": "x"}).field == "inputs._global_"


def test_an_element_kind_kodosumi_does_not_render_passes_what_is_given():
    elements = [{"type": "colour-wheel", "name": "hue", "label": "Hue"}]
    assert normalise(elements, {}) == {}
    assert normalise(elements, {"hue": 120}) == {"hue": "120"}


# ---------------------------------------------------------------- properties

texts = st.text(max_size=40)
quick_inputs = st.fixed_dictionaries(
    {"message": texts.filter(bool)},
    optional={"repeat": st.one_of(st.integers(1, 10), st.integers(1, 10).map(str)),
              "colour": st.sampled_from(["red", "green", "blue"]),
              "shout": st.sampled_from([True, False, "on", None]),
              "day": st.dates().map(lambda d: d.strftime("%Y-%m-%d")).filter(
                  lambda s: len(s) == 10)})


@given(quick_inputs)
def test_what_the_form_posts_is_strings_and_posting_it_again_changes_nothing(inputs):
    out = normalise(QUICK, inputs)
    assert all(isinstance(v, str) for v in out.values())
    assert set(out) <= {"message", "repeat", "colour", "shout", "day"}
    assert normalise(QUICK, out) == out
    assert out["message"] == inputs["message"]


@given(texts)
def test_any_text_is_posted_unchanged(value):
    assert normalise(form(F.InputText(name="t")), {"t": value}) == {"t": value}


@given(st.integers(-10**12, 10**12), st.integers(1, 1000))
def test_an_integer_is_accepted_exactly_when_it_lies_on_the_step(value, step):
    elements = form(F.InputNumber(name="x", step=step))
    if value % step == 0:
        assert normalise(elements, {"x": value}) == {"x": str(value)}
    else:
        assert refused(elements, {"x": value}).field == "inputs.x"


@given(st.dictionaries(st.text(min_size=1, max_size=10), st.integers(), min_size=1))
def test_names_the_form_does_not_have_are_always_refused(extra):
    names = [n for n in extra if n not in {"message", "repeat", "colour", "shout", "day"}]
    if names:
        err = refused(QUICK, {"message": "m", **extra})
        assert err.field is not None and err.field.startswith("inputs.")
        assert err.field.removeprefix("inputs.") in names


# ---------------------------------------------------------------- through the API

class DownFlows(FakeFlows):
    async def form(self, flow_url: str, owner: str) -> list[dict]:
        raise FlowUnavailable(f"the form of flow {flow_url} could not be read", field="flow_url")


@pytest.fixture
async def quick_api(tmp_path):
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    flows = FakeFlows(FLOW, OTHER, form=QUICK)
    services = PanelServices(store=store, flows=flows, wake=lambda: None, clock=Clock(T0),
                             settings=TimerSettings(), roles=FakeRoles(operators=(OPERATOR,)))
    async with AsyncTestClient(app=create_api_app(services)) as client:
        client.services = services  # type: ignore[attr-defined]
        yield client
    await store.close()


async def test_create_stores_the_inputs_as_the_form_posts_them(quick_api):
    r = await quick_api.post("/schedule/", json=once(inputs={"message": "hi", "repeat": 3,
                                                             "shout": True}),
                             headers=token(ALICE))
    assert r.status_code == 201, r.text
    assert r.json()["inputs"] == {"message": "hi", "repeat": "3", "colour": "green",
                                  "shout": "on", "day": ""}
    # the form was read as the owner
    assert quick_api.services.flows.form_calls == [(FLOW, ALICE)]


@pytest.mark.parametrize("inputs, field", [
    ({"repeat": "2"}, "inputs.message"),
    ({"message": "hi", "colour": "purple"}, "inputs.colour"),
    ({"message": "hi", "colr": "red"}, "inputs.colr"),
    ({"message": "hi", "repeat": 300000}, "inputs.repeat"),
])
async def test_create_refuses_inputs_the_form_cannot_send(quick_api, inputs, field):
    r = await quick_api.post("/schedule/", json=once(inputs=inputs), headers=token(ALICE))
    assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert field in r.json()["detail"]
    assert (await quick_api.get("/schedule/", headers=token(ALICE))).json()["total"] == 0


async def test_update_checks_new_inputs_and_a_new_flow_as_the_owner(quick_api):
    created = (await quick_api.post("/schedule/", json=once(inputs={"message": "hi"}),
                                    headers=token(ALICE))).json()
    sid, version = created["id"], created["version"]
    flows = quick_api.services.flows
    flows.form_calls.clear()
    r = await quick_api.put(f"/schedule/{sid}", json={"version": version, "title": "t"},
                            headers=token(ALICE))
    assert r.status_code == 200 and flows.form_calls == []  # inputs untouched: not re-read
    r = await quick_api.put(f"/schedule/{sid}", json={"version": r.json()["version"],
                                                      "inputs": {"repeat": 2}},
                            headers=token(ALICE))
    assert r.status_code == 422 and r.json()["field"] == "inputs.message", r.text
    r = await quick_api.put(f"/schedule/{sid}", json={
        "version": version + 1, "inputs": {"message": "new", "repeat": 2.0}},
        headers=token(ALICE))
    assert r.status_code == 200, r.text
    assert r.json()["inputs"]["repeat"] == "2.0" and r.json()["inputs"]["message"] == "new"
    # another flow: the stored inputs are checked against its form
    flows.elements = form(F.InputText(name="note"))
    r = await quick_api.put(f"/schedule/{sid}", json={"version": version + 2,
                                                      "flow_url": OTHER},
                            headers=token(ALICE))
    assert r.status_code == 422 and r.json()["field"] == "inputs.message", r.text
    assert flows.form_calls[-1] == (OTHER, ALICE)


async def test_a_flow_whose_form_cannot_be_read_is_503_naming_the_flow(tmp_path):
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    services = PanelServices(store=store, flows=DownFlows(), wake=lambda: None, clock=Clock(T0),
                             settings=TimerSettings(), roles=FakeRoles())
    async with AsyncTestClient(app=create_api_app(services)) as client:
        r = await client.post("/schedule/", json=once(), headers=token(ALICE))
    await store.close()
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "flow_unavailable" and r.json()["field"] == "flow_url"
    assert FLOW in r.json()["detail"]
