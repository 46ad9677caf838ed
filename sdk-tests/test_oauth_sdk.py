"""The official `anthropic` Python SDK through a Claude OAuth account (the `oauth` fixture:
signed in through the admin REST flow against the fake's token endpoint).

A client that is not Claude Code is made to look like it upstream, as a subscription account
requires: the account's Bearer token and the `oauth-2025-04-20` beta, Claude Code's system
prompt in front of the client's own, a `claude-cli/…` user agent with a stable set of
`x-stainless-*` fingerprint headers, and `metadata.user_id` rewritten to Claude Code's JSON form
naming the account, the same for every request of one conversation. Checked on what reached
the fake upstream (its journal)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
import uuid
from typing import Any

import anthropic
import pytest
from conftest import OAuthGroup, Stack

TEXT = "Hello from the fake upstream."
MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a terse assistant for the sub2api SDK tests."
CLAUDE_CODE_PROMPT = "You are Claude Code, Anthropic's official CLI for Claude."
OAUTH_BETA = "oauth-2025-04-20"
# The account behind the fake's tokens (proxy/src/testing/fake_oauth.rs).
ACCOUNT_UUID = "0f5c2a9e-4b1d-4c4e-9a53-6f2b8f0e7d11"
ACCOUNT_EMAIL = "owner@example.com"
# The headers that describe the client (the per-request ones, retry count and timeouts, aside).
FINGERPRINT = (
    "x-stainless-lang",
    "x-stainless-package-version",
    "x-stainless-os",
    "x-stainless-arch",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
)
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def oauth_client(stack: Stack, oauth: OAuthGroup):
    with stack.client(oauth.key) as c:
        yield c


def upstream_with(stack: Stack, marker: str) -> list[dict[str, Any]]:
    """The `/v1/messages` requests the fake received whose body contains `marker`."""
    return [
        r
        for r in stack.fake_journal()
        if r["method"] == "POST" and r["path"].endswith("/v1/messages") and marker in json.dumps(r["body"])
    ]


def test_sign_in_sends_pkce_and_the_account_carries_the_providers_identity(stack: Stack, oauth: OAuthGroup):
    view = oauth.account
    assert (view["platform"], view["type"]) == ("anthropic", "oauth"), view
    assert view["oauth"]["email"] == ACCOUNT_EMAIL and view["oauth"]["expires_at"] and view["oauth"]["scope"], view
    shown = json.dumps(view)
    assert "fake-at-" not in shown and "fake-rt-" not in shown, "the view shows a token"

    # A fresh sign-in URL: the configured authorize URL with the PKCE parameters; its
    # verifier reaches the token endpoint with the code.
    start = stack.admin("POST", "/accounts/generate-auth-url", {"platform": "anthropic", "type": "oauth"})
    assert start["session_id"] and start["expires_at"], start
    url = urllib.parse.urlsplit(start["auth_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{stack.fake_url}/oauth/authorize", start["auth_url"]
    query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
    for name in ("code", "client_id", "response_type", "redirect_uri", "scope", "code_challenge", "state"):
        assert query.get(name), (name, query)
    assert (query["code"], query["response_type"], query["code_challenge_method"]) == ("true", "code", "S256"), query
    group = stack.admin("POST", "/groups", {"name": "sdk-oauth-pkce", "platform": "anthropic"})["id"]
    callback = f"{query['redirect_uri']}?code=pkce-code&state={query['state']}"
    status, doc = stack.admin_request(
        "POST",
        "/accounts/exchange-code",
        {"session_id": start["session_id"], "code": callback, "name": "sdk-oauth-pkce", "group_ids": [group]},
    )
    assert status == 201, (status, doc)
    exchange = [r for r in stack.fake_token_requests() if r["fields"].get("code") == "pkce-code"]
    assert len(exchange) == 1, stack.fake_token_requests()
    fields = exchange[0]["fields"]
    assert exchange[0]["path"] == "/v1/oauth/token" and fields["grant_type"] == "authorization_code", exchange
    challenge = base64.urlsafe_b64encode(hashlib.sha256(fields["code_verifier"].encode()).digest()).rstrip(b"=")
    assert challenge.decode() == query["code_challenge"], (fields, query)
    assert fields["client_id"] == query["client_id"] and fields["redirect_uri"] == query["redirect_uri"], fields


def test_sdk_request_is_sent_as_claude_code_with_the_accounts_token(
    stack: Stack, oauth: OAuthGroup, oauth_client: anthropic.Anthropic
):
    marker = f"hello {uuid.uuid4()}"
    first_turn = [{"role": "user", "content": marker}]
    metadata = {"user_id": "some-client-user"}
    first = oauth_client.messages.create(
        model=MODEL, max_tokens=64, system=SYSTEM, messages=first_turn, metadata=metadata
    )
    assert first.content[0].text == TEXT
    # The same conversation, one turn on.
    second_turn = [*first_turn, {"role": "assistant", "content": TEXT}, {"role": "user", "content": "once more"}]
    with oauth_client.messages.stream(
        model=MODEL, max_tokens=64, system=SYSTEM, messages=second_turn, metadata=metadata
    ) as stream:
        assert stream.get_final_text() == TEXT

    upstream = upstream_with(stack, marker)
    assert len(upstream) == 2, [(r["uri"], r["credential"]) for r in upstream]
    user_ids = []
    for request in upstream:
        headers, body = request["headers"], request["body"]
        assert re.fullmatch(r"Bearer fake-at-\d+", headers.get("authorization", "")), headers
        assert "x-api-key" not in headers, headers
        assert oauth.key not in json.dumps(request)
        beta = [b.strip() for b in headers.get("anthropic-beta", "").split(",")]
        assert OAUTH_BETA in beta, headers.get("anthropic-beta")
        assert headers.get("user-agent", "").startswith("claude-cli/"), headers.get("user-agent")

        system = body["system"]
        assert isinstance(system, list) and len(system) >= 2, system
        assert system[0]["type"] == "text" and system[0]["text"] == CLAUDE_CODE_PROMPT, system[0]
        assert system[1]["type"] == "text" and system[1]["text"] == SYSTEM, system[1]
        assert body["model"] == MODEL and body["messages"][0]["content"] in (marker, [{"type": "text", "text": marker}])

        user_id = body.get("metadata", {}).get("user_id")
        assert isinstance(user_id, str) and user_id != "some-client-user", body.get("metadata")
        parsed = json.loads(user_id)
        assert set(parsed) >= {"device_id", "account_uuid", "session_id"}, parsed
        assert re.fullmatch(r"[0-9a-f]{64}", parsed["device_id"]), parsed
        assert parsed["account_uuid"] == ACCOUNT_UUID, parsed
        assert re.fullmatch(UUID, parsed["session_id"]), parsed
        user_ids.append(user_id)
    assert user_ids[0] == user_ids[1], user_ids

    fingerprints = [{name: r["headers"].get(name) for name in FINGERPRINT} for r in upstream]
    assert all(fingerprints[0].values()), fingerprints[0]
    assert fingerprints[0] == fingerprints[1], fingerprints

    assert first._request_id
    row = stack.usage_rows([first._request_id])[first._request_id]
    assert (row["account_id"], row["group_id"], row["api_key_id"]) == (oauth.account_id, oauth.group_id, oauth.key_id)
