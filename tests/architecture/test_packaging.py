"""What `pip install localmesh` gets: one top-level package, and a plugin that works alone.

These build the wheel and install it into a fresh virtual environment (dependencies come from
the package index), so they are slow.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )
    [built] = out.glob("localmesh-*.whl")
    return built


def test_the_wheel_has_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"localmesh"}
    for module in ("localmesh/emulator/server.py", "localmesh/worker/agent.py",
                   "localmesh/fixtures/plugin.py", "localmesh/protocol/wire.py",
                   "localmesh/scripted_llm/demo.yaml", "localmesh/emulator/studio/static/index.html",
                   "localmesh/emulator/studio/static/app.js", "localmesh/emulator/studio/static/studio.css"):
        assert module in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "localmesh = localmesh.cli:main" in text
    assert "localmesh = localmesh.fixtures.plugin" in text


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with plain ``pip install localmesh`` (no extras)."""
    where = tmp_path_factory.mktemp("venv") / "env"
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "-q", str(wheel)],
        check=True, capture_output=True, timeout=900,
    )
    return python


USER_PROJECT_TEST = '''
    from localmesh import RoomServer


    async def test_a_scripted_worker_writes_a_file(localmesh_worker, localmesh_room, localmesh_server):
        worker = await localmesh_worker(queue="tasks", llm="""
    rules:
      - match: {tool_result: false}
        answer: {calls: [{name: write_file, arguments: {path: out.txt, text: hi, overwrite: true}}]}
      - answer: {text: done}
    """)
        room = await localmesh_room("test", name="sender")
        await room.queues.send("tasks", {"prompt": "write"})
        from localmesh.fixtures.worker import run_until_drained

        await run_until_drained(worker, localmesh_server)
        assert (await room.storage.download("out.txt")).text == "hi"
        assert isinstance(localmesh_server, RoomServer)


    async def test_the_scripted_llm_fixture(scripted_llm):
        adapter = scripted_llm("rules: [{answer: {text: hello}}]")
        await adapter.transport.player.respond({"model": "m", "input": "hi"})  # strict: rules used
        assert [entry.rule for entry in adapter.transport.player.transcript] == ["rules[0]"]
'''


def test_a_fresh_project_uses_the_plugin_despite_its_own_worker_and_fixtures(
    fresh_venv: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    # A Worker project's own modules, named like our folders: they must not shadow localmesh.
    (project / "worker.py").write_text("raise SystemExit('the user project worker.py was imported')\n")
    (project / "fixtures.py").write_text("raise SystemExit('the user project fixtures.py was imported')\n")
    (project / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    (project / "test_user.py").write_text(textwrap.dedent(USER_PROJECT_TEST))

    imported = subprocess.run(
        [fresh_venv, "-c", "import localmesh.fixtures.plugin"],
        cwd=project, capture_output=True, text=True, timeout=120,
    )
    assert imported.returncode == 0, imported.stderr

    run = subprocess.run(
        [fresh_venv, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


def test_the_installed_package_serves_the_studio_page(fresh_venv: Path, tmp_path: Path) -> None:
    # The page's files are package data: a plain install must have them where the routes look.
    check = (
        "from localmesh.emulator.studio.routes import STATIC_DIR\n"
        "names = sorted(p.name for p in STATIC_DIR.iterdir())\n"
        "assert {'index.html', 'app.js', 'studio.css'} <= set(names), names\n"
        "assert 'site-packages' in str(STATIC_DIR), STATIC_DIR\n"
    )
    result = subprocess.run(
        [fresh_venv, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
