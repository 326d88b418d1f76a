"""Container images, as localmesh maps them onto this machine instead of pulling them.

Two kinds of MeshAgent runtime image run as the local environment: the CLI image
(``meshagent/cli:default``, ``…/meshagent-public/images/cli:…``) runs commands with the
``meshagent`` installed beside localmesh, and the python SDK image (``…/python-sdk:…``)
runs them with this Python and its installed SDK. Code images mounted with
``container.storage.images`` come from local folders named with ``--mount-image IMAGE=DIR``.
Anything else cannot be had offline.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Runtime = Literal["cli", "python"]

_RUNTIME_NAMES: dict[str, Runtime] = {
    "cli": "cli", "cli-slim": "cli", "python-sdk": "python", "python-sdk-slim": "python",
}


def repository(image: str) -> str:
    """``registry/path/name`` without its tag or digest."""
    name = image.split("@", 1)[0]
    head, sep, tail = name.rpartition(":")
    return head if sep and "/" not in tail else name


def short_name(image: str) -> str:
    """The last path segment without a tag: ``python-docs-examples``."""
    return repository(image).rsplit("/", 1)[-1]


def _is_meshagent(repo: str) -> bool:
    return repo.startswith("meshagent/") or "/meshagent-public/" in f"/{repo}" or "/meshagent/" in repo


def runtime_of(image: str) -> Runtime | None:
    """Which local runtime stands in for ``image``, or None if it is not a runtime image."""
    repo = repository(image)
    if not _is_meshagent(repo):
        return None
    return _RUNTIME_NAMES.get(short_name(image))


def parse_mount_option(text: str) -> tuple[str, Path]:
    """``IMAGE=DIR`` from ``--mount-image``; ValueError says what is wrong."""
    image, sep, folder = text.partition("=")
    if not sep or not image.strip() or not folder.strip():
        raise ValueError(f"--mount-image takes IMAGE=DIR, not {text!r}")
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"--mount-image {image}: {path} is not a folder")
    return image.strip(), path


@dataclass(frozen=True)
class LocalRuntime:
    """What this machine offers in place of container images."""

    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    mount_images: dict[str, Path] = field(default_factory=dict)

    def meshagent_cli(self) -> str | None:
        return shutil.which("meshagent", path=str(self.bin_dir))

    def has_python_sdk(self) -> bool:
        # find_spec on the top-level package only: nothing of the SDK is imported.
        return importlib.util.find_spec("meshagent") is not None

    def missing(self, runtime: Runtime) -> str | None:
        """Why ``runtime`` cannot run here, or None when it can."""
        if runtime == "cli" and self.meshagent_cli() is None:
            return (f"it runs the MeshAgent CLI, and no `meshagent` is installed in {self.bin_dir}"
                    " (pip install meshagent-cli)")
        if runtime == "python" and not self.has_python_sdk():
            return "it runs the MeshAgent python SDK, which is not installed beside localmesh"
        return None

    def mounted_folder(self, image: str) -> Path | None:
        """The local folder for a code image: matched by full reference, repository or name."""
        for key in (image, repository(image), short_name(image)):
            if key in self.mount_images:
                return self.mount_images[key]
        return None
