"""label-studio-sdk with our error handling: retries with backoff, then one clear error.

A restarted server, a timeout or a 5xx is retried (the calls we make are safe to repeat: reads,
or writes our callers reconcile); a rejected token or a refused request is reported at once.
"""

from __future__ import annotations

import json
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

    def get_json(self, path: str, **params: Any) -> Any:
        """GET an API path through the SDK's authenticated HTTP client and return the JSON as is.

        For task listings: the SDK's typed models cost about twice the server's own time to build
        (measured by bench/labeling.py), and we only read a few fields of each task.
        """
        response = self.sdk._client_wrapper.httpx_client.request(path, method="GET", params=params)
        if not 200 <= response.status_code < 300:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise ApiError(status_code=response.status_code, body=body)
        return response.json()

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


def task_pages(client: LabelStudioClient, what: str, *, project: int, page_size: int, fields: str,
               include: str | None = None, filters: list[dict[str, Any]] | None = None) -> Iterator[list[dict[str, Any]]]:
    """A project's tasks (plain JSON) in id order, a page at a time, each page retried on its own.

    Pages are cut by id (keyset: "id greater than the last one seen"), not by page number: Label
    Studio's offset pages get slower the further in they start, and a task deleted meanwhile
    would shift an offset and skip one.
    """
    last_id = 0
    while True:
        items = [*(filters or []), {"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": last_id}]
        query = json.dumps({"filters": {"conjunction": "and", "items": items}, "ordering": ["tasks:id"]})
        extra = {"include": include} if include else {}
        listing = client.call(what, client.get_json, "api/tasks/", project=project, page=1, page_size=page_size,
                              fields=fields, query=query, **extra)
        tasks = listing.get("tasks") or []
        if tasks:
            yield tasks
            last_id = tasks[-1]["id"]
        if len(tasks) < page_size:
            return


EXPORT_CHUNK = 500  # Django refuses a query string with more than 1,000 fields


def export_tasks(client: LabelStudioClient, project: int, task_ids: list[int]) -> list[dict[str, Any]]:
    """Full JSON (annotations with their results) of the given tasks, through the export API,
    which serialises tasks at about half the server time of the task listing."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(task_ids), EXPORT_CHUNK):
        chunk = task_ids[start:start + EXPORT_CHUNK]
        out += client.call("export tasks", client.get_json, f"api/projects/{project}/export", exportType="JSON",
                           download_all_tasks="true", **{"ids[]": chunk})
    return out
