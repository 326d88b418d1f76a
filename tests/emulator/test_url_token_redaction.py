"""Masking tokens in text: what the emulator applies to log lines and refusal reasons."""

from __future__ import annotations

import logging

import pytest

from localmesh.emulator.url_token import REDACTED, RedactTokens, redact
from localmesh.protocol.sdk_versions import ClientVersion


@pytest.mark.parametrize(("text", "expected"), [
    ("GET /rooms/r?token=abc.def.ghi&v=0.42.2 HTTP/1.1", f"GET /rooms/r?token={REDACTED}&v=0.42.2 HTTP/1.1"),
    ("/rooms/r?v=1&TOKEN=x y", f"/rooms/r?v=1&TOKEN={REDACTED} y"),
    ("< Authorization: Bearer eyJ.a.b", f"< Authorization: Bearer {REDACTED}"),
    ("< authorization: ma-key", f"< authorization: {REDACTED}"),
    ("no secrets here, tokens=3", "no secrets here, tokens=3"),
])
def test_tokens_in_urls_and_headers_are_masked(text, expected):
    assert redact(text) == expected


def test_a_known_secret_is_masked_wherever_it_is():
    assert redact("token is for room 'x': s3cret!", "s3cret") == f"token is for room 'x': {REDACTED}!"
    assert redact("nothing", None, "") == "nothing"


def test_the_log_filter_masks_the_formatted_message():
    record = logging.LogRecord("uvicorn.error", logging.DEBUG, __file__, 1, "< GET %s HTTP/1.1",
                               ("/rooms/r?token=abc",), None)
    assert RedactTokens().filter(record) is True
    assert record.getMessage() == f"< GET /rooms/r?token={REDACTED} HTTP/1.1"


@pytest.mark.parametrize(("announced", "waits"), [
    ("0.42.2", True), ("0.47.0", True), ("0.47.0rc1", True), ("0.47.1", False), ("1.0", False),
    (None, False), ("", False), ("latest", False),
])
def test_which_clients_wait_for_chunk_replies(announced, waits):
    assert ClientVersion.parse(announced).awaits_chunk_replies is waits
