"""Done-callbacks for futures nobody awaits: their failures are logged or deliberately dropped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kubeedge_twin import TwinFormatError, TwinSource


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


def report_in_background(
    twin: TwinSource, values: Mapping[str, str], logger: logging.Logger, what: str
) -> None:
    """Report ``values`` on ``twin`` without waiting; a refusal or failure is logged."""
    try:
        future = twin.report(values)
    except TwinFormatError as exc:
        logger.warning("cannot report twin values %s: %s", dict(values), exc)
        return
    future.add_done_callback(warn_on_failure(logger, what))
