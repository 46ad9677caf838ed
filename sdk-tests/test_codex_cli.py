"""The real Codex CLI (`@openai/codex`, pinned in sdk-tests/codex) completing `codex exec "say hi"`
through the gateway: once on the OpenAI group (Responses passed through, with the WebSocket
attempt refused by 426 so it falls back to HTTP at once) and once on an Anthropic group
(Responses translated to Messages). Codex is configured with a custom provider whose base URL
is the gateway's `/v1` and whose key is a gateway key (see docs: Codex CLI setup)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import OPENAI_MODEL, REPO, Stack

CODEX = REPO / "sdk-tests" / "codex" / "node_modules" / ".bin" / "codex"
TEXT = "Hello from the fake upstream."


def run_codex(stack: Stack, home: Path, key: str, model: str, websockets: bool) -> subprocess.CompletedProcess[str]:
    provider = (
        f'{{name="sub2api",base_url="{stack.url}/v1",env_key="SUB2API_KEY",wire_api="responses",'
        f"supports_websockets={str(websockets).lower()},request_max_retries=0,stream_max_retries=0}}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
    env.update({"CODEX_HOME": str(home), "HOME": str(home), "SUB2API_KEY": key, "NO_COLOR": "1"})
    args = [str(CODEX), "exec", "--skip-git-repo-check", "-m", model, "-c", "model_provider=sub2api"]
    args += ["-c", f"model_providers.sub2api={provider}", "say hi"]
    return subprocess.run(
        args, cwd=home, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def codex_home(tmp_path: Path) -> Path:
    if not CODEX.exists():
        pytest.fail(f"{CODEX} is missing: scripts/sdk-tests.sh installs it (npm ci in sdk-tests/codex)")
    home = tmp_path / "codex-home"
    home.mkdir()
    return home


def group_rows(stack: Stack, group_id: int) -> list[dict]:
    return stack.admin("GET", f"/usage?page=1&page_size=100&group_id={group_id}")["items"]


def new_rows(stack: Stack, group_id: int, after_id: int) -> list[dict]:
    """The group's usage rows newer than `after_id` (waiting for the asynchronous writer)."""
    deadline = time.monotonic() + 10
    while True:
        rows = [r for r in group_rows(stack, group_id) if r["id"] > after_id]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def last_id(stack: Stack, group_id: int) -> int:
    return max((r["id"] for r in group_rows(stack, group_id)), default=0)


def test_codex_exec_on_the_openai_group(stack: Stack, codex_home: Path):
    before = last_id(stack, stack.openai_group_id)
    done = run_codex(stack, codex_home, stack.openai_key, OPENAI_MODEL, websockets=True)
    assert done.returncode == 0, done.stderr
    assert TEXT in done.stdout, (done.stdout, done.stderr)
    rows = new_rows(stack, stack.openai_group_id, before)
    assert rows and rows[0]["status_code"] == 200 and rows[0]["stream"] is True, rows
    assert rows[0]["output_tokens"] == 12, rows


def test_codex_exec_on_an_anthropic_group(stack: Stack, codex_home: Path):
    before = last_id(stack, stack.group_id)
    done = run_codex(stack, codex_home, stack.key, "claude-sonnet-4-5-20250929", websockets=False)
    assert done.returncode == 0, done.stderr
    assert TEXT in done.stdout, (done.stdout, done.stderr)
    rows = new_rows(stack, stack.group_id, before)
    assert rows and rows[0]["status_code"] == 200, rows
    assert (rows[0]["input_tokens"], rows[0]["output_tokens"]) == (25, 12), rows
