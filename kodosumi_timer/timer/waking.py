"""Wake-ups: the panel wakes the sleeping timer after a change."""

import asyncio
from typing import Protocol


class Waker(Protocol):
    """Wake-ups from the panel. ``wait`` returns the newest generation seen, at the
    latest after ``timeout`` seconds; a generation newer than ``seen`` means "woken"."""

    async def wait(self, seen: int, timeout: float) -> int: ...


class LocalWaker:
    """In-process wake-ups (tests, and a timer embedded next to its panel)."""

    def __init__(self) -> None:
        self.generation = 0
        self._changed = asyncio.Condition()

    async def wake(self) -> None:
        async with self._changed:
            self.generation += 1
            self._changed.notify_all()

    async def wait(self, seen: int, timeout: float) -> int:
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.generation > seen), timeout)
            except TimeoutError:
                pass
            return self.generation
