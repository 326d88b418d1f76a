"""The layers hold: import-linter's contracts (pyproject.toml), and one name per module."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import localmesh

ROOT = Path(__file__).resolve().parents[2]
OLD_TOP_LEVEL = ("emulator", "worker", "fixtures")


def test_the_import_contracts_are_kept() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "lint-imports is not installed (it comes with the test extra)"
    # Run outside the checkout, so the package is found as installed, not from the cwd.
    result = subprocess.run(
        [lint_imports, str(ROOT / "pyproject.toml")],
        cwd=ROOT.parent, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _python_files() -> list[Path]:
    folders = ("localmesh", "emulator", "worker", "fixtures", "tests", "bench")
    return [
        path
        for folder in folders
        for path in (ROOT / folder).rglob("*.py")
        if not (folder == "localmesh" and path.relative_to(ROOT / folder).parts[0] in OLD_TOP_LEVEL)
    ]


def test_no_code_imports_a_folder_by_its_bare_name() -> None:
    """``import worker`` would make a second copy of every class: always ``localmesh.worker``."""
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"
                for name in names
                if name.split(".")[0] in OLD_TOP_LEVEL
            ]
    assert not offenders, "\n".join(offenders)


def test_every_module_imports_under_one_name() -> None:
    for module in pkgutil.walk_packages(localmesh.__path__, "localmesh."):
        importlib.import_module(module.name)
    assert not [name for name in sys.modules if name.split(".")[0] in OLD_TOP_LEVEL]


def test_the_public_names_load_on_first_use() -> None:
    code = (
        "import sys, localmesh\n"
        "assert 'localmesh.emulator' not in sys.modules\n"
        "assert 'fastapi' not in sys.modules\n"
        "from localmesh import RoomServer, ScriptedLLMAdapter, Worker\n"
        "from localmesh.emulator.server import RoomServer as Same\n"
        "assert RoomServer is Same\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT.parent, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
