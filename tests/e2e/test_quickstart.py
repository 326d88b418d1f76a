"""The README's first command works: the offline quickstart prints the poem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from localmesh.scripted_llm import load_demo_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_script_prints_the_poem_the_worker_saved(tmp_path: Path) -> None:
    env = {
        **os.environ,
        # Run inside this test's environment instead of making a new one.
        "LOCALMESH_VENV": sys.prefix,
        "LOCALMESH_SKIP_INSTALL": "1",
        "TMPDIR": str(tmp_path),
        "HOME": str(tmp_path),
    }
    for name in ("MESHAGENT_API_URL", "MESHAGENT_API_KEY", "MESHAGENT_TOKEN", "MESHAGENT_ROOM",
                 "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        env.pop(name, None)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "quickstart.sh")],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    poem = load_demo_script().rules[0].answer.calls[0].arguments["text"]
    assert result.stdout.rstrip().endswith(poem), result.stdout
    assert "processed 1, failed 0" in result.stdout + result.stderr
    # The server and its temporary data dir are cleaned up.
    assert not list(tmp_path.glob("localmesh-quickstart.*"))
