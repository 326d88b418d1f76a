"""The MeshAgent SDK version matrix: the compatibility suite against each SDK + CLI version.

    nox -s compat                  every version (what `bash scripts/matrix.sh` runs)
    nox -s "compat(0.42.2)"        one version
    nox -t ci                      the oldest and the newest (CI runs these on every change)
    nox -s compat -- -k storage    arguments after -- go to pytest

Each session is a virtual environment of its own, built from the Python 3.13 that
scripts/find-python.sh finds (the one scripts/bootstrap.sh uses): localmesh (editable) plus
meshagent-api, -cli, -agents, -openai, -anthropic and -tools of that version. The versions live in
pyproject.toml, [tool.localmesh.sdk-matrix]. With LOCALMESH_TARGET=real and MeshAgent
credentials in the environment, a session checks a real room instead (the parity kit).
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
MATRIX = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["localmesh"]["sdk-matrix"]
SDK_DISTRIBUTIONS = ("meshagent-api", "meshagent-cli", "meshagent-agents", "meshagent-openai",
                     "meshagent-anthropic", "meshagent-tools")

nox.options.sessions = ["compat"]
nox.options.reuse_venv = "yes"  # pip still brings each session up to date; CI starts from none


def python313() -> str:
    found = subprocess.run(["bash", str(ROOT / "scripts" / "find-python.sh")],
                           capture_output=True, text=True, check=False)
    if found.returncode != 0 or not found.stdout.strip():
        raise SystemExit("the SDK matrix needs Python 3.13: install it (e.g. 'pyenv install 3.13') "
                         "or set PYTHON=/path/to/python3.13")
    return found.stdout.strip()


@nox.session(python=python313(), venv_backend="venv")
@nox.parametrize("sdk", [
    nox.param(version, id=version, tags=["ci"] if version in MATRIX["ci"] else [])
    for version in MATRIX["versions"]
])
def compat(session: nox.Session, sdk: str) -> None:
    """The compatibility suite (tests/compat) with MeshAgent SDK + CLI ``sdk``."""
    session.install("--disable-pip-version-check", "-e", str(ROOT),
                    *(f"{name}=={sdk}" for name in SDK_DISTRIBUTIONS))
    session.run(
        "python", "-m", "pytest", "-m", "compat", "tests/compat", "-q", "-rs", *session.posargs,
        # checked before anything runs: the suite refuses to test another version by mistake
        env={"LOCALMESH_EXPECT_SDK": sdk},
    )
