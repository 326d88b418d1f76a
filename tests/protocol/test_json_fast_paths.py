"""``wire.loads_json`` and ``wire.dumps_json``: the same values, texts and refusals as
``json.loads`` and ``json.dumps``, whatever path inside them a value takes."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localmesh.protocol.wire import WireError, dumps_json, loads_json, pack, pack_encoded, unpack

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
spaces = st.sampled_from(["", " ", "\n", "\t \r\n"])


@given(json_values, spaces, spaces, st.booleans())
def test_any_json_text_parses_as_json_loads_parses_it(value, before, after, as_bytes) -> None:
    text = before + json.dumps(value) + after
    assert loads_json(text.encode() if as_bytes else text, "it") == json.loads(text)


@given(st.text(max_size=30))
def test_any_text_parses_or_is_refused_as_json_loads_does(text) -> None:
    try:
        expected = json.loads(text)
    except ValueError as error:
        with pytest.raises(WireError, match="it is not valid JSON") as refused:
            loads_json(text, "it")
        assert str(error) in str(refused.value)
    else:
        got = loads_json(text, "it")
        assert got == expected or (isinstance(got, float) and math.isnan(got))


@pytest.mark.parametrize(("text", "message"), [
    ('{"a": 1} x', "Extra data"),
    ('{"a": 1}{}', "Extra data"),
    ("", "Expecting value"),
    ("[1,", "Expecting value"),
    ('"\\ud800"', None),  # a lone surrogate escape is legal JSON
    (b"\xff", "not valid JSON"),
    ("1" * 5000, "Exceeds the limit"),
])
def test_refusals_name_what_was_wrong(text, message) -> None:
    if message is None:
        assert loads_json(text, "it") == "\ud800"
        return
    with pytest.raises(WireError, match=message):
        loads_json(text, "it")


def test_nesting_past_the_limit_is_refused() -> None:
    assert loads_json("[" * 5 + "]" * 5, "it", max_depth=5) == [[[[[]]]]]
    with pytest.raises(WireError, match="nested more than 5 levels"):
        loads_json("[" * 6 + "]" * 6, "it", max_depth=5)
    with pytest.raises(WireError, match="nested more than"):
        loads_json("[" * 100_000 + "]" * 100_000, "it")


@given(json_values)
def test_dumps_json_writes_what_json_dumps_writes(value) -> None:
    assert dumps_json(value) == json.dumps(value)


def test_the_empty_envelope_is_the_one_pack_would_write() -> None:
    assert pack({"type": "empty"}) == pack_encoded(json.dumps(
        {"type": "empty"}, separators=(",", ":")).encode())
    assert unpack(pack({"type": "empty"}, b"x")) == ({"type": "empty"}, b"x")
