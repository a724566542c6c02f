"""Done-callbacks for futures nobody awaits: their failures are logged or deliberately dropped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any


def warn_on_failure(logger: logging.Logger, what: str) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback logging ``<what> failed: <error>`` when the future failed."""

    def callback(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.warning("%s failed: %s", what, future.exception())

    return callback


def ignore_failure(future: asyncio.Future[Any]) -> None:
    """A done-callback that retrieves a failure nobody needs (asyncio would log it)."""
    if not future.cancelled():
        future.exception()
