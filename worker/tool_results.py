"""Turning tool results into the ``function_call_output`` text the model reads (§9.4)."""

from __future__ import annotations

import json
from typing import Any

from localmesh.protocol.wire import Content
from localmesh.worker.errors import RoomError
from localmesh.worker.tools import FileResult, is_text_like


class ToolResponseAdapter:
    """Renders what a tool returned, or raised, as a string for the LLM.

    The rules follow MeshAgent's Responses tool adapter, so a scripted LLM sees the same
    outputs from both workers: text as is, JSON as a JSON string, nothing as ``"ok"``,
    an error content as ``"Error (code=N): text"``, a text-like file as its text, another
    file as its name, and an exception as ``{"error": "unable to complete tool call: ..."}``.
    """

    def to_output(self, result: Any) -> str:
        if result is None:
            return "ok"
        if isinstance(result, str):
            return result
        if isinstance(result, FileResult):
            if is_text_like(result.mime_type, result.name):
                return result.data.decode("utf-8", errors="replace")
            return result.name
        if isinstance(result, Content):
            return self._content_output(result)
        return json.dumps(result)

    def _content_output(self, content: Content) -> str:
        header = content.header
        match content.type:
            case "text":
                return str(header.get("text", ""))
            case "json":
                return json.dumps(header.get("json"))
            case "empty":
                return "ok"
            case "error":
                code = header.get("code")
                prefix = "Error" if code is None else f"Error (code={code})"
                return f"{prefix}: {header.get('text', '')}"
            case "file":
                return self.to_output(
                    FileResult(str(header.get("name", "")), str(header.get("mime_type", "")),
                               content.payload)
                )
            case "link":
                return json.dumps({"name": header.get("name"), "url": header.get("url")})
            case _:
                return json.dumps(header)

    def error_output(self, error: BaseException) -> str:
        message = error.message if isinstance(error, RoomError) else str(error)
        return json.dumps({"error": f"unable to complete tool call: {message}"})


# The MeshAgent SDK's name for it, so its samples run with only their imports changed.
OpenAIResponsesToolResponseAdapter = ToolResponseAdapter
