"""label-studio-sdk with our error handling: retries with backoff, then one clear error.

A restarted server, a timeout or a 5xx is retried (the calls we make are safe to repeat: reads,
or writes our callers reconcile); a rejected token or a refused request is reported at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
from label_studio_sdk.client import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from labeling.server import Connection
from likeness.errors import ConfigError, LikenessError, ServiceUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class LabelStudioError(LikenessError):
    """Label Studio refused a request (a 4xx other than a rejected token)."""


class LabelStudioClient:
    """The SDK client plus `call`, which every request goes through."""

    def __init__(self, connection: Connection, *, attempts: int = 5, backoff_s: float = 0.5,
                 timeout_s: float = 120.0) -> None:
        self.url = connection.url.rstrip("/")
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.sdk = LabelStudio(base_url=self.url, api_key=connection.token, timeout=timeout_s)

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)`; `what` names the request in errors ("import tasks", say)."""
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                return fn(*args, **kwargs)
            except ApiError as exc:
                if exc.status_code in (401, 403):
                    raise ConfigError(f"Label Studio at {self.url} rejected our token ({what}: HTTP {exc.status_code})",
                                      hint="run `likeness label serve` again, or set LIKENESS_LABEL_STUDIO_TOKEN") from exc
                if exc.status_code not in RETRY_STATUS:
                    raise LabelStudioError(f"Label Studio at {self.url} refused to {what}: HTTP {exc.status_code} {_short(exc.body)}") from exc
                reason = f"HTTP {exc.status_code}"
            except (httpx.TransportError, ConnectionError) as exc:
                reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            if attempt == self.attempts:
                raise ServiceUnavailable(f"Label Studio at {self.url} did not {what} after {self.attempts} tries ({reason})",
                                         hint="check `likeness label status`; the next run picks up where this one stopped")
            log.warning("Label Studio: %s failed (%s); retrying in %.1f s", what, reason, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")


def _short(body: object, limit: int = 300) -> str:
    text = str(body)
    return text if len(text) <= limit else text[:limit] + "…"


def task_pages(client: LabelStudioClient, what: str, *, project: int, page_size: int,
               **query: Any) -> Iterator[list[Any]]:
    """Pages of a project's tasks, each fetched (and retried) on its own.

    The SDK's pager says there is a next page even after a short one, and the server answers a
    page past the end with 404, so a short page or that 404 ends the listing.
    """
    page = 1
    while True:
        try:
            listing = client.call(what, client.sdk.tasks.list, project=project, page=page, page_size=page_size, **query)
        except LabelStudioError as exc:
            if page > 1 and "HTTP 404" in str(exc):
                return
            raise
        items = list(listing.items or [])
        if items:
            yield items
        if len(items) < page_size:
            return
        page += 1
