"""The one poller: wait until a condition holds, or fail saying what did not happen."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable


async def until(
    condition: Callable[[], object],
    timeout_s: float = 30.0,
    *,
    interval_s: float = 0.05,
    what: str = "",
) -> None:
    """Poll ``condition`` (a function, or a coroutine function) every ``interval_s`` until it
    is true.

    Raises:
        AssertionError: it was still false after ``timeout_s`` (naming ``what``, or the
            condition's source when it is a named function).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if loop.time() >= deadline:
            name = what or getattr(condition, "__qualname__", "condition")
            raise AssertionError(f"not within {timeout_s:g} s: {name}")
        await asyncio.sleep(interval_s)
