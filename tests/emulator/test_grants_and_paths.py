"""Storage paths and grants agree with the real SDK's rules (the SDK is the oracle here)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from meshagent.api import ApiScope, ParticipantToken
from meshagent.api.file_permissions import storage_request_path
from meshagent.api.participant_token import StorageGrant as SdkStorageGrant

from localmesh.emulator.paths import InvalidPath, normalize_path
from localmesh.protocol.grants import QueuesGrant, StorageGrant
from localmesh.protocol.tokens import (
    ApiKey,
    AuthError,
    TokenVerifier,
    bearer_token,
    full_api_scope,
    mint_token,
)

segments = st.sampled_from([
    "a", "b", "out", "é", "x y", ".", "..", "", ".meshagent-directory",
    ".meshagent-upload-1", ".hidden", "a\\b", "c\x01", "d\x7f", "e\x9f", "-",
])
raw_paths = st.lists(segments, max_size=5).flatmap(
    lambda parts: st.sampled_from(["", "/", "./", "././"]).map(
        lambda lead: lead + "/".join(parts)
    )
).flatmap(lambda path: st.sampled_from([path, path + "/"]))
canonical_paths = st.lists(st.sampled_from(["a", "b", "out", "é", "in"]), max_size=4).map(
    "/".join
)
actions = st.sampled_from(["list", "read", "write", "delete", "presign"])


def _sdk_normalize(path: str) -> str | None:
    try:
        return storage_request_path(path)
    except ValueError:
        return None


def _ours(path: str) -> str | None:
    try:
        return normalize_path(path)
    except InvalidPath:
        return None


@settings(max_examples=400)
@given(raw_paths)
def test_path_normalisation_matches_the_sdk(path):
    assert _ours(path) == _sdk_normalize(path)


@pytest.mark.parametrize("path", [None, 3, ["a"], {"p": 1}])
def test_non_string_paths_are_refused(path):
    with pytest.raises(InvalidPath):
        normalize_path(path)


legacy_rules = st.lists(
    st.fixed_dictionaries({"path": canonical_paths}, optional={"read_only": st.booleans()}),
    max_size=4,
)
files_rules = st.lists(
    st.fixed_dictionaries({
        "path": canonical_paths,
        "recursive": st.booleans(),
        "actions": st.lists(actions, max_size=5, unique=True),
        "excluded_paths": st.lists(canonical_paths, max_size=2),
    }),
    max_size=4,
)
scopes = st.one_of(
    st.just({}),
    st.builds(lambda rules: {"paths": rules}, legacy_rules),
    st.builds(lambda rules: {"files": {"paths": rules}}, files_rules),
)


@settings(max_examples=400)
@given(scopes, actions, canonical_paths, st.booleans())
def test_storage_grant_matches_the_sdk(scope, action, path, subtree):
    ours = StorageGrant.model_validate(scope).allows(action, path, subtree)
    sdk = SdkStorageGrant.model_validate(scope).allows(action, path, subtree=subtree)
    assert ours == sdk


@given(st.one_of(st.none(), st.lists(st.sampled_from(["a", "b", "c"]))),
       st.sampled_from(["a", "b", "c", "d"]))
def test_queue_grant(names, queue):
    grant = QueuesGrant.model_validate({"send": names, "receive": names})
    expected = names is None or queue in names
    assert grant.can_send(queue) == grant.can_receive(queue) == expected


# ---------------------------------------------------------------- tokens


@pytest.fixture
def key() -> ApiKey:
    return ApiKey.generate()


def test_api_key_text_round_trips_and_matches_the_sdk(key):
    from meshagent.api.keys import parse_api_key

    assert ApiKey.parse(key.text) == key
    parsed = parse_api_key(key.text)
    assert (parsed.id, parsed.project_id, parsed.secret) == (
        key.key_id, key.project_id, key.secret)


@pytest.mark.parametrize("text", ["", "ma-", "xx-a-b-c", "ma-onlyone", "ma-a-b-", "ma-!!-??-s"])
def test_bad_api_keys_are_refused(text):
    with pytest.raises(AuthError):
        ApiKey.parse(text)


def test_emulator_tokens_read_as_sdk_tokens(key):
    jwt_text = mint_token(key, room="r", name="n", role="tool")
    parsed = ParticipantToken.from_jwt(jwt_text, token=key.secret)
    assert parsed.name == "n" and parsed.role == "tool"
    assert parsed.grant_scope("room") == "r"
    assert parsed.project_id == key.project_id and parsed.api_key_id == key.key_id
    assert parsed.get_api_grant().model_dump(exclude_none=True) == (
        ApiScope.agent_default().model_dump(exclude_none=True))
    assert set(full_api_scope()) == set(ApiScope.agent_default().model_dump(exclude_none=True))


def test_verifier(key):
    other = ApiKey.generate()
    verifier = TokenVerifier([key])
    good = mint_token(key, room="r", name="n")
    assert verifier.participant(good, room="r").name == "n"
    with pytest.raises(AuthError, match="room"):
        verifier.participant(good, room="s")
    with pytest.raises(AuthError, match="unknown key id"):
        verifier.verify(mint_token(other, room="r", name="n"))
    with pytest.raises(AuthError, match="expired"):
        verifier.verify(mint_token(key, room="r", name="n", expires_in=timedelta(seconds=-5)))
    with pytest.raises(AuthError, match="signature"):
        verifier.verify(mint_token(ApiKey(key.key_id, key.project_id, "wrong" * 8), room="r",
                                   name="n"))
    with pytest.raises(ValueError):
        mint_token(key, room="r", name="n", role="admin")


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"),
    ("bearer  abc ", "abc"),
    ("BEARER abc", "abc"),
    ("Bearer ", None),
    ("Bearer", None),
    ("Basic abc", None),
    ("", None),
    (None, None),
])
def test_bearer_token(header, token):
    assert bearer_token(header) == token
