"""``localmesh exec -- CMD`` and ``serve --import/--export-on-exit``: real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from localmesh_serve import serve

from localmesh.emulator.server import RoomServer
from localmesh.emulator.snapshot import Snapshot
from localmesh.protocol.tokens import ApiKey, mint_token
from localmesh.worker import RoomClient

pytestmark = pytest.mark.slow
EXIT = 15.0

# What the command run by exec does: reach the server it was given, through our client.
CLIENT = textwrap.dedent("""
    import asyncio, os, sys
    from localmesh.protocol.tokens import ApiKey, mint_token
    from localmesh.worker import RoomClient

    async def main():
        key = ApiKey.parse(os.environ["MESHAGENT_API_KEY"])
        token = mint_token(key, room="ci", name="job")
        async with RoomClient(os.environ["MESHAGENT_API_URL"], "ci", token) as room:
            seen = await room.queues.receive("inbox", wait=False)
            await room.storage.upload("result.txt", repr(seen).encode(), overwrite=True)
            await room.queues.send("outbox", {"done": True})

    asyncio.run(main())
    sys.exit(int(sys.argv[1]))
""")


def localmesh_command() -> list[str]:
    # The entry point through this interpreter: a test below splices it into a shell line.
    return [sys.executable, "-c", "from localmesh.cli import main; main()"]


def _clean_env() -> dict[str, str]:
    ours = ("MESHAGENT_", "OPENAI_", "ANTHROPIC_", "GROK_", "XAI_", "LOCALMESH_LOOP")
    return {k: v for k, v in os.environ.items() if not k.startswith(ours)}


def _exec(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*localmesh_command(), "exec", *args], env=_clean_env(), cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_exec_gives_the_command_the_server_and_exits_with_its_status(tmp_path: Path) -> None:
    names = ("MESHAGENT_API_URL", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GROK_BASE_URL")
    probe = f"import os, sys; print(*(os.environ[n] for n in {names!r})); sys.exit(7)"
    run = _exec("--", sys.executable, "-c", probe, cwd=tmp_path)
    assert run.returncode == 7, run.stderr
    api, openai, anthropic, grok = run.stdout.split()
    assert api.startswith("http://127.0.0.1:")  # and every LLM client is pointed at it too
    assert (openai, anthropic, grok) == (f"{api}/openai/v1", f"{api}/anthropic", f"{api}/grok/v1")
    assert _exec("--", sys.executable, "-c", CLIENT, "0", cwd=tmp_path).returncode == 0
    missing = _exec("--", "no-such-command-here", cwd=tmp_path)
    assert missing.returncode == 127 and "command not found" in missing.stderr


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param((), "uvloop", id="default"),
    pytest.param(("--loop", "asyncio"), "asyncio", id="--loop asyncio"),
])
def test_exec_names_the_event_loop_its_server_runs(tmp_path: Path, args: tuple[str, ...],
                                                   expected: str) -> None:
    run = _exec(*args, "--", sys.executable, "-c", CLIENT, "0", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"(event loop: {expected})" in run.stderr, run.stderr


def test_localmesh_token_inside_exec_signs_with_the_exec_servers_key(tmp_path: Path) -> None:
    # The command's own CLI calls reach the throwaway server: `localmesh token` takes the key
    # exec exported, and makes no data dir of its own in the working directory.
    command = " ".join(localmesh_command()[:2]) + ' "from localmesh.cli import main; main()"'
    script = (f'{command} token --room ci --name job > token.txt && '
              f'{sys.executable} -c "{CHECK_TOKEN}"')
    run = _exec("--", "sh", "-c", script, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (tmp_path / ".localmesh").exists()


# Inside exec: the token in token.txt opens room "ci" of the server exec started.
CHECK_TOKEN = ("import asyncio, os; from localmesh.worker import RoomClient; "
               "asyncio.run(RoomClient(os.environ['MESHAGENT_API_URL'], 'ci', "
               "open('token.txt').read().strip()).connect())")


async def test_exec_starts_from_an_export_and_exports_on_exit(tmp_path: Path) -> None:
    async with RoomServer() as server:
        token = server.mint_token(room="ci", name="seed")
        async with RoomClient(server.url, "ci", token) as room:
            await room.queues.send("inbox", {"task": 1})
        await server.export(tmp_path / "before")

    run = await asyncio.to_thread(
        _exec, "--import", str(tmp_path / "before"), "--export-on-exit", str(tmp_path / "after"),
        "--", sys.executable, "-c", CLIENT, "3", cwd=tmp_path)
    assert run.returncode == 3, run.stderr
    (ci,) = Snapshot.read(tmp_path / "after").rooms
    assert {q["name"]: q["messages"] for q in ci["queues"]} == {"inbox": [], "outbox": [{"done": True}]}
    (result,) = ci["files"]
    blob = tmp_path / "after" / "files" / result["sha256"]
    assert (result["path"], blob.read_text()) == ("result.txt", "{'task': 1}")


async def test_serve_imports_and_exports_on_exit(tmp_path: Path) -> None:
    async with RoomServer() as server:
        async with RoomClient(server.url, "r", server.mint_token(room="r", name="seed")) as room:
            await room.storage.upload("kept.txt", b"from the snapshot")
        await server.export(tmp_path / "in")
        api_key = server.api_key

    async with serve("--import", str(tmp_path / "in"), "--export-on-exit", str(tmp_path / "out"),
                     data_dir=None, log=tmp_path / "serve.log", env=_clean_env(), cwd=tmp_path,
                     stop_timeout=EXIT) as served:
        token = mint_token(ApiKey.parse(api_key), room="r", name="visitor")
        async with RoomClient(served.url, "r", token) as room:
            assert (await room.storage.download("kept.txt")).text == "from the snapshot"
            await room.queues.send("left", {"n": 1})
        await served.stop()
    output = served.log.read_bytes()
    assert served.process.returncode == 0, output.decode(errors="replace")
    (room,) = Snapshot.read(tmp_path / "out").rooms
    assert room["queues"] == [{"name": "left", "messages": [{"n": 1}]}]
    assert [f["path"] for f in room["files"]] == ["kept.txt"]


def test_serve_refuses_an_export_of_an_unknown_version(tmp_path: Path) -> None:
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "localmesh-export.json").write_text(
        '{"format": "localmesh-export", "version": 2, "keys": [], "rooms": []}')
    run = subprocess.run(
        [*localmesh_command(), "serve", "--in-memory", "--port", "0",
         "--import", str(tmp_path / "future")],
        env=_clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "format version 2" in run.stderr and "reads version 1 only" in run.stderr
