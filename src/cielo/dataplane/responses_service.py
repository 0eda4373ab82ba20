"""The Responses API's operations: create (through DataPlane.generate, as chat completions are served: the same
validation, quota admission and backend), retrieve, delete and list input items of stored responses.

Stored responses belong to the account and to the caller that created them: a token's principal (its object
id), or, for api-key callers, the account's keys together (a key names no one). Another caller asking for one
gets the 404 an unknown id gets. They are kept 30 days, as OpenAI keeps them, then forgotten.

The store is read and written on a worker thread: a database round trip (milliseconds on a busy disk) must not
hold up the event loop, which serves every other request of this worker meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from cielo.core.clock import Clock
from cielo.dataplane import responses
from cielo.dataplane.index import Account, Deployment
from cielo.dataplane.response_events import retell
from cielo.dataplane.service import Answer, DataPlane, Stream
from cielo.errors import DataPlaneError, InvalidRequestError, PreviousResponseNotFound, ResponseNotFound

RETENTION_S = 30 * 86400
MAX_ITEMS_LIMIT = 100


class StoredResponse(Protocol):
    @property
    def response(self) -> dict[str, Any]: ...

    @property
    def input_items(self) -> list[dict[str, Any]]: ...

    @property
    def context(self) -> list[dict[str, Any]]: ...  # the conversation before this response's output


class ResponseStore(Protocol):
    """Where responses are kept (store/responses.py); shared by every worker of a server."""

    def save(self, *, response_id: str, account_id: str, owner: str, created_at: float, expires_at: float,
             response: dict[str, Any], input_items: list[dict[str, Any]], context: list[dict[str, Any]]) -> None: ...

    def find(self, account_id: str, owner: str, response_id: str, now: float) -> StoredResponse | None: ...

    def delete(self, account_id: str, owner: str, response_id: str, now: float) -> bool: ...


def not_found(response_id: str) -> DataPlaneError:
    return ResponseNotFound(f"Response with id '{response_id[:100]}' not found.")


class ResponsesService:
    def __init__(self, plane: DataPlane, store: ResponseStore, clock: Clock) -> None:
        self.plane = plane
        self.store = store
        self.clock = clock

    async def create(self, account: Account, deployment: Deployment, owner: str, body: dict[str, Any],
                     api_version: str | None) -> Answer | Stream:
        responses.check(body)
        items = responses.input_items(body["input"])
        context = items
        previous_id = body.get("previous_response_id")
        if previous_id:
            previous = await asyncio.to_thread(self.store.find, account.id, owner, previous_id, self.clock.now())
            if previous is None:
                raise PreviousResponseNotFound(f"Previous response with id '{previous_id[:100]}' not found.",
                                               "previous_response_id")
            # The conversation goes on from what the previous one read and said; its instructions do not carry
            # over (OpenAI's documented behaviour for previous_response_id).
            context = previous.context + previous.response["output"] + items
        chat = responses.chat_body(body, context)
        result = await self.plane.generate(account, deployment, "chat", chat, api_version)
        response = responses.skeleton(body, responses.new_id("resp"), int(self.clock.now()), deployment.model.name)
        keep = self._keeper(account, owner, body, items, context)
        if isinstance(result, Stream):
            return Stream(retell(result.events, response, keep), result.headers)
        choice = (result.body.get("choices") or [{}])[0]
        finish_reason = choice.get("finish_reason")
        output = responses.output_items(choice.get("message") or {}, finish_reason)
        response = responses.finish(response, output, finish_reason, result.body.get("usage"))
        await keep(response)
        return Answer(response, result.headers)

    def _keeper(self, account: Account, owner: str, body: dict[str, Any], items: list[dict[str, Any]],
                context: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def keep(response: dict[str, Any]) -> None:
            if body.get("store") is False:
                return
            now = self.clock.now()
            await asyncio.to_thread(lambda: self.store.save(
                response_id=response["id"], account_id=account.id, owner=owner, created_at=now,
                expires_at=now + RETENTION_S, response=response, input_items=items, context=context))
        return keep

    async def retrieve(self, account: Account, owner: str, response_id: str) -> dict[str, Any]:
        return (await self._find(account, owner, response_id)).response

    async def delete(self, account: Account, owner: str, response_id: str) -> dict[str, Any]:
        if not await asyncio.to_thread(self.store.delete, account.id, owner, response_id, self.clock.now()):
            raise not_found(response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    async def input_items(self, account: Account, owner: str, response_id: str,
                          query: dict[str, str]) -> dict[str, Any]:
        """A page of the response's input items, as OpenAI lists them: newest first unless `order=asc`, at most
        `limit` (1 to 100, default 20), after or before an item id."""
        for name in query:
            if name not in ("limit", "order", "after", "before", "api-version", "include", "include[]"):
                raise InvalidRequestError(f"Unrecognized query parameter: {name}", name)
        responses.check_include([value for name in ("include", "include[]") if (value := query.get(name))])
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequestError("'order' must be 'asc' or 'desc'.", "order")
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_ITEMS_LIMIT:
            raise InvalidRequestError(f"'limit' must be an integer from 1 to {MAX_ITEMS_LIMIT}.", "limit")
        # The query is checked before the look-up: a malformed request is a 400 whatever the id.
        stored = await self._find(account, owner, response_id)
        items = list(stored.input_items) if order == "asc" else list(reversed(stored.input_items))
        ids = [item["id"] for item in items]
        for name in ("after", "before"):
            cursor = query.get(name)
            if cursor is not None:
                if cursor not in ids:
                    raise InvalidRequestError(f"'{name}' names no item of this response.", name)
                at = ids.index(cursor)
                items, ids = (items[at + 1:], ids[at + 1:]) if name == "after" else (items[:at], ids[:at])
        page = items[:limit]
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}

    async def _find(self, account: Account, owner: str, response_id: str) -> StoredResponse:
        stored = await asyncio.to_thread(self.store.find, account.id, owner, response_id, self.clock.now())
        if stored is None:
            raise not_found(response_id)
        return stored
