"""Next-fire computations per second: kodosumi_timer.cron against croniter and cronsim.

    .venv/bin/python bench/cron_speed.py            # full table (a few minutes at most)
    .venv/bin/python bench/cron_speed.py --quick    # < 60 s, one headline line

Two ways of asking, both in Europe/Berlin:

* fresh   -- the first fire time after each of many different start instants (what the
             timer and the preview API do: one schedule, one question). ours:
             ``next_fire_times(expr, zone, start)``; cronsim: ``next(CronSim(expr, start))``;
             croniter: ``croniter(expr, start).get_next(datetime)``.
* chained -- successive fire times from one start (ours: ``count=n``; the libraries:
             their iterators).

Each figure is the median of several repeats. "agree" compares the first chained fire
times (in UTC) of each library with ours; a library that raises is marked unsupported.
Rejection times (a 1,000-character expression, impossible expressions) are ours only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kodosumi_timer.cron import CronError, next_fire_times, validate  # noqa: E402
from kodosumi_timer.cronfields import parse  # noqa: E402

EXPRESSIONS = ["* * * * *", "0 9 * * MON-FRI", "0 9 * * MON#1", "0 0 29 2 *"]
ZONE_NAME = "Europe/Berlin"
ZONE = ZoneInfo(ZONE_NAME)
FIRST = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def starts(count: int) -> list[datetime]:
    """Start instants spread over about eight years, at odd seconds."""
    return [FIRST + timedelta(seconds=i * 137_777 + 13) for i in range(count)]


def ours_fresh(expression: str, moments: list[datetime]) -> None:
    for moment in moments:
        next_fire_times(expression, ZONE_NAME, moment)


def ours_chained(expression: str, n: int) -> list[datetime]:
    return next_fire_times(expression, ZONE_NAME, FIRST, n)


def cronsim_fresh(expression: str, moments: list[datetime]) -> None:
    from cronsim import CronSim

    for moment in moments:
        next(CronSim(expression, moment.astimezone(ZONE)))


def cronsim_chained(expression: str, n: int) -> list[datetime]:
    from cronsim import CronSim

    iterator = CronSim(expression, FIRST.astimezone(ZONE))
    return [next(iterator).astimezone(UTC) for _ in range(n)]


def croniter_fresh(expression: str, moments: list[datetime]) -> None:
    from croniter import croniter

    for moment in moments:
        croniter(expression, moment.astimezone(ZONE)).get_next(datetime)


def croniter_chained(expression: str, n: int) -> list[datetime]:
    from croniter import croniter

    iterator = croniter(expression, FIRST.astimezone(ZONE))
    return [iterator.get_next(datetime).astimezone(UTC) for _ in range(n)]


ENGINES: dict[str, tuple[Callable[[str, list[datetime]], None],
                         Callable[[str, int], list[datetime]]]] = {
    "ours": (ours_fresh, ours_chained),
    "cronsim": (cronsim_fresh, cronsim_chained),
    "croniter": (croniter_fresh, croniter_chained),
}


def rate(work: Callable[[], object], operations: int, repeats: int) -> float:
    """Median operations per second over ``repeats`` timed runs (after one warm-up)."""
    work()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        samples.append(operations / (time.perf_counter() - started))
    return statistics.median(samples)


@dataclass
class Result:
    supported: bool
    fresh: float = 0.0
    chained: float = 0.0
    agree: str = ""

    def rate(self, mode: str) -> float:
        return self.fresh if mode == "fresh" else self.chained


def measure(engine: str, expression: str, n: int, repeats: int) -> Result:
    fresh, chained = ENGINES[engine]
    moments = starts(n)
    try:
        reference = ours_chained(expression, 50)
        mine = chained(expression, 50)
    except Exception as error:  # a library that cannot parse the expression
        return Result(False, agree=f"unsupported ({type(error).__name__}: {error})"[:70])
    differ = next((i for i, (a, b) in enumerate(zip(reference, mine, strict=True)) if a != b),
                  None)
    chain_n = n if expression != "0 0 29 2 *" else min(n, 500)  # stay below year 9999
    return Result(
        True,
        fresh=rate(lambda: fresh(expression, moments), n, repeats),
        chained=rate(lambda: chained(expression, chain_n), chain_n, repeats),
        agree="yes" if differ is None else f"no (first difference at #{differ + 1})",
    )


def rejection_ms(expression: str, repeats: int = 7) -> float:
    samples = []
    for _ in range(repeats):
        parse.cache_clear()
        started = time.perf_counter()
        try:
            validate(expression)
        except CronError:
            pass
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


REJECTIONS = {
    "1,000-char list": ",".join(str(i % 60) for i in range(400))[:992] + " * * * *",
    "1,000-char garbage": "x" * 1000,
    "0 0 30 2 *": "0 0 30 2 *",
    "0 0 */30 * MON#2": "0 0 */30 * MON#2",
}


# Correct answers under the Debian rules (DESIGN.md), written out: (zone, expression,
# after, the first two fire times in UTC).
TRAPS = [
    ("Europe/Berlin", "30 2 * * *", "2027-10-31T01:10",   # restart inside the repeated hour
     ["2027-11-01T01:30", "2027-11-02T01:30"]),
    ("Europe/Berlin", "30 2 * * *", "2027-10-30T12:00",   # fixed time in a repeated hour
     ["2027-10-31T00:30", "2027-11-01T01:30"]),
    ("Europe/Berlin", "30 2 * * *", "2027-03-27T12:00",   # fixed time in a gap
     ["2027-03-28T01:00", "2027-03-29T00:30"]),
]


def trap_results() -> list[str]:
    lines = []
    for zone, expression, after_text, expected_text in TRAPS:
        after = datetime.fromisoformat(after_text).replace(tzinfo=UTC)
        expected = [datetime.fromisoformat(e).replace(tzinfo=UTC) for e in expected_text]
        cells = []
        for engine in ENGINES:
            if engine == "ours":
                got = next_fire_times(expression, zone, after, 2)
            elif engine == "cronsim":
                from cronsim import CronSim

                iterator = CronSim(expression, after.astimezone(ZoneInfo(zone)))
                got = [next(iterator).astimezone(UTC) for _ in range(2)]
            else:
                from croniter import croniter

                walker = croniter(expression, after.astimezone(ZoneInfo(zone)))
                got = [walker.get_next(datetime).astimezone(UTC) for _ in range(2)]
            shown = ", ".join(g.strftime("%m-%d %H:%MZ") for g in got)
            cells.append(f"{engine} {'ok' if got == expected else 'WRONG'} ({shown})")
        lines.append(f"- `{expression}` {zone} after {after_text}Z: " + "; ".join(cells))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="< 60 s, one headline line")
    args = parser.parse_args()
    n, repeats = (500, 3) if args.quick else (4000, 7)

    results = {(e, x): measure(e, x, n, repeats) for x in EXPRESSIONS for e in ENGINES}
    if args.quick:
        parts = []
        for x in EXPRESSIONS:
            ours, sim = results[("ours", x)], results[("cronsim", x)]
            ratio = f"{ours.fresh / sim.fresh:.1f}x" if sim.supported else "n/a"
            parts.append(f"{x!r} {ours.fresh / 1000:.0f}k/s ({ratio} cronsim)")
        worst = max(rejection_ms(x) for x in REJECTIONS.values())
        print("cron_speed fresh next-fire/s in Europe/Berlin: " + "; ".join(parts)
              + f"; slowest rejection {worst:.2f} ms")
        return

    print(f"cron_speed: next-fire computations per second, {ZONE_NAME}, "
          f"median of {repeats} x {n}")
    print()
    print("| expression | mode | ours | cronsim | croniter | ours / cronsim |")
    print("|---|---|---:|---:|---:|---:|")
    for x in EXPRESSIONS:
        for mode in ("fresh", "chained"):
            cells = []
            for engine in ENGINES:
                r = results[(engine, x)]
                cells.append(f"{r.rate(mode):,.0f}" if r.supported else "unsupported")
            ours, sim = results[("ours", x)], results[("cronsim", x)]
            ratio = f"{ours.rate(mode) / sim.rate(mode):.1f}x" if sim.supported else "n/a"
            print(f"| `{x}` | {mode} | " + " | ".join(cells) + f" | {ratio} |")
    print()
    print("Agreement with ours on the first 50 chained fire times (UTC):")
    for x in EXPRESSIONS:
        notes = [f"{engine} {results[(engine, x)].agree}" for engine in ("cronsim", "croniter")]
        print(f"- `{x}`: " + ", ".join(notes))
    print()
    print("DST traps (first two fire times, UTC):")
    for line in trap_results():
        print(line)
    print()
    print("Rejection / validation time (ours, median, cache cleared):")
    for label, x in REJECTIONS.items():
        print(f"- {label}: {rejection_ms(x):.3f} ms")


if __name__ == "__main__":
    main()
