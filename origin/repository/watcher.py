"""Hot reload: watch the models folder and re-sync the registry after changes settle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from watchfiles import awatch

from origin.repository.registry import ModelRegistry

log = logging.getLogger("origin.watcher")


async def watch_models(
    registry: ModelRegistry,
    stop: asyncio.Event,
    *,
    debounce_ms: int = 300,
    force_polling: bool = False,
    after_sync: Callable[[], None] | None = None,
) -> None:
    """Run `registry.sync()` (then `after_sync`) after every debounced batch of changes until
    `stop` is set.

    A failing sync is logged and the watch goes on: a broken folder must never stop reloads.
    """
    registry.models_dir.mkdir(parents=True, exist_ok=True)
    async for changes in awatch(
        registry.models_dir,
        debounce=debounce_ms,
        step=50,
        stop_event=stop,
        force_polling=force_polling,
        poll_delay_ms=200,
        ignore_permission_denied=True,
    ):
        log.debug("models folder changed (%d paths); re-syncing", len(changes))
        try:
            await registry.sync()
        except Exception:
            log.exception("model re-sync failed")
        if after_sync is not None:
            after_sync()
