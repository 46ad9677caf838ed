"""The real Claude Code CLI (`@anthropic-ai/claude-code`, pinned in sdk-tests/claude) completing
`claude -p "say hi" --output-format json` through a Claude OAuth account, and that account's
token refresh failing once the provider revoked it.

What genuine Claude Code sends is taken from the CLI itself: it runs once straight against the
fake upstream (`direct`), and the request the gateway relays for it must be the same but for
the account's identity (Bearer token, `oauth-2025-04-20` beta): same user agent, every beta of
its own, and no second Claude Code system prompt.

The CLI runs with a fresh HOME, telemetry, auto-update, error reporting and other
non-essential traffic off (`CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`), and with HTTP(S)_PROXY
pointing at a local trap that fails the test when anything tries to reach a host other than
127.0.0.1 (NO_PROXY)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, OAuthGroup, Stack, sign_in

CLAUDE = REPO / "sdk-tests" / "claude" / "node_modules" / ".bin" / "claude"
# The version pinned in sdk-tests/claude/package.json.
CLAUDE_VERSION = "2.1.197"
TEXT = "Hello from the fake upstream."
PROMPT = "say hi"
CLAUDE_CODE_PROMPT = "You are Claude Code, Anthropic's official CLI for Claude."
OAUTH_BETA = "oauth-2025-04-20"


class EgressTrap:
    """A listener on 127.0.0.1 given to the CLI as its HTTP(S) proxy: with NO_PROXY naming
    127.0.0.1, only traffic for another host reaches it. It records the first bytes of each
    connection and closes it, so nothing gets through."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self._sock.getsockname()[1]
        self.hits: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.hits.append(conn.recv(256) or b"(nothing sent)")
                except OSError:
                    self.hits.append(b"(nothing sent)")

    def close(self) -> None:
        self._sock.close()


@pytest.fixture(scope="module")
def egress_trap():
    trap = EgressTrap()
    yield trap
    trap.close()


@dataclass
class Run:
    """One `claude -p` run: its process result and the upstream requests it caused."""

    done: subprocess.CompletedProcess[str]
    upstream: list[dict[str, Any]]

    def result(self) -> dict[str, Any]:
        assert self.done.returncode == 0, (self.done.stdout, self.done.stderr)
        try:
            return json.loads(self.done.stdout)
        except ValueError:
            raise AssertionError(f"claude printed no JSON: {self.done.stdout!r} {self.done.stderr!r}") from None

    def message(self) -> dict[str, Any]:
        """The one `/v1/messages` request that reached the fake."""
        messages = [r for r in self.upstream if r["method"] == "POST" and r["path"].endswith("/v1/messages")]
        assert len(messages) == 1, [(r["method"], r["uri"], r["credential"]) for r in self.upstream]
        return messages[0]


def claude_env(home: Path, base_url: str, key: str, trap: EgressTrap) -> dict[str, str]:
    proxies = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_")) and k.lower() not in proxies}
    env.update(
        {
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_MAX_RETRIES": "1",
            "NO_COLOR": "1",
            "HTTP_PROXY": trap.url,
            "HTTPS_PROXY": trap.url,
            "http_proxy": trap.url,
            "https_proxy": trap.url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env


def run_claude(stack: Stack, home: Path, base_url: str, key: str, trap: EgressTrap) -> Run:
    """Runs `claude -p PROMPT --output-format json` in `home` against `base_url`; returns it
    with the requests the fake received meanwhile."""
    stack.clear_fake_journal()
    done = subprocess.run(
        [str(CLAUDE), "-p", PROMPT, "--output-format", "json"],
        cwd=home,
        env=claude_env(home, base_url, key, trap),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert trap.hits == [], f"claude tried to reach another host: {trap.hits}"
    return Run(done, stack.fake_journal())


@pytest.fixture(scope="module")
def claude_home(tmp_path_factory: pytest.TempPathFactory, egress_trap: EgressTrap) -> Path:
    """One HOME (and working folder) for every run here, so the CLI's system prompt, which
    names its working folder, is the same in each. Checks the installed CLI is the pinned one."""
    if not CLAUDE.exists():
        pytest.fail(f"{CLAUDE} is missing: scripts/sdk-tests.sh installs it (npm ci in sdk-tests/claude)")
    home = tmp_path_factory.mktemp("claude-home")
    version = subprocess.run(
        [str(CLAUDE), "--version"],
        env=claude_env(home, "http://127.0.0.1:9", "unused", egress_trap),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert version.stdout.split()[:1] == [CLAUDE_VERSION], (version.stdout, version.stderr)
    return home


@pytest.fixture(scope="module")
def direct(stack: Stack, claude_home: Path, egress_trap: EgressTrap) -> dict[str, Any]:
    """What Claude Code sends: its `/v1/messages` request when it talks to the fake directly."""
    run = run_claude(stack, claude_home, stack.fake_url, "sk-ant-claude-code-direct", egress_trap)
    assert run.result()["result"] == TEXT, run.done.stdout
    request = run.message()
    assert request["credential"] == "sk-ant-claude-code-direct"
    assert request["headers"]["user-agent"].startswith(f"claude-cli/{CLAUDE_VERSION}"), request["headers"]
    return request


def betas(request: dict[str, Any]) -> list[str]:
    return [b.strip() for b in request["headers"].get("anthropic-beta", "").split(",") if b.strip()]


def system_texts(request: dict[str, Any]) -> list[str]:
    system = request["body"].get("system")
    if isinstance(system, str):
        return [system]
    return [block.get("text", "") for block in system or []]


def usage_row(stack: Stack, group_id: int, after_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        rows = stack.admin("GET", f"/usage?page=1&page_size=100&group_id={group_id}")["items"]
        rows = [r for r in rows if r["id"] > after_id]
        if rows or time.monotonic() > deadline:
            assert len(rows) == 1, rows
            return rows[0]
        time.sleep(0.1)


def test_claude_code_through_an_oauth_account(
    stack: Stack, oauth: OAuthGroup, claude_home: Path, egress_trap: EgressTrap, direct: dict[str, Any]
):
    rows = stack.admin("GET", f"/usage?page=1&page_size=100&group_id={oauth.group_id}")["items"]
    before = max((r["id"] for r in rows), default=0)

    run = run_claude(stack, claude_home, stack.url, oauth.key, egress_trap)
    result = run.result()
    assert (result["is_error"], result["result"]) == (False, TEXT), result

    upstream = run.message()
    headers = upstream["headers"]
    # The account's identity, not the client's key.
    assert re.fullmatch(r"Bearer fake-at-\d+", headers.get("authorization", "")), headers
    assert "x-api-key" not in headers, headers
    assert oauth.key not in json.dumps(upstream)
    assert upstream["path"] == "/v1/messages" and "beta=true" in (upstream["query"] or "").split("&"), upstream["uri"]
    # Claude Code's own betas all kept, the OAuth one added.
    sent = betas(upstream)
    assert OAUTH_BETA in sent, sent
    assert "claude-code-20250219" in betas(direct)
    missing = [b for b in betas(direct) if b not in sent]
    assert not missing, f"betas Claude Code sent that were dropped: {missing} (upstream: {sent})"
    # Genuine Claude Code passes as it is: same user agent, same system prompt (no second
    # Claude Code prompt put in front), same model.
    assert headers.get("user-agent") == direct["headers"]["user-agent"]
    texts = system_texts(upstream)
    assert not any(t.startswith(CLAUDE_CODE_PROMPT) for t in texts), texts[:2]
    assert texts == system_texts(direct), (texts[:2], system_texts(direct)[:2])
    assert upstream["body"]["model"] == direct["body"]["model"]
    assert upstream["body"].get("stream") == direct["body"].get("stream")

    row = usage_row(stack, oauth.group_id, before)
    assert (row["account_id"], row["api_key_id"], row["status_code"]) == (oauth.account_id, oauth.key_id, 200), row


def test_refresh_after_the_provider_revoked_the_grant_puts_the_account_in_error(stack: Stack):
    # An account of its own (in a group of its own), so the other tests' account keeps working.
    group = stack.admin("POST", "/groups", {"name": "sdk-oauth-revoked", "platform": "anthropic"})["id"]
    account = sign_in(stack, "sdk-oauth-revoked-account", [group])
    assert account["type"] == "oauth" and account["oauth"]["expires_at"], account

    # A refresh works while the grant is live.
    refreshed = stack.admin("POST", f"/accounts/{account['id']}/refresh")
    assert refreshed["status"] == "active", refreshed
    grants = [r["fields"].get("grant_type") for r in stack.fake_token_requests()]
    assert "refresh_token" in grants, grants

    stack.fake_control_call("POST", "/oauth/revoke")
    status, doc = stack.admin_request("POST", f"/accounts/{account['id']}/refresh")
    assert not 200 <= status < 300, (status, doc)

    view = stack.admin("GET", f"/accounts/{account['id']}")
    assert view["status"] == "error", view
    reason = " ".join(filter(None, [view.get("error_message"), (view.get("oauth") or {}).get("refresh_error")]))
    assert "invalid_grant" in reason, view
