"""schemathesis against the OpenAPI of the composed panel (kodosumi's app with ours, what
`/schema/openapi.json` serves): generated requests to every /schedule route must never
produce a 5xx nor a response that breaks its documented statuses, headers and schemas;
then sequences that follow the OpenAPI links (create → get, put, patch, pause, delete …)."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from kodosumi_timer.schedules import FlowInfo
from tests.unit.conftest import ALICE, token
from tests.unit.factories import composed_app


class AnyFlow:
    """Every flow URL is registered: generated schedules get past the flow check, so the
    sequences reach the routes of a created schedule."""

    async def find(self, flow_url: str) -> FlowInfo:
        return FlowInfo(flow_url, "Fuzzed flow")

    async def form(self, flow_url: str, owner: str) -> list[dict[str, object]]:
        # a flow without inputs: generated inputs other than {} are refused (422)
        return []


def schedule_schema(directory):  # type: ignore[no-untyped-def]
    """The /schedule part of the composed panel's OpenAPI, on a store in ``directory``
    (the app starts and stops for every call: the directory outlives them)."""
    return schemathesis.openapi.from_asgi(
        "/schema/openapi.json", composed_app(directory, flows=AnyFlow()),
        headers=token(ALICE)).include(path_regex="^/schedule")


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):  # type: ignore[no-untyped-def]
    return schedule_schema(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def sent() -> list[str]:
    """The operations the generated requests went to, for the check after them."""
    return []


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):  # type: ignore[no-untyped-def]
    # schemathesis' fixture-built schema (4.x) names its per-route runs through
    # Node._nodeid, which pytest 9 no longer has
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


# (the fixture's own filter is not applied to the tests it parametrizes)
schema = schemathesis.pytest.from_fixture("api_schema").include(path_regex="^/schedule")

# Litestar's own OPTIONS answers and semantic 422s for schema-valid input (an unknown
# flow, a run_at in the past) are fine; everything about our responses is checked.
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.response_headers_conformance, checks.negative_data_rejection]
# CI (CI=true) replays one fixed sequence of examples, so that what lands is judged by
# the code, not by the draw; every other run draws new ones (each bug it found so far
# is fixed and pinned by a test in test_api*.py)
FIXED = os.environ.get("CI") == "true"


@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=FIXED,
          suppress_health_check=list(HealthCheck))
def test_no_5xx_and_responses_match_the_schema(case, sent):
    sent.append(case.operation.label)
    response = case.call(headers=token(ALICE))
    assert response.status_code < 500, response.text
    case.validate_response(response, checks=CHECKS)


def test_at_least_1000_requests_reached_every_route(api_schema, sent):
    """Runs after the generated tests above (same module, file order)."""
    assert len(sent) >= 1000, len(sent)
    assert len(set(sent)) == len(list(api_schema.get_all_operations())), set(sent)


def test_workflows_follow_the_links_beyond_creating(tmp_path):
    """Sequences along the links: whatever came before, an answer is never a 5xx and
    always the documented one; a created schedule is there, a deleted one is gone. The
    sequences get a panel of their own: what the tests above stored must not change
    them."""
    steps: list[str] = []
    # the schedules' own routes: the user's default notification (not linked to a
    # schedule) only changed which sequence the fixed draw makes; the test above has it
    machine = _workflows(schedule_schema(tmp_path).exclude(path_regex="notify-default"),
                         steps)
    # always one fixed sequence: schemathesis adapts its link-following to earlier
    # answers, which hypothesis reports as flaky generation when it replays a drawn one
    machine.run(settings=settings(max_examples=60, stateful_step_count=8, deadline=None,
                                  derandomize=True, suppress_health_check=list(HealthCheck)))
    followed = {step for step in steps if "{schedule_id}" in step
                and step.endswith((" 200", " 202", " 204"))}
    assert any(step.startswith(("PUT ", "PATCH ")) for step in followed), sorted(set(steps))
    assert any(step.startswith("DELETE ") for step in followed), sorted(set(steps))


def _workflows(workflow_schema, steps: list[str]):  # type: ignore[no-untyped-def]
    class Workflows(workflow_schema.as_state_machine()):  # type: ignore[misc]
        """The API as a state machine along its OpenAPI links; ``steps`` records each
        call and its answer."""

        def before_call(self, case):  # type: ignore[no-untyped-def]
            # a drawn create is rarely valid (a zone, a rule, a time that all fit): make
            # the creates valid here, so the sequences go on to the created schedule's
            # routes (invalid creates are the stateless test's part; drawn-invalid ones
            # stay invalid)
            negative = case.meta is not None and case.meta.generation.mode == "negative"
            if case.operation.label == "POST /schedule" and isinstance(case.body, dict) \
                    and not negative:
                body = {k: v for k, v in case.body.items()
                        if k not in ("end_at", "run_at", "cron_expression", "notify")}
                body["timezone"] = "Europe/Berlin"
                if body.get("schedule_type") == "cron":
                    body["cron_expression"] = "*/5 * * * *"
                else:
                    body.update(schedule_type="once", run_at="2027-06-01T09:00:00+02:00")
                case.body = body
            # likewise a drawn If-Match rarely matches the ETag: a valid write goes through
            # unconditioned (If-Match itself is tested in test_api_writes.py)
            if case.operation.method.upper() in ("PUT", "PATCH", "DELETE") \
                    and not negative and case.headers:
                case.headers.pop("If-Match", None)

        def get_call_kwargs(self, case):  # type: ignore[no-untyped-def]
            return {"headers": token(ALICE)}

        def validate_response(  # type: ignore[no-untyped-def]
                self, response, case, additional_checks=None, **kwargs):
            steps.append(f"{case.operation.label} {response.status_code}")
            assert response.status_code < 500, response.text
            case.validate_response(response, checks=[
                *CHECKS, checks.use_after_free, checks.ensure_resource_availability])

    return Workflows
