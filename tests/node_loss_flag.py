"""The node-loss tests take minutes (a two-node Ray cluster, a node lost and Ray
restarting the timer elsewhere): they run only with ``KODO_TIMER_NODE_LOSS=1``
(``make test NODE_LOSS=1``). Without it they are deselected, and the summary says so
and how to run them: never silently."""

import os

import pytest

FLAG = "KODO_TIMER_NODE_LOSS"
HOW = f"make test NODE_LOSS=1  (or {FLAG}=1 pytest tests/integration/test_node_loss.py)"


def node_loss_wanted() -> bool:
    return os.environ.get(FLAG, "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"node_loss: slow node-loss tests, run with {HOW}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if node_loss_wanted():
        return
    slow = [item for item in items if item.get_closest_marker("node_loss")]
    if not slow:
        return
    config.hook.pytest_deselected(items=slow)
    items[:] = [item for item in items if not item.get_closest_marker("node_loss")]
    config.stash[_DESELECTED] = len(slow)


_DESELECTED = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    count = config.stash.get(_DESELECTED, 0)
    if count:
        terminalreporter.write_sep(
            "!", f"{count} node-loss test(s) DESELECTED (slow, minutes); run them with: {HOW}",
            yellow=True)
