"""The Azure OpenAI account's blades: Keys and Endpoint, Model deployments, the chat playground (streaming from the
data plane as the signed-in user: PermissionDenied until they hold a data role), and quota usage."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response, StreamingResponse

from cielo.web.portal.client import OPENAI_API, ApiError
from cielo.web.portal.ids import ACCOUNT, Scope, url
from cielo.web.portal.resources import blade
from cielo.web.portal.web import Portal


def _account_only(portal: Portal, scope: Scope) -> Response | None:
    if scope.type != ACCOUNT:
        return portal.render("portal/problem.html", title="Not found", status=404,
                             message="This blade is for Azure OpenAI accounts.")
    return None


@blade("keys")
async def keys(portal: Portal, scope: Scope) -> Response:
    if (wrong := _account_only(portal, scope)) is not None:
        return wrong
    error, regenerated = None, None
    if portal.request.method == "POST":
        form = await portal.form()
        name = form.get("key", "")
        try:
            if name not in ("Key1", "Key2"):
                raise ApiError(400, "InvalidKeyName", "Choose Key1 or Key2.")
            await portal.api.arm("POST", f"{scope.id}/regenerateKey", "cognitiveservices", body={"keyName": name})
            regenerated = name
        except ApiError as exc:
            error = exc
    account = await portal.api.arm("GET", scope.id, "cognitiveservices")
    found, keys_error = await portal.api.try_arm("POST", f"{scope.id}/listKeys", "cognitiveservices")
    return portal.render("portal/keys.html", title="Keys and Endpoint", subtitle=scope.name or "", scope=scope.id,
                         blade="keys", account=account, keys=found, keys_error=keys_error, error=error,
                         regenerated=regenerated)


@blade("deployments")
async def deployments(portal: Portal, scope: Scope) -> Response:
    if (wrong := _account_only(portal, scope)) is not None:
        return wrong
    error = None
    if portal.request.method == "POST":
        form = await portal.form()
        try:
            name = form.get("name", "").strip()
            if form.get("action") == "delete":
                await portal.api.arm("DELETE", f"{scope.id}/deployments/{name}", "cognitiveservices")
                return portal.redirect(url(scope.id, "deployments"), f"Deployment '{name}' deleted.")
            model_format, _, rest = form.get("model", "").partition("|")
            model_name, _, version = rest.partition("|")
            try:
                capacity = int(form.get("capacity", "1"))
            except ValueError as exc:
                raise ApiError(400, "InvalidCapacity", "Capacity must be a whole number.") from exc
            await portal.api.arm("PUT", f"{scope.id}/deployments/{name}", "cognitiveservices", body={
                "sku": {"name": form.get("sku") or "Standard", "capacity": capacity},
                "properties": {"model": {"format": model_format, "name": model_name, "version": version}}})
            return portal.redirect(url(scope.id, "deployments"), f"Deployment '{name}' created.")
        except ApiError as exc:
            error = exc
    listed = await portal.api.arm("GET", f"{scope.id}/deployments", "cognitiveservices")
    models, models_error = await portal.api.try_arm("GET", f"{scope.id}/models", "cognitiveservices")
    return portal.render("portal/deployments.html", title="Model deployments", subtitle=scope.name or "",
                         scope=scope.id, blade="deployments", rows=listed.get("value", []),
                         models=(models or {}).get("value", []), models_error=models_error, error=error)


@blade("usage")
async def usage(portal: Portal, scope: Scope) -> Response:
    if (wrong := _account_only(portal, scope)) is not None:
        return wrong
    found = await portal.api.arm("GET", f"{scope.id}/usages", "cognitiveservices")
    return portal.render("portal/usage.html", title="Quotas", subtitle=scope.name or "", scope=scope.id,
                         blade="usage", rows=found.get("value", []))


def _chat_path(account: dict[str, Any], deployment: str) -> str:
    name = (account.get("properties") or {}).get("customSubDomainName") or account["name"]
    return f"/accounts/{name}/openai/deployments/{deployment}/chat/completions?api-version={OPENAI_API}"


def _error_text(status: int, raw: bytes) -> str:
    try:
        error = json.loads(raw).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code") or "Error"
    return f"{code} ({status}): {error.get('message') or raw.decode(errors='replace')[:500]}"


async def _answer(chunks: AsyncIterator[tuple[int, bytes]]) -> AsyncIterator[str]:
    """The assistant's text as it streams, or the data plane's error as one line."""
    buffer = b""
    failed: int | None = None
    async for status, chunk in chunks:
        if status >= 400:
            failed, buffer = status, buffer + chunk
            continue
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            line = line.strip()
            if not line.startswith(b"data:") or line == b"data: [DONE]":
                continue
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            for choice in event.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text
            if event.get("error"):
                yield "\n" + _error_text(500, json.dumps(event).encode())
    if failed is not None:
        yield _error_text(failed, buffer)


@blade("playground")
async def playground(portal: Portal, scope: Scope) -> Response:
    if (wrong := _account_only(portal, scope)) is not None:
        return wrong
    account = await portal.api.arm("GET", scope.id, "cognitiveservices")
    listed = await portal.api.arm("GET", f"{scope.id}/deployments", "cognitiveservices")
    names = [d["name"] for d in listed.get("value", [])]
    answer, asked, system, chosen = None, "", "You are a helpful assistant.", names[0] if names else ""
    if portal.request.method == "POST":
        form = await portal.form()
        asked, system = form.get("message", ""), form.get("system", system)
        chosen = form.get("deployment", chosen)
        if chosen not in names:
            raise ApiError(404, "DeploymentNotFound", f"The account has no deployment '{chosen}'.")
        body: dict[str, Any] = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": asked}],
                                "max_tokens": int(form.get("max_tokens") or 200)}
        path = _chat_path(account, chosen)
        await portal.api.token("cog")  # now, so that a refreshed session is saved before the stream starts
        if form.get("stream") == "1":
            stream = portal.api.stream(path, {**body, "stream": True})
            return StreamingResponse(_answer(stream), media_type="text/plain; charset=utf-8")
        answer = "".join([part async for part in _answer(portal.api.stream(path, {**body, "stream": True}))])
    return portal.render("portal/playground.html", title="Chat playground", subtitle=scope.name or "",
                         scope=scope.id, blade="playground", names=names, chosen=chosen, asked=asked, system=system,
                         answer=answer)
