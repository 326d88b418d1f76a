"""Grants mean here exactly what they mean to the SDK's own model, or the token is refused.

The oracle is the real SDK 0.56 (``meshagent.api.participant_token``), imported by the tests
only. Two rules, checked on a table of cases derived from the SDK's code (the issue 16 cases
among them) and on hypothesis-made malformed grants:

1. localmesh never allows what the SDK's model denies: a scope the SDK refuses to parse is
   refused, and for a scope both accept, every decision is the SDK's.
2. Where localmesh refuses a scope the SDK accepts (unknown keys, unusable legacy paths),
   the refusal says why; docs/hardening.md lists these cases.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from meshagent.api.participant_token import ApiScope as SdkApiScope
from meshagent.api.participant_token import ParticipantToken
from pydantic import ValidationError

from localmesh.protocol.grants import API_SECTIONS, GrantError, parse_api_scope
from localmesh.protocol.tokens import ApiKey, AuthError, TokenVerifier

QUEUES = ["jobs", "j", "a", "secret", ""]
PATHS = ["", "secret", "secret/x.txt", "a", "a/b", "out/r.md", "public/p"]
ACTIONS = ["list", "read", "write", "delete", "presign"]


def _sdk(scope: Any) -> SdkApiScope | None:
    try:
        return SdkApiScope.model_validate(scope)
    except (ValidationError, ValueError, TypeError):
        return None


def _ours(scope: Any):
    try:
        return parse_api_scope(scope)
    except GrantError:
        return None


def _decisions(scope) -> dict[str, bool]:
    """Every decision localmesh takes from a grant, asked the same way of either model."""
    out: dict[str, bool] = {}
    for section in API_SECTIONS:
        out[f"has {section}"] = getattr(scope, section) is not None
    if scope.queues is not None:
        out["queues.list"] = bool(scope.queues.list)
        for name in QUEUES:
            out[f"send {name}"] = scope.queues.can_send(name)
            out[f"receive {name}"] = scope.queues.can_receive(name)
    if scope.storage is not None:
        for action in ACTIONS:
            for path in PATHS:
                for subtree in (False, True):
                    out[f"{action} {path} {subtree}"] = scope.storage.allows(action, path, subtree=subtree)
    return out


def _check_never_wider(scope: Any) -> str:
    """'same' when both accept and agree, 'refused' when we refuse; fails if we are wider."""
    ours, sdk = _ours(scope), _sdk(scope)
    if ours is None:
        return "refused"
    assert sdk is not None, f"localmesh accepted a scope the SDK's model refuses: {scope!r}"
    ours_decisions, sdk_decisions = _decisions(ours), _decisions(sdk)
    wider = {k for k, v in ours_decisions.items() if v and not sdk_decisions[k]}
    assert not wider, f"localmesh allows {sorted(wider)} that the SDK denies for {scope!r}"
    assert ours_decisions == sdk_decisions, scope
    return "same"


def _files(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"storage": {"files": {"paths": list(rules)}}}


# (case, scope, what localmesh does, what the SDK's own model does with it)
CASES: list[tuple[str, Any, str, str]] = [
    # --- the issue 16 cases
    ("legacy paths: './secret' read-only, then ''",
     {"storage": {"paths": [{"path": "./secret", "read_only": True}, {"path": ""}]}},
     "refused", "parses, then denies every storage call"),
    ("files rule with path '/'", _files({"path": "/", "recursive": True, "actions": ["write"]}),
     "refused", "refuses to parse"),
    ("files rule recursive: 'false'",
     _files({"path": "a", "recursive": "false", "actions": ["read", "write"]}),
     "same", "parses 'false' as false"),
    ("files rule excluded_paths hides 'secret'",
     _files({"path": "", "recursive": True, "actions": ["read", "write"], "excluded_paths": ["secret"]}),
     "same", "parses"),
    ("files rule excluded_paths: '/secret'",
     _files({"path": "", "recursive": True, "actions": ["read"], "excluded_paths": ["/secret"]}),
     "refused", "refuses to parse"),
    ("legacy path null", {"storage": {"paths": [{"path": None}]}}, "refused", "refuses to parse"),
    ("files rule path null", _files({"path": None, "recursive": True, "actions": ["read"]}),
     "refused", "refuses to parse"),
    ("queues list: 'false'", {"queues": {"list": "false"}}, "same", "parses 'false' as false"),
    ("queues send: 'jobs' (a string, not a list)", {"queues": {"send": "jobs"}},
     "refused", "refuses to parse"),
    ("queues receive: 'jobs'", {"queues": {"receive": "jobs"}}, "refused", "refuses to parse"),
    ("queues send: [1]", {"queues": {"send": [1]}}, "refused", "refuses to parse"),
    ("queues send: null (every queue)", {"queues": {"send": None}}, "same", "parses"),
    ("queues send: [] (no queue)", {"queues": {"send": []}}, "same", "parses"),
    # --- more, from the SDK's code
    ("unknown key in a section: queues.sends", {"queues": {"sends": ["a"]}},
     "refused", "ignores it: every queue allowed"),
    ("unknown section 'queue'", {"queue": {}}, "refused", "ignores it"),
    ("section given as a list", {"storage": ["a"]}, "refused", "refuses to parse"),
    ("section given as true", {"queues": True}, "refused", "refuses to parse"),
    ("section null", {"storage": None}, "same", "parses: no storage"),
    ("files rule without recursive", _files({"path": "a", "actions": ["read"]}),
     "refused", "refuses to parse (recursive is required)"),
    ("files rule with an unknown action", _files({"path": "a", "recursive": True, "actions": ["own"]}),
     "refused", "refuses to parse"),
    ("files rule actions: 'read' (not a list)",
     _files({"path": "a", "recursive": True, "actions": "read"}), "refused", "refuses to parse"),
    ("files rule with '..'", _files({"path": "a/../b", "recursive": True, "actions": ["read"]}),
     "refused", "refuses to parse"),
    ("files rule with a reserved name",
     _files({"path": ".meshagent-directory", "recursive": True, "actions": ["read"]}),
     "refused", "refuses to parse"),
    ("files rule with an extra key",
     _files({"path": "a", "recursive": True, "actions": ["read"], "deny": ["b"]}),
     "refused", "refuses to parse (extra keys forbidden)"),
    ("files with an extra key", {"storage": {"files": {"paths": [], "rules": []}}},
     "refused", "refuses to parse"),
    ("files: {} (no rule: nothing allowed)", {"storage": {"files": {}}}, "same", "parses"),
    ("files and paths both: files wins",
     {"storage": {"files": {"paths": [{"path": "out", "recursive": True, "actions": ["read"]}]},
                  "paths": [{"path": ""}]}}, "same", "parses"),
    ("legacy read_only: 'yes'", {"storage": {"paths": [{"path": "a", "read_only": "yes"}]}},
     "same", "parses 'yes' as true"),
    ("legacy read_only: 'maybe'", {"storage": {"paths": [{"path": "a", "read_only": "maybe"}]}},
     "refused", "refuses to parse"),
    ("legacy path '/out/'", {"storage": {"paths": [{"path": "/out/"}]}}, "same", "parses"),
    ("legacy path 'a//b'", {"storage": {"paths": [{"path": "a//b"}]}},
     "refused", "parses, then denies every storage call"),
    ("legacy path with a backslash", {"storage": {"paths": [{"path": "a\\b"}]}},
     "refused", "parses, then denies every storage call"),
    ("legacy paths: [] (nothing allowed)", {"storage": {"paths": []}}, "same", "parses"),
    ("database alias of dataset", {"database": {}}, "same", "parses as dataset"),
    ("secrets with a key", {"secrets": {"read": True}}, "refused", "refuses to parse"),
    ("llm models: 'gpt'", {"llm": {"models": "gpt"}}, "refused", "refuses to parse"),
    ("scope not an object", ["queues"], "refused", "refuses to parse"),
    ("scope null", None, "refused", "refuses to parse"),
]


@pytest.mark.parametrize(("case", "scope", "ours", "sdk"), CASES, ids=[c[0] for c in CASES])
def test_grant_table(case, scope, ours, sdk):
    assert _check_never_wider(scope) == ours
    sdk_parses = _sdk(scope) is not None
    assert sdk_parses == (not sdk.startswith("refuses")), f"the table misdescribes the SDK for {case}"
    if ours == "refused":
        with pytest.raises(GrantError) as refused:
            parse_api_scope(scope)
        assert str(refused.value)  # always a reason


def test_the_issue_16_escalation_is_refused():
    # issue 16: this grant let a participant write secret/x.txt; the SDK's model denies it all.
    scope = {"storage": {"paths": [{"path": "./secret", "read_only": True}, {"path": ""}]}}
    sdk = _sdk(scope)
    assert sdk is not None and not sdk.storage.allows("write", "secret/x.txt")
    with pytest.raises(GrantError, match="./secret"):
        parse_api_scope(scope)


# ---------------------------------------------------------------- fuzzing against the SDK

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2),
    st.sampled_from(["", "false", "true", "no", "1", "jobs", "/", "./secret", "a", "secret", "*"]),
)
names = st.sampled_from(["jobs", "j", "a", "secret", ""])
paths = st.sampled_from(["", "/", "a", "a/b", "secret", "./secret", "/out/", "a//b", "..", "x\\y"])
maybe_junk = lambda strategy: st.one_of(strategy, junk)  # noqa: E731

queue_sections = st.fixed_dictionaries({}, optional={
    "send": maybe_junk(st.one_of(st.none(), st.lists(maybe_junk(names), max_size=3))),
    "receive": maybe_junk(st.one_of(st.none(), st.lists(maybe_junk(names), max_size=3))),
    "list": junk,
    "sends": junk,
})
legacy = st.fixed_dictionaries({"path": maybe_junk(paths)}, optional={"read_only": junk})
file_rule = st.fixed_dictionaries({}, optional={
    "path": maybe_junk(paths),
    "recursive": junk,
    "actions": maybe_junk(st.lists(maybe_junk(st.sampled_from(ACTIONS)), max_size=3)),
    "excluded_paths": maybe_junk(st.lists(maybe_junk(paths), max_size=2)),
})
storage_sections = st.fixed_dictionaries({}, optional={
    "paths": maybe_junk(st.lists(maybe_junk(legacy), max_size=3)),
    "files": maybe_junk(st.fixed_dictionaries({}, optional={
        "paths": maybe_junk(st.lists(maybe_junk(file_rule), max_size=3))})),
})
api_scopes = st.fixed_dictionaries({}, optional={
    "queues": maybe_junk(queue_sections),
    "storage": maybe_junk(storage_sections),
    "messaging": maybe_junk(st.fixed_dictionaries({}, optional={"send": junk})),
    "database": maybe_junk(st.just({})),
    "storag": st.just({}),
})


@settings(max_examples=1500, deadline=None)
@given(api_scopes)
def test_malformed_grants_are_never_wider_than_the_sdk(scope):
    _check_never_wider(scope)


# ---------------------------------------------------------------- the token around the grants


@pytest.fixture
def key() -> ApiKey:
    return ApiKey.generate()


def _signed(key: ApiKey, grants: Any, name: Any = "n") -> str:
    import jwt

    return jwt.encode({"name": name, "grants": grants, "kid": key.key_id}, key.secret, algorithm="HS256")


TOKEN_CASES = [
    ("grant name is a list", [{"name": ["room"], "scope": "r"}], "grant name must be a string"),
    ("grant without scope", [{"name": "room"}], "'name' and 'scope'"),
    ("grant not an object", ["room"], "'name' and 'scope'"),
    ("grants not a list", {"room": "r"}, "must be a list"),
    ("two room grants", [{"name": "room", "scope": "r"}, {"name": "room", "scope": "s"}],
     "more than once"),
    ("two api grants", [{"name": "room", "scope": "r"}, {"name": "api", "scope": {}},
                        {"name": "api", "scope": {"queues": {}}}], "more than once"),
    ("room scope is a list", [{"name": "room", "scope": ["r"]}], "scope must be a string"),
    ("unknown grant", [{"name": "room", "scope": "r"}, {"name": "admin", "scope": "yes"}],
     "unknown grant 'admin'"),
    ("api scope null", [{"name": "room", "scope": "r"}, {"name": "api", "scope": None}],
     "api grant is not valid"),
    ("api scope with a bad field", [{"name": "room", "scope": "r"},
                                    {"name": "api", "scope": {"queues": {"send": "jobs"}}}],
     "api.queues.send"),
    ("role not a role", [{"name": "room", "scope": "r"}, {"name": "role", "scope": "root"},
                         {"name": "api", "scope": {}}], "role must be one of"),
]


@pytest.mark.parametrize(("case", "grants", "reason"), TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
def test_malformed_tokens_are_refused_with_a_reason(key, case, grants, reason):
    with pytest.raises(AuthError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        TokenVerifier([key]).participant(_signed(key, grants), room="r")


@pytest.mark.parametrize("name", ["", "  ", None, 3])
def test_a_token_without_a_usable_name_is_refused_like_the_sdk_does(key, name):
    token = _signed(key, [{"name": "room", "scope": "r"}, {"name": "api", "scope": {}}], name=name)
    with pytest.raises(Exception):  # noqa: B017 - the SDK's own refusal, whatever its type
        ParticipantToken.from_jwt(token, token=key.secret)
    with pytest.raises(AuthError, match="participant name"):
        TokenVerifier([key]).participant(token, room="r")
