"""The API keys an emulator accepts, and the project namespace each key opens.

The main project's keys are kept in SQLite (created on first start). Further projects are
added at run time and live in memory only: the pytest harness gives each test a project of
its own on a shared server, so rooms of the same name in two tests never meet.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from localmesh.protocol.tokens import ApiKey

from .namespaces import MAIN
from .store import Store


async def load_or_create_keys(store: Store) -> list[ApiKey]:
    keys = [ApiKey(key_id, project, secret) for key_id, project, secret in await store.api_keys()]
    if not keys:
        key = ApiKey.generate()
        await store.add_api_key(key.key_id, key.project_id, key.secret, datetime.now(UTC).isoformat())
        keys = [key]
    return keys


async def adopt_keys(store: Store, keys: list[ApiKey]) -> None:
    """Accept ``keys`` (from a snapshot) besides the store's own. A store with no key yet
    takes them as its own, the first as its main key; otherwise they are added after the
    existing ones, which stay first."""
    known = {key_id for key_id, _, _ in await store.api_keys()}
    start = datetime.now(UTC)
    for index, key in enumerate(keys):
        if key.key_id not in known:
            # Distinct, increasing times keep the order (the main key is the oldest).
            created = (start + timedelta(microseconds=index)).isoformat()
            await store.add_api_key(key.key_id, key.project_id, key.secret, created)


class Keyring:
    """Key id -> key, and key id -> namespace. ``by_id`` is what the token verifier reads."""

    def __init__(self, main_keys: list[ApiKey]) -> None:
        if not main_keys:
            raise ValueError("the main project needs at least one key")
        self.main = main_keys[0]
        self.by_id: dict[str, ApiKey] = {}
        self._namespaces: dict[str, str] = {}
        self._by_text: dict[str, ApiKey] = {}
        self._counter = itertools.count(1)
        for key in main_keys:
            self.add(key, MAIN)

    def add(self, key: ApiKey, namespace: str) -> None:
        self.by_id[key.key_id] = key
        self._namespaces[key.key_id] = namespace
        self._by_text[key.text] = key

    def new_project(self) -> tuple[ApiKey, str]:
        """A fresh project: a new key and a namespace no other project has."""
        namespace = f"p{next(self._counter)}"
        key = ApiKey.generate()
        self.add(key, namespace)
        return key, namespace

    def remove_namespace(self, namespace: str) -> None:
        if namespace == MAIN:
            raise ValueError("the main project cannot be removed")
        for key_id in [k for k, ns in self._namespaces.items() if ns == namespace]:
            key = self.by_id.pop(key_id)
            del self._namespaces[key_id], self._by_text[key.text]

    def namespace(self, key_id: str | None) -> str:
        """The namespace of a key id (a key that is gone: the main project's)."""
        return self._namespaces.get(key_id or "", MAIN)

    def project_namespace(self, project_id: str) -> str | None:
        """The namespace of the project ``project_id``, if one of its keys is here."""
        for key_id, key in self.by_id.items():
            if key.project_id == project_id:
                return self._namespaces[key_id]
        return None

    def by_text(self, text: str) -> ApiKey | None:
        """The key whose ``ma-...`` text this is, if the emulator has it."""
        return self._by_text.get(text)
