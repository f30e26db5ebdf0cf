"""The panel's ``GET /metrics`` on the real stack: the timer is another process, its
figures reach the panel through its lock actor on the cluster (issue 12, metrics)."""

import json
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_run_later import final_state, schedule_once

pytestmark = pytest.mark.integration

LATE = "kodosumi_timer_fire_lateness_seconds"
FINISHED = ("kodosumi_timer_runs_total", (("status", "finished"),))


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{url}/metrics", timeout=30)  # no login: scrapers have none
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_a_fire_moves_the_timers_figures_in_the_panels_metrics(stack, new_user):
    before = scrape(stack.panel_url)
    assert before[("kodosumi_timer_up", ())] == 1
    assert before[("kodosumi_timer_heartbeat_age_seconds", ())] < 30
    late_before = before.get((f"{LATE}_count", ()), 0)
    finished_before = before.get(FINISHED, 0)

    user = new_user("metrics")
    created = schedule_once(user, stack.flows["quick"], 4, title="metrics")
    assert final_state(user, created["id"])["last_status"] == "finished"

    # the timer publishes with every turn of its loop (at most 10 s apart)
    def moved():
        now = scrape(stack.panel_url)
        ok = now.get((f"{LATE}_count", ()), 0) > late_before and \
            now.get(FINISHED, 0) > finished_before
        return now if ok else None

    after = wait_for(moved, 30, "lateness count and finished runs to move in /metrics")
    fired = after[(f"{LATE}_count", ())] - late_before
    late = after[(f"{LATE}_sum", ())] - before.get((f"{LATE}_sum", ()), 0.0)
    assert 0 <= late / fired < 5, f"{fired} launch(es) {late:.3f} s late in all"
    assert after[(f"{LATE}_bucket", (("le", "+Inf"),))] == after[(f"{LATE}_count", ())]
    assert after[("kodosumi_timer_launch_answer_seconds_count", ())] >= fired
    assert after[("kodosumi_timer_runs_total", (("status", "launched"),))] >= 1
    assert after[("kodosumi_timer_runs_kept", (("status", "finished"),))] >= 1
    assert after[("kodosumi_timer_store_up", ())] == 1
    assert ("kodosumi_timer_launches_waiting", ()) in after
    assert ("kodosumi_timer_due_backlog", ()) in after

    # koco-timer status --json says the same, read from the same lock actor and store
    out = subprocess.run([sys.executable, "-m", "kodosumi_timer.cli", "status", "--json"],
                         env=stack.env, capture_output=True, text=True, timeout=120,
                         cwd=stack.kodo.data_dir.parent)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["timer"]["up"] is True and found["timer"]["mode"] == "process"
    assert found["timer"]["lateness_seconds"]["count"] >= after[(f"{LATE}_count", ())]
    assert found["timer"]["runs"]["finished"] >= after[FINISHED]
    assert found["runs_kept"]["finished"] >= 1 and found["store_up"] is True
