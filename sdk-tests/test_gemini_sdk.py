"""The official `google-genai` Python SDK against the real gateway, which relays the Gemini API
(`/v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`) to the fake
upstream twice over: through a Gemini API-key account (AI Studio), and through a Google
sign-in account (Code Assist: the request goes out in its `{model, project, request}`
envelope and the answers come back out of `{"response": …}`). The fake answers with the text
`TEXT` and its default usage in Gemini's terms (the prompt count includes the cached tokens);
usage rows keep fresh input and cache reads apart.

The Gemini groups, their accounts and keys are made here (the session's stack has none).
"""

from __future__ import annotations

import os
import time
import urllib.parse
from typing import Any

import pytest
from conftest import Stack, sign_in
from google import genai
from google.genai import errors

# The SDK reads these when a client does not pass them; the tests always pass key and URL.
for _var in [v for v in os.environ if v.startswith(("GOOGLE_", "GEMINI_"))]:
    del os.environ[_var]

TEXT = "Hello from the fake upstream."
MODEL = "gemini-2.5-flash"
# The fake's default usage: 25 fresh input tokens, 200 read from the cache, 12 output.
INPUT, CACHE_READ, OUTPUT = 25, 200, 12
PROMPT = INPUT + CACHE_READ


class Gemini:
    def __init__(self, stack: Stack, kind: str):
        self.stack = stack
        self.kind = kind
        name = f"sdk-gemini-{kind}"
        self.group_id = stack.admin("POST", "/groups", {"name": name, "platform": "gemini"})["id"]
        if kind == "oauth":
            account = sign_in(stack, name, [self.group_id], platform="gemini")
            assert account["oauth"]["project_id"], account
        else:
            stack.admin(
                "POST",
                "/accounts",
                {
                    "name": name,
                    "platform": "gemini",
                    "type": "apikey",
                    "credentials": {"api_key": "AIza-sdk-gemini", "base_url": stack.fake_url},
                    "group_ids": [self.group_id],
                },
            )
        self.key = stack.admin("POST", f"/users/{stack.user_id}/api-keys", {"name": name, "group_id": self.group_id})[
            "key"
        ]

    def client(self, key: str | None = None) -> genai.Client:
        """A client on the gateway. Keep it referenced while using `client.models`: a client
        that is garbage-collected closes its connection pool."""
        return genai.Client(api_key=key or self.key, http_options={"base_url": self.stack.url, "timeout": 30_000})

    def rows(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The group's usage rows once `n` exist (the writer is asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            page = self.stack.admin("GET", "/usage?" + urllib.parse.urlencode({"page": 1, "page_size": 500}))
            rows = [row for row in page["items"] if row["group_id"] == self.group_id]
            if len(rows) >= n or time.monotonic() > deadline:
                assert len(rows) >= n, f"{len(rows)} usage rows for the Gemini group, wanted {n}: {rows}"
                return rows
            time.sleep(0.1)


@pytest.fixture(scope="module", params=["apikey", "oauth"])
def gemini(stack: Stack, request: pytest.FixtureRequest) -> Gemini:
    return Gemini(stack, request.param)


def assert_usage_row(row: dict[str, Any]) -> None:
    assert row["status_code"] == 200, row
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (INPUT, CACHE_READ, OUTPUT), row
    assert row["cache_creation_tokens"] == 0, row
    assert row["total_cost"] > 0, row


def test_generate_content(gemini: Gemini):
    client = gemini.client()
    response = client.models.generate_content(model=MODEL, contents="hi")
    assert response.text == TEXT
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count) == (PROMPT, OUTPUT)
    assert usage.cached_content_token_count == CACHE_READ
    rows = gemini.rows(1)
    assert_usage_row(rows[0])
    assert rows[0]["stream"] is False


def test_generate_content_stream(gemini: Gemini):
    before = len(gemini.rows(0))
    client = gemini.client()
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert "".join(chunk.text or "" for chunk in chunks) == TEXT
    assert chunks[-1].candidates[0].finish_reason == "STOP"
    assert chunks[-1].usage_metadata.candidates_token_count == OUTPUT
    rows = gemini.rows(before + 1)
    streamed = [row for row in rows if row["stream"]]
    assert len(streamed) == 1, rows
    assert_usage_row(streamed[0])


def test_count_tokens_writes_no_usage_row(gemini: Gemini):
    before = len(gemini.rows(0))
    client = gemini.client()
    counted = client.models.count_tokens(model=MODEL, contents="hi")
    assert counted.total_tokens == PROMPT
    time.sleep(0.3)
    assert len(gemini.rows(0)) == before


def test_errors_are_google_shaped(gemini: Gemini, stack: Stack):
    refusing = gemini.client("sk-not-a-key")
    with pytest.raises(errors.ClientError) as refused:
        refusing.models.generate_content(model=MODEL, contents="hi")
    assert refused.value.code == 401
    assert refused.value.status == "UNAUTHENTICATED"

    # A key of an Anthropic group cannot use the Gemini routes.
    anthropic_key = gemini.client(stack.key)
    with pytest.raises(errors.ClientError) as other:
        anthropic_key.models.generate_content(model=MODEL, contents="hi")
    assert other.value.code == 404
    assert other.value.status == "NOT_FOUND"
    assert "anthropic" in other.value.message
