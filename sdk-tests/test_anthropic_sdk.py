"""The official `anthropic` Python SDK against the real gateway, which relays to the fake
upstream. The fake answers every request with the text `TEXT` and the usage below, echoing
the model it was sent; everything else (errors, model mapping, request ids, usage rows) is
the gateway's own work.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import pytest
from conftest import MAPPED_MODEL, MAPPED_UPSTREAM, MAX_BODY_SIZE, Stack

# Priced in proxy/data/model_prices.json and not deprecated in the pinned SDK.
MODEL = "claude-sonnet-4-6"
TEXT = "Hello from the fake upstream."
INPUT, OUTPUT = 25, 12
CACHE_CREATION, CACHE_5M, CACHE_1H, CACHE_READ = 150, 100, 50, 200
HELLO = [{"role": "user", "content": "hi"}]


def ask(client: anthropic.Anthropic, model: str = MODEL, **kw: Any):
    return client.messages.create(model=model, max_tokens=64, messages=kw.pop("messages", HELLO), **kw)


def assert_usage(usage) -> None:
    assert usage.input_tokens == INPUT
    assert usage.output_tokens == OUTPUT
    assert usage.cache_creation_input_tokens == CACHE_CREATION
    assert usage.cache_read_input_tokens == CACHE_READ
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == CACHE_5M
    assert usage.cache_creation.ephemeral_1h_input_tokens == CACHE_1H


def assert_usage_row(row: dict[str, Any]) -> None:
    assert row["status_code"] == 200, row
    assert row["error_message"] == "", row
    assert (row["input_tokens"], row["output_tokens"]) == (INPUT, OUTPUT), row
    assert row["cache_creation_tokens"] == CACHE_CREATION, row
    assert (row["cache_creation_5m_tokens"], row["cache_creation_1h_tokens"]) == (CACHE_5M, CACHE_1H), row
    assert row["cache_read_tokens"] == CACHE_READ, row
    assert row["first_token_ms"] is not None, row


def assert_gateway_error(err: anthropic.APIStatusError, status: int, error_type: str) -> None:
    """A gateway-made error: Anthropic's body shape, the SDK's typed fields, and the request
    id in both `request-id` (what the SDK reads) and `x-request-id`."""
    assert err.status_code == status
    assert isinstance(err.body, dict), err.body
    assert err.body["type"] == "error", err.body
    assert err.body["error"]["type"] == error_type, err.body
    assert err.body["error"]["message"], err.body
    assert err.type == error_type
    assert err.request_id, "the SDK found no request-id header"
    assert err.request_id == err.response.headers.get("x-request-id")
    assert err.response.headers.get("x-should-retry") == "false"


# --- messages.create ---------------------------------------------------------------------


def test_create_returns_text_usage_and_the_asked_model(client):
    message = ask(client)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == MODEL
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == TEXT
    assert message.stop_reason == "end_turn"
    assert_usage(message.usage)
    # A success carries the upstream's `request-id`, which the SDK exposes.
    assert message._request_id


def test_create_raw_response_has_gateway_headers(client):
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert raw.status_code == 200
    assert raw.headers.get("x-request-id")
    assert float(raw.headers["x-sub2api-overhead-ms"]) >= 0
    message = raw.parse()
    assert message.content[0].text == TEXT
    assert_usage(message.usage)


def test_mapped_model_is_answered_under_the_asked_name(stack: Stack, mapped_client):
    raw = mapped_client.messages.with_raw_response.create(model=MAPPED_MODEL, max_tokens=64, messages=HELLO)
    message = raw.parse()
    # The fake echoes the model it was sent (the mapped name); the gateway writes the
    # asked name back.
    assert message.model == MAPPED_MODEL
    assert message.content[0].text == TEXT
    assert_usage(message.usage)
    row = stack.usage_rows([raw.headers["x-request-id"]])[raw.headers["x-request-id"]]
    assert_usage_row(row)
    assert (row["requested_model"], row["upstream_model"]) == (MAPPED_MODEL, MAPPED_UPSTREAM)
    assert (row["account_id"], row["group_id"], row["api_key_id"]) == (
        stack.mapped_account_id,
        stack.mapped_group_id,
        stack.mapped_key_id,
    )


def test_body_just_under_the_limit_is_relayed(client):
    filler = "x" * (MAX_BODY_SIZE - 4096)
    message = ask(client, messages=[{"role": "user", "content": filler}])
    assert message.content[0].text == TEXT


# --- streaming ---------------------------------------------------------------------------


def test_stream_helper_collects_text_and_final_usage(client):
    with client.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.model == MODEL
    assert final.content[0].text == TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == OUTPUT
    assert_usage(final.usage)


def test_raw_stream_events_arrive_in_protocol_order(client):
    with ask(client, stream=True) as stream:
        events = list(stream)
    types = [event.type for event in events]
    assert types[:2] == ["message_start", "content_block_start"], types
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"], types
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert len(deltas) == len(types) - 5 and deltas, types
    assert "".join(d.delta.text for d in deltas) == TEXT
    assert events[0].message.model == MODEL
    assert events[0].message.usage.input_tokens == INPUT
    assert events[-2].usage.output_tokens == OUTPUT


def test_mapped_stream_starts_with_the_asked_model(stack: Stack, mapped_client):
    with mapped_client.messages.stream(model=MAPPED_MODEL, max_tokens=64, messages=HELLO) as stream:
        request_id = stream.response.headers["x-request-id"]
        final = stream.get_final_message()
    assert final.model == MAPPED_MODEL
    assert final.content[0].text == TEXT
    assert_usage(final.usage)
    row = stack.usage_rows([request_id])[request_id]
    assert row["stream"] is True
    assert (row["requested_model"], row["upstream_model"]) == (MAPPED_MODEL, MAPPED_UPSTREAM)


def test_concurrent_streams_all_complete(stack: Stack):
    # More requests at once than the account's concurrency (3): the rest wait for a slot.
    def one(_: int) -> tuple[str, int]:
        with stack.client() as c, c.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
            final = stream.get_final_message()
            return final.content[0].text, final.usage.output_tokens

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(16)))
    assert results == [(TEXT, OUTPUT)] * 16


# --- count_tokens and models -------------------------------------------------------------


def test_count_tokens(client, mapped_client):
    assert client.messages.count_tokens(model=MODEL, messages=HELLO).input_tokens == INPUT
    assert mapped_client.messages.count_tokens(model=MAPPED_MODEL, messages=HELLO).input_tokens == INPUT


def test_models_list(client, mapped_client):
    page = client.models.list()
    ids = [model.id for model in page]
    assert ids, "the plain group lists the built-in models"
    assert len(ids) == len(set(ids)), ids
    assert all(i.startswith("claude-") for i in ids), ids
    assert all(m.type == "model" and m.display_name for m in page.data)
    assert page.has_more is False
    # A group whose accounts name their models lists exactly those.
    assert [model.id for model in mapped_client.models.list()] == [MAPPED_MODEL]


# --- errors ------------------------------------------------------------------------------


def test_bad_key_is_authentication_error(stack: Stack):
    # One pooled client for every call: a refused request's body is read before the 401, so
    # the keep-alive connection stays usable (with max_retries=0 a dropped connection would
    # surface as APIConnectionError instead of the 401 under test).
    with stack.client("sk-not-a-real-key") as c:
        for _ in range(50):
            with pytest.raises(anthropic.AuthenticationError) as caught:
                ask(c)
            assert_gateway_error(caught.value, 401, "authentication_error")
        with pytest.raises(anthropic.AuthenticationError) as caught:
            c.messages.count_tokens(model=MODEL, messages=HELLO)
        assert_gateway_error(caught.value, 401, "authentication_error")
        with pytest.raises(anthropic.AuthenticationError) as caught:
            c.models.list()
        assert_gateway_error(caught.value, 401, "authentication_error")
        with pytest.raises(anthropic.AuthenticationError) as caught:
            with c.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
                stream.until_done()
        assert_gateway_error(caught.value, 401, "authentication_error")


def counting_client(stack: Stack, key: str, max_retries: int) -> tuple[anthropic.Anthropic, list[str]]:
    sent: list[str] = []
    http = anthropic.DefaultHttpxClient(event_hooks={"request": [lambda req: sent.append(str(req.url))]})
    return stack.client(key, max_retries=max_retries, http_client=http), sent


def test_sdk_retries_follow_x_should_retry(stack: Stack):
    # No usable account (the only one is paused): 503 overloaded_error with
    # `x-should-retry: true` and a short `retry-after` (1 s: waiting will not unpause it), so
    # the SDK tries again quickly, up to its `max_retries`.
    paused, sent = counting_client(stack, stack.paused_key, max_retries=1)
    with paused, pytest.raises(anthropic.InternalServerError) as caught:
        ask(paused)
    assert len(sent) == 2, sent
    err = caught.value
    assert err.status_code == 503
    assert err.body["error"]["type"] == "overloaded_error", err.body
    assert err.response.headers.get("x-should-retry") == "true"
    assert err.response.headers.get("retry-after") == "1"
    assert err.request_id

    # A refused key says `x-should-retry: false` (checked in assert_gateway_error): one
    # request however many retries are allowed.
    bad, sent = counting_client(stack, "sk-not-a-real-key", max_retries=3)
    with bad, pytest.raises(anthropic.AuthenticationError):
        ask(bad)
    assert len(sent) == 1, sent


def test_unknown_model_is_not_found(stack: Stack, mapped_client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        ask(mapped_client, model="claude-nobody-serves-this")
    err = caught.value
    assert_gateway_error(err, 404, "not_found_error")
    assert "claude-nobody-serves-this" in err.body["error"]["message"]
    # The refusal is recorded too, under the same request id.
    row = stack.usage_rows([err.request_id])[err.request_id]
    assert row["status_code"] == 404, row
    assert row["requested_model"] == "claude-nobody-serves-this", row
    assert (row["input_tokens"], row["output_tokens"]) == (0, 0), row

    # Streaming: the error comes before any event, as a plain status.
    with pytest.raises(anthropic.NotFoundError) as caught:
        with mapped_client.messages.stream(model="claude-nobody-serves-this", max_tokens=64, messages=HELLO) as s:
            s.until_done()
    assert_gateway_error(caught.value, 404, "not_found_error")


def test_oversized_body_is_413(client):
    filler = "x" * (MAX_BODY_SIZE + 1024)
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(client, messages=[{"role": "user", "content": filler}])
    assert_gateway_error(caught.value, 413, "request_too_large")
    assert str(MAX_BODY_SIZE) in caught.value.body["error"]["message"]


def test_invalid_body_is_bad_request(client):
    # Validation the SDK leaves to the server: an empty model name.
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(client, model="")
    assert_gateway_error(caught.value, 400, "invalid_request_error")


# --- usage records -----------------------------------------------------------------------


def test_sdk_calls_are_recorded_with_their_tokens(stack: Stack, client):
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HELLO)
    plain_id = raw.headers["x-request-id"]
    raw.parse()
    with client.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        stream_id = stream.response.headers["x-request-id"]
        stream.until_done()

    rows = stack.usage_rows([plain_id, stream_id])
    for request_id, streamed in ((plain_id, False), (stream_id, True)):
        row = rows[request_id]
        assert_usage_row(row)
        assert row["stream"] is streamed, row
        assert (row["requested_model"], row["upstream_model"]) == (MODEL, MODEL), row
        assert (row["user_id"], row["api_key_id"], row["group_id"], row["account_id"]) == (
            stack.user_id,
            stack.key_id,
            stack.group_id,
            stack.account_id,
        ), row
        assert row["total_cost"] > 0, f"{MODEL} is in the price table: {row}"


# --- async client ------------------------------------------------------------------------


def test_async_client_create_and_stream(stack: Stack):
    async def run() -> None:
        async with anthropic.AsyncAnthropic(base_url=stack.url, api_key=stack.key, max_retries=0, timeout=30) as c:
            message = await c.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
            assert message.content[0].text == TEXT
            assert_usage(message.usage)
            async with c.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
                text = "".join([chunk async for chunk in stream.text_stream])
                final = await stream.get_final_message()
            assert text == TEXT
            assert final.usage.output_tokens == OUTPUT
        async with anthropic.AsyncAnthropic(base_url=stack.url, api_key="sk-bad", max_retries=0) as bad:
            with pytest.raises(anthropic.AuthenticationError):
                await bad.messages.create(model=MODEL, max_tokens=64, messages=HELLO)

    asyncio.run(run())
