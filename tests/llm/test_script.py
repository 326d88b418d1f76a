"""The script format: what loads, and the exact message of every kind of validation error."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
from meshagent.tools.storage import WriteFileTool

from localmesh.scripted_llm import (
    Script,
    ScriptError,
    ToolResultMatch,
    coerce_script,
    load_demo_script,
    load_script,
    loads_script,
    parse_script,
)


def problem(text: str) -> str:
    with pytest.raises(ScriptError) as caught:
        loads_script(textwrap.dedent(text), "t.yaml")
    return str(caught.value)


def test_a_full_script_loads_into_typed_rules() -> None:
    script = loads_script(
        textwrap.dedent(
            """
            description: all the features
            rules:
              - name: first
                times: once
                match: {user: "(?i)hello", instructions: polite, model: "gpt-.*", turn: 1}
                answer: {text: hi, delay: 0.5}
              - match: {tool_result: {call_id: c1, output: saved, name: storage.write_file}}
                times: 3
                answer:
                  calls:
                    - {name: write_file, namespace: storage, arguments: {path: a.txt}, call_id: c9}
                    - {name: ls}
              - times: always
                answer: {json: {ok: true, items: [1, 2]}}
              - answer: {error: {status: 429, message: slow down, retry_after: 0.25}}
              - answer: {error: {websocket: true, message: boom, code: x, type: server_error}}
              - answer: {drop: true}
            fallback: {text: nothing matched}
            """
        ),
        "full.yaml",
    )
    first, second, third, fourth, fifth, sixth = script.rules
    assert script.source == "full.yaml" and script.description == "all the features"
    assert (first.name, first.label, first.times, first.answer.delay) == ("first", "first", 1, 0.5)
    assert first.match.user is not None and first.match.user.search("HELLO there")
    assert first.match.turn == 1 and first.answer.kind == "text"
    assert second.label == "rules[1]" and second.times == 3 and second.answer.kind == "calls"
    assert second.match.tool_result == ToolResultMatch(
        call_id="c1", output=second.match.tool_result.output, name="storage.write_file"
    )
    assert [c.name for c in second.answer.calls] == ["write_file", "ls"]
    assert second.answer.calls[0].arguments == {"path": "a.txt"}
    assert second.answer.calls[1].arguments == {} and second.answer.calls[1].namespace is None
    assert third.times is None and third.answer.json_text == json.dumps({"ok": True, "items": [1, 2]})
    assert fourth.answer.error is not None and fourth.answer.error.retry_after == 0.25
    assert fifth.answer.error is not None and fifth.answer.error.websocket is True
    assert fifth.answer.error.status == 500  # the default
    assert sixth.answer.kind == "drop"
    assert script.fallback is not None and script.fallback.text == "nothing matched"


def test_json_text_and_a_fallback_only_script_are_valid() -> None:
    assert loads_script('{"fallback": {"text": "x"}}').fallback is not None
    assert loads_script("rules:\n  - answer: {json: null}").rules[0].answer.json_text == "null"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rules: [",
            "t.yaml: line 1, column 9: invalid YAML: expected the node content, but found '<stream end>'",
        ),
        (
            "- answer: {text: x}",
            "t.yaml: top level: expected a mapping with 'rules' and/or 'fallback', got a list",
        ),
        ("", "t.yaml: top level: expected a mapping with 'rules' and/or 'fallback', got null"),
        ("rules: []", "t.yaml: top level: the script needs at least one rule or a fallback"),
        (
            "rule: []",
            "t.yaml: top level: unknown key 'rule' (allowed: description, rules, fallback)",
        ),
        ("rules: {a: 1}", "t.yaml: rules: expected a list, got a mapping"),
        (
            "rules: [{answer: {text: 3}}]",
            "t.yaml: rules[0].answer.text: expected a string, got the number 3",
        ),
        (
            "rules: [{answer: {text: x}, match: {turn: two}}]",
            "t.yaml: rules[0].match.turn: expected a whole number, got the string 'two'",
        ),
        (
            "rules: [{answer: {text: x}, match: {tool_result: yes please}}]",
            "t.yaml: rules[0].match.tool_result: expected true or false or a mapping, "
            "got the string 'yes please'",
        ),
        (
            "rules: [{answer: {drop: 1}}]",
            "t.yaml: rules[0].answer.drop: expected true or false, got the number 1",
        ),
        (
            "rules: [{answer: {text: x}, match: {usr: x}}]",
            "t.yaml: rules[0].match: unknown key 'usr' "
            "(allowed: user, instructions, model, provider, api, turn, tool_result)",
        ),
        (
            "rules: [{answer: {text: x}, match: {tool_result: {callid: c}}}]",
            "t.yaml: rules[0].match.tool_result: unknown key 'callid' (allowed: call_id, output, name)",
        ),
        (
            "rules: [{answer: {texts: x}}]",
            "t.yaml: rules[0].answer: unknown key 'texts' (allowed: text, calls, json, error, drop, delay)",
        ),
        (
            "rules: [{match: {user: x}}]",
            "t.yaml: rules[0]: give an answer, or an expect (a rule that only checks)",
        ),
        (
            "rules: [{answer: {calls: [{arguments: {}}]}}]",
            "t.yaml: rules[0].answer.calls[0]: missing required key 'name'",
        ),
        (
            "rules: [{answer: {error: {status: 429}}}]",
            "t.yaml: rules[0].answer.error: missing required key 'message'",
        ),
        (
            "rules: [{answer: {calls: [{name: f, arguments: [1]}]}}]",
            "t.yaml: rules[0].answer.calls[0].arguments: expected a mapping, got a list",
        ),
        (
            "rules: [{answer: {calls: []}}]",
            "t.yaml: rules[0].answer.calls: must not be an empty list",
        ),
        ("rules: [{name: '', answer: {text: x}}]", "t.yaml: rules[0].name: must not be empty"),
        (
            "rules: [{answer: {text: x}, match: {turn: 0}}]",
            "t.yaml: rules[0].match.turn: must be at least 1, got 0",
        ),
        (
            "rules: [{answer: {text: x, delay: -1}}]",
            "t.yaml: rules[0].answer.delay: must be at least 0, got -1",
        ),
        (
            "rules: [{answer: {error: {status: 600, message: m}}}]",
            "t.yaml: rules[0].answer.error.status: must be at most 599, got 600",
        ),
        (
            "rules: [{answer: {error: {status: 200, message: m}}}]",
            "t.yaml: rules[0].answer.error.status: must be at least 400, got 200",
        ),
        (
            "rules: [{answer: {delay: 1}}]",
            "t.yaml: rules[0].answer: give one of text, calls, json, error, drop",
        ),
        (
            "rules: [{answer: {text: x, calls: [{name: f}]}}]",
            "t.yaml: rules[0].answer: give only one of text, calls, json, error, drop (got text and calls)",
        ),
        ("fallback: {drop: false, text: x}", "t.yaml: fallback.drop: must be true when given"),
        (
            "rules: [{answer: {calls: [{name: f, call_id: c1}, {name: g, call_id: c1}]}}]",
            "t.yaml: rules[0].answer.calls[1].call_id: duplicate call_id 'c1'",
        ),
        (
            "rules: [{answer: {text: x}, match: {user: '('}}]",
            "t.yaml: rules[0].match.user: invalid regular expression '(': "
            "missing ), unterminated subpattern at position 0",
        ),
        (
            "rules: [{answer: {text: x}, match: {tool_result: {output: '[a'}}}]",
            "t.yaml: rules[0].match.tool_result.output: invalid regular expression '[a': "
            "unterminated character set at position 0",
        ),
        (
            "rules: [{answer: {text: x}, match: {tool_result: {}}}]",
            "t.yaml: rules[0].match.tool_result: give at least one of call_id, output, name",
        ),
        (
            "rules: [{answer: {text: x}, times: twice}]",
            "t.yaml: rules[0].times: must be 'once', 'always' or a whole number >= 1, got the string 'twice'",
        ),
        (
            "rules: [{answer: {text: x}, times: 0}]",
            "t.yaml: rules[0].times: must be 'once', 'always' or a whole number >= 1, got the number 0",
        ),
        (
            "rules: [{answer: {text: x}, times: [1]}]",
            "t.yaml: rules[0].times: expected a string or a whole number, got a list",
        ),
        (
            "rules: [{name: a, answer: {text: x}}, {name: a, answer: {text: y}}]",
            "t.yaml: rules[1].name: duplicate rule name 'a' (also rules[0])",
        ),
    ],
)
def test_each_validation_error_names_file_place_and_problem(text: str, message: str) -> None:
    assert problem(text) == message


def test_several_problems_are_listed_one_a_line() -> None:
    message = problem(
        """
        rules:
          - answer: {text: 1}
          - {answer: {text: x}, match: {user: '(', turn: 0}}
        """
    )
    # The regex is checked only once the shape is right, so it is not reported yet.
    assert message == (
        "t.yaml: 2 problems:\n"
        "  rules[0].answer.text: expected a string, got the number 1\n"
        "  rules[1].match.turn: must be at least 1, got 0"
    )


def test_semantic_problems_are_collected_together() -> None:
    message = problem(
        """
        rules:
          - {answer: {text: x}, times: never}
          - {answer: {text: x}, match: {model: '*'}}
        """
    )
    assert message == (
        "t.yaml: 2 problems:\n"
        "  rules[0].times: must be 'once', 'always' or a whole number >= 1, got the string 'never'\n"
        "  rules[1].match.model: invalid regular expression '*': nothing to repeat at position 0"
    )


def test_load_script_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rules: [{answer: {text: 1}}]\n")
    with pytest.raises(ScriptError) as caught:
        load_script(path)
    assert str(caught.value) == f"{path}: rules[0].answer.text: expected a string, got the number 1"
    assert caught.value.source == str(path)
    assert caught.value.problems == [("rules[0].answer.text", "expected a string, got the number 1")]


def test_load_script_reports_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ScriptError) as caught:
        load_script(path)
    assert str(caught.value) == f"{path}: file: cannot read it: No such file or directory"


def test_parse_script_takes_loaded_data_and_coerce_takes_anything(tmp_path: Path) -> None:
    data = {"rules": [{"answer": {"text": "x"}}]}
    assert parse_script(data, "d").rules[0].answer.text == "x"
    path = tmp_path / "s.yaml"
    path.write_text("fallback: {text: from file}\n")
    assert coerce_script(path).source == str(path)
    assert coerce_script(data).source == "<dict>"
    assert coerce_script("fallback: {text: t}").source == "<string>"
    script = Script()
    assert coerce_script(script) is script


def test_the_demo_script_calls_the_real_write_file_tool_with_valid_arguments() -> None:
    demo = load_demo_script()
    call = demo.rules[0].answer.calls[0]
    # No namespace, so it resolves whether the tools come as "storage" (the SDK's StorageToolkit)
    # or "thread_toolkit" (the real `meshagent worker join`).
    assert (call.namespace, call.name) == (None, "write_file")
    # The arguments must satisfy the real StorageToolkit tool's own input schema.
    jsonschema.validate(dict(call.arguments), WriteFileTool(mounts=[]).input_schema)
    assert call.arguments["path"] == "poem.txt" and call.arguments["overwrite"] is True
    assert 4 <= len(call.arguments["text"].splitlines()) <= 6
    assert demo.fallback is not None and "--llm-script" in (demo.fallback.text or "")
