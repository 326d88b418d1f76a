"""Reading an LLM request body: bounded as it arrives, parsed without surprises.

A body over the limit is refused before it is read whole; JSON too deep, a number too long,
or text that is not Unicode (a lone surrogate) is a 400 naming the problem, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from localmesh.protocol.wire import WireError, loads_json
from localmesh.scripted_llm.errors import ScriptedError

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the {limit}-byte limit")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (``BodyTooLarge``) once past ``limit``, never buffered whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


def parse_request(
    text: bytes | str, unparsable: str = "We could not parse the JSON body of your request"
) -> dict[str, Any] | ScriptedError:
    """A request body as a JSON object, or the 400 to answer with."""
    try:
        body = loads_json(text, "the JSON")
    except WireError as error:
        return ScriptedError(400, f"{unparsable}: {error}", fatal=True)
    if not isinstance(body, dict):
        return ScriptedError(400, "the request body must be a JSON object", fatal=True)
    marker = b"\\u" if isinstance(text, bytes) else "\\u"
    if marker in text:  # only escapes can carry a lone surrogate: check those bodies
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return ScriptedError(400, "the request body holds a lone surrogate (not valid Unicode)",
                                 fatal=True)
    return body
