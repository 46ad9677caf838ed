"""Session fixtures for the SDK tests: the real `sub2api` binary and the `fake-upstream` binary
as subprocesses on 127.0.0.1, in a throw-away folder, set up through the admin REST API.

Anthropic groups, each with one account pointed at the fake upstream and one gateway key:

- plain: the account serves any model under its own name;
- mapped: the account serves only `MAPPED_MODEL`, sent upstream as `MAPPED_UPSTREAM`;
- paused: the account is not schedulable, so the group has no usable account.

And one OpenAI group (`openai`) with one OpenAI API-key account on the same fake (base URL
written with `/v1`) and one key: the account serves `OPENAI_MAPPED_MODEL`, sent upstream as
`OPENAI_MAPPED_UPSTREAM`, and `OPENAI_MODEL` under its own name.

The fake runs with its control listener (`--control-port`): `Stack.fake_journal()` returns what
it received (method, uri, path, query, headers by lowercase name, credential, JSON body), and
`Stack.fake_control_call` reaches its other control routes. The gateway's OAuth endpoints
(Claude and OpenAI) point at the fake's token endpoint, so accounts signed in through the admin
REST flow get the fake's tokens (`fake-at-N`) and serve from the fake too (OAuth accounts have no
base URL of their own: `gateway.anthropic_base_url` is the fake). The `oauth` fixture (created on
first use) is an Anthropic group with one Claude OAuth account signed in that way, and a key.

The binaries come from `SUB2API_BIN` and `FAKE_UPSTREAM_BIN` (default: target/debug). Both
processes are stopped at the end of the session whatever happens; when a test failed, their
logs are printed in the summary.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

REPO = Path(__file__).resolve().parent.parent
ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "sdk-tests-password-1"
ADMIN_API_KEY = "admin-" + "0123456789abcdef" * 3
ENCRYPTION_KEY = "ab" * 32
# The gateway's request body limit in these tests (`gateway.max_body_size`). Claude Code's
# requests are about 80 KB (system prompt and tool definitions), so it must stay above that.
MAX_BODY_SIZE = 256 * 1024
# `retry-after` of a 503 when a group has no usable account (`rate_limit.fallback_cooldown_seconds`,
# 60 by default). The SDK waits that long before each retry, so the tests keep it short.
FALLBACK_COOLDOWN_SECONDS = 1
MAPPED_MODEL = "claude-alias"
MAPPED_UPSTREAM = "claude-haiku-4-5-20251001"
# The OpenAI account's mapping: an alias, and a model served under its own name. Both the
# alias's target and OPENAI_MODEL are priced in proxy/data/model_prices.json.
OPENAI_MODEL = "gpt-5.1"
OPENAI_MAPPED_MODEL = "gpt-alias"
OPENAI_MAPPED_UPSTREAM = "gpt-5.1-2025-11-13"
STARTUP_TIMEOUT = 60.0

# Every HTTP call of the harness goes to 127.0.0.1 only: no proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var, ""), "127.0.0.1", "localhost"]))
# The SDKs read these when a client does not pass them (the tests always pass the key and
# base URL; organization, project and the like must not come along either).
for _var in [v for v in os.environ if v.startswith(("ANTHROPIC_", "OPENAI_"))]:
    del os.environ[_var]

# (title, text) sections printed in the terminal summary (process logs after a failure).
_REPORT: list[tuple[str, str]] = []


def _binary(var: str, default: str) -> Path:
    path = Path(os.environ.get(var) or REPO / "target" / "debug" / default)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not an executable ({var}); build it first or run scripts/sdk-tests.sh")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies, however it dies
    (Linux `PR_SET_PDEATHSIG`), so no gateway outlives a killed test run."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _terminate_as_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    # SIGTERM (a timeout, a CI runner stopping) ends the run like Ctrl-C: fixtures are torn
    # down, the children stopped, the logs printed.
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, _terminate_as_interrupt)


class Process:
    """A child process whose stdout and stderr go to one log file."""

    def __init__(self, name: str, args: list[str], cwd: Path, env: dict[str, str]):
        self.name = name
        self.log_path = cwd / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        atexit.register(self.stop)

    def log(self) -> str:
        try:
            return _ANSI.sub("", self.log_path.read_text(errors="replace"))
        except OSError as e:
            return f"(cannot read {self.log_path}: {e})"

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Asks the process to stop, kills it after 10 s; returns its exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        if not self._log.closed:
            self._log.close()
        return self.popen.returncode


@dataclass
class Stack:
    """The running gateway and what the admin API created on it."""

    url: str
    fake_url: str
    # The fake's control listener (see proxy/src/bin/fake_upstream.rs).
    fake_control: str
    gateway: Process
    user_id: int
    group_id: int
    key: str
    key_id: int
    account_id: int
    mapped_group_id: int
    mapped_key: str
    mapped_key_id: int
    mapped_account_id: int
    paused_key: str
    openai_group_id: int
    openai_key: str
    openai_key_id: int
    openai_account_id: int

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return admin_call(self.url, method, path, body)

    def admin_request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """An admin REST call that may fail: the HTTP status and the whole response document."""
        return admin_request(self.url, method, path, body)

    def fake_control_call(self, method: str, path: str, body: Any = None) -> Any:
        """A call to the fake's control listener; returns the JSON answer (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.fake_control}{path}", data=data, method=method, headers={"content-type": "application/json"}
        )
        try:
            with _OPENER.open(req, timeout=30) as res:
                raw = res.read()
        except urllib.error.HTTPError as e:
            raise AssertionError(f"fake {method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')}") from None
        return json.loads(raw) if raw else None

    def fake_journal(self) -> list[dict[str, Any]]:
        """Every request the fake upstream recorded (token requests aside), oldest first."""
        return self.fake_control_call("GET", "/journal")

    def clear_fake_journal(self) -> None:
        self.fake_control_call("DELETE", "/journal")

    def fake_token_requests(self) -> list[dict[str, Any]]:
        """Every request the fake's OAuth token endpoint received: `{path, fields}`, oldest first."""
        return self.fake_control_call("GET", "/oauth/requests")

    def usage_rows(self, request_ids: list[str], timeout: float = 10.0) -> dict[str, dict[str, Any]]:
        """The usage rows of `request_ids` (gateway `x-request-id`s), waiting for the
        asynchronous writer; fails when one has not appeared within `timeout`."""
        wanted = set(request_ids)
        deadline = time.monotonic() + timeout
        while True:
            page = self.admin("GET", "/usage?" + urllib.parse.urlencode({"page": 1, "page_size": 500}))
            found = {row["request_id"]: row for row in page["items"] if row["request_id"] in wanted}
            if len(found) == len(wanted) or time.monotonic() > deadline:
                missing = wanted - found.keys()
                assert not missing, f"no usage row for {sorted(missing)} after {timeout}s; rows: {page['items']}"
                return found
            time.sleep(0.1)

    def client(self, key: str | None = None, **options: Any) -> anthropic.Anthropic:
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 30.0)
        return anthropic.Anthropic(base_url=self.url, api_key=key or self.key, **options)

    def openai_client(self, key: str | None = None, **options: Any) -> openai.OpenAI:
        """An `openai` client on the gateway's `/v1`, with the OpenAI group's key."""
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 30.0)
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or self.openai_key, **options)


def admin_call(base: str, method: str, path: str, body: Any = None) -> Any:
    """An admin REST call with the admin key; returns `data`, failing on any error."""
    status, doc = admin_request(base, method, path, body)
    assert 200 <= status < 300, f"{method} {path}: HTTP {status}: {doc}"
    assert isinstance(doc, dict) and doc.get("code") == 0, f"{method} {path}: {doc}"
    return doc["data"]


def admin_request(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """An admin REST call with the admin key: the HTTP status and the response document
    (parsed JSON, or the text when it is not JSON), whatever the status."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{base}/api/v1/admin{path}",
        data=data,
        method=method,
        headers={"x-api-key": ADMIN_API_KEY, "content-type": "application/json", "accept": "application/json"},
    )
    try:
        with _OPENER.open(req, timeout=30) as res:
            status, raw = res.status, res.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def _wait_for_fake(fake: Process) -> tuple[str, str]:
    """The fake's base URL and its control listener's (the first two lines it prints)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        lines = [line.strip() for line in fake.log().splitlines()[:2]]
        if len(lines) == 2 and all(re.fullmatch(r"127\.0\.0\.1:\d+", line) for line in lines):
            return f"http://{lines[0]}", f"http://{lines[1]}"
        if not fake.running():
            break
        time.sleep(0.05)
    raise RuntimeError(f"fake-upstream did not print its addresses; its output:\n{fake.log()}")


def _wait_for_health(gateway: Process, url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if not gateway.running():
            raise RuntimeError(f"sub2api exited with {gateway.popen.returncode} while starting:\n{gateway.log()}")
        try:
            with _OPENER.open(f"{url}/health", timeout=2) as res:
                if res.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"sub2api did not answer /health within {STARTUP_TIMEOUT}s:\n{gateway.log()}")


def _gateway_env(tmp: Path, port: int, fake_url: str) -> dict[str, str]:
    # Nothing from the caller's sub2api settings may leak in (config comes only from here).
    dropped = {"DATABASE_URL", "REDIS_URL", "PORT", "HOST", "RUST_LOG"}
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("SUB2API")}
    env.update(
        {
            "SUB2API__SERVER__HOST": "127.0.0.1",
            "SUB2API__SERVER__PORT": str(port),
            "SUB2API__SERVER__SHUTDOWN_GRACE_SECONDS": "2",
            "DATABASE_URL": f"sqlite://{tmp}/db.sqlite",
            "SUB2API__SECURITY__ENCRYPTION_KEY": ENCRYPTION_KEY,
            "SUB2API_ADMIN_EMAIL": ADMIN_EMAIL,
            "SUB2API_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SUB2API_ADMIN_API_KEY": ADMIN_API_KEY,
            "SUB2API__GATEWAY__MAX_BODY_SIZE": str(MAX_BODY_SIZE),
            "SUB2API__RATE_LIMIT__FALLBACK_COOLDOWN_SECONDS": str(FALLBACK_COOLDOWN_SECONDS),
            # API-key accounts name their base URL; OAuth accounts have none and use these. No
            # account's traffic leaves the host.
            "SUB2API__GATEWAY__ANTHROPIC_BASE_URL": fake_url,
            "SUB2API__GATEWAY__OPENAI_BASE_URL": fake_url,
            "SUB2API__GATEWAY__GEMINI_BASE_URL": fake_url,
            # Sign-in and token refresh of OAuth accounts go to the fake's token endpoint.
            "SUB2API__OAUTH__CLAUDE__AUTHORIZE_URL": f"{fake_url}/oauth/authorize",
            "SUB2API__OAUTH__CLAUDE__TOKEN_URL": f"{fake_url}/v1/oauth/token",
            "SUB2API__OAUTH__OPENAI__AUTHORIZE_URL": f"{fake_url}/oauth/authorize",
            "SUB2API__OAUTH__OPENAI__TOKEN_URL": f"{fake_url}/oauth/token",
            "SUB2API__OAUTH__GEMINI__AUTHORIZE_URL": f"{fake_url}/o/oauth2/v2/auth",
            "SUB2API__OAUTH__GEMINI__TOKEN_URL": f"{fake_url}/oauth/token",
            "SUB2API__OAUTH__GEMINI__CLIENT_SECRET": "sdk-tests-client-secret",
            "SUB2API__GATEWAY__CODE_ASSIST_BASE_URL": fake_url,
            "NO_COLOR": "1",
        }
    )
    return env


def _provision(url: str, fake_url: str, fake_control: str, gateway: Process) -> Stack:
    def group_with_account(name: str, mapping: dict[str, str] | None) -> tuple[int, int]:
        group = admin_call(url, "POST", "/groups", {"name": name, "platform": "anthropic"})["id"]
        account: dict[str, Any] = {
            "name": f"{name}-account",
            "platform": "anthropic",
            "type": "apikey",
            "credentials": {"api_key": f"sk-ant-{name}", "base_url": fake_url},
            "group_ids": [group],
        }
        if mapping:
            account["model_mapping"] = mapping
        return group, admin_call(url, "POST", "/accounts", account)["id"]

    group, account = group_with_account("sdk-plain", None)
    mapped_group, mapped_account = group_with_account("sdk-mapped", {MAPPED_MODEL: MAPPED_UPSTREAM})
    user = admin_call(
        url, "POST", "/users", {"email": "sdk@example.com", "password": "sdk-user-password-1", "concurrency": 50}
    )["id"]
    key = admin_call(url, "POST", f"/users/{user}/api-keys", {"name": "sdk", "group_id": group})
    mapped_key = admin_call(url, "POST", f"/users/{user}/api-keys", {"name": "sdk-mapped", "group_id": mapped_group})
    paused_group, paused_account = group_with_account("sdk-paused", None)
    admin_call(url, "POST", f"/accounts/{paused_account}/schedulable", {"schedulable": False})
    paused_key = admin_call(url, "POST", f"/users/{user}/api-keys", {"name": "sdk-paused", "group_id": paused_group})
    openai_group = admin_call(url, "POST", "/groups", {"name": "sdk-openai", "platform": "openai"})["id"]
    openai_account = admin_call(
        url,
        "POST",
        "/accounts",
        {
            "name": "sdk-openai-account",
            "platform": "openai",
            "type": "apikey",
            # Written with /v1, as operators often do: the gateway must not double it.
            "credentials": {"api_key": "sk-openai-sdk", "base_url": f"{fake_url}/v1"},
            "group_ids": [openai_group],
            "model_mapping": {OPENAI_MAPPED_MODEL: OPENAI_MAPPED_UPSTREAM, OPENAI_MODEL: OPENAI_MODEL},
        },
    )["id"]
    openai_key = admin_call(url, "POST", f"/users/{user}/api-keys", {"name": "sdk-openai", "group_id": openai_group})
    return Stack(
        url=url,
        fake_url=fake_url,
        fake_control=fake_control,
        gateway=gateway,
        user_id=user,
        group_id=group,
        key=key["key"],
        key_id=key["id"],
        account_id=account,
        mapped_group_id=mapped_group,
        mapped_key=mapped_key["key"],
        mapped_key_id=mapped_key["id"],
        mapped_account_id=mapped_account,
        paused_key=paused_key["key"],
        openai_group_id=openai_group,
        openai_key=openai_key["key"],
        openai_key_id=openai_key["id"],
        openai_account_id=openai_account,
    )


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest):
    tmp = Path(tempfile.mkdtemp(prefix="sub2api-sdk-"))
    processes: list[Process] = []
    try:
        fake_args = [str(_binary("FAKE_UPSTREAM_BIN", "fake-upstream")), "--control-port", "0"]
        fake = Process("fake-upstream", fake_args, tmp, dict(os.environ))
        processes.append(fake)
        fake_url, fake_control = _wait_for_fake(fake)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        gateway = Process("sub2api", [str(_binary("SUB2API_BIN", "sub2api"))], tmp, _gateway_env(tmp, port, fake_url))
        processes.append(gateway)
        _wait_for_health(gateway, url)
        yield _provision(url, fake_url, fake_control, gateway)
    finally:
        # The gateway first (SIGTERM: graceful, drains the usage writer), then the fake
        # (SIGINT is its Ctrl-C).
        codes = {p.name: p.stop(signal.SIGINT if p.name == "fake-upstream" else signal.SIGTERM) for p in reversed(processes)}
        if request.session.testsfailed or codes.get("sub2api") not in (None, 0):
            for p in processes:
                _REPORT.append((f"{p.name} log (exit code {codes.get(p.name)})", p.log()))
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class OAuthGroup:
    """An Anthropic group whose one account is a Claude OAuth account, and a key for it."""

    group_id: int
    account_id: int
    # The account view `exchange-code` answered with.
    account: dict[str, Any]
    key: str
    key_id: int


def sign_in(
    stack: Stack, name: str, group_ids: list[int], kind: str = "oauth", platform: str = "anthropic"
) -> dict[str, Any]:
    """Adds a subscription account (Claude by default) through the admin sign-in flow: asks for
    the sign-in URL, plays the provider's page (the code it shows is `<code>#<state>`), and
    exchanges the code, which the gateway redeems at the fake's token endpoint. Returns the new
    account's view."""
    start = stack.admin("POST", "/accounts/generate-auth-url", {"platform": platform, "type": kind})
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(start["auth_url"]).query)["state"][0]
    body = {"session_id": start["session_id"], "code": f"code-{name}#{state}", "name": name, "group_ids": group_ids}
    status, doc = stack.admin_request("POST", "/accounts/exchange-code", body)
    assert status == 201 and isinstance(doc, dict) and doc.get("code") == 0, f"exchange-code: HTTP {status}: {doc}"
    return doc["data"]


@pytest.fixture(scope="session")
def oauth(stack: Stack) -> OAuthGroup:
    """The Anthropic group with one Claude OAuth account (signed in through the admin REST
    flow against the fake) and a key bound to it."""
    group = stack.admin("POST", "/groups", {"name": "sdk-oauth", "platform": "anthropic"})["id"]
    account = sign_in(stack, "sdk-oauth-account", [group])
    key = stack.admin("POST", f"/users/{stack.user_id}/api-keys", {"name": "sdk-oauth", "group_id": group})
    return OAuthGroup(group_id=group, account_id=account["id"], account=account, key=key["key"], key_id=key["id"])


@pytest.fixture
def client(stack: Stack):
    """A client with the plain group's key."""
    with stack.client() as c:
        yield c


@pytest.fixture
def mapped_client(stack: Stack):
    """A client with the mapped group's key."""
    with stack.client(stack.mapped_key) as c:
        yield c


@pytest.fixture
def openai_client(stack: Stack):
    """An `openai` client with the OpenAI group's key."""
    with stack.openai_client() as c:
        yield c


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest hook signature
    for title, text in _REPORT:
        terminalreporter.section(title)
        terminalreporter.write(text if text.endswith("\n") else text + "\n")
