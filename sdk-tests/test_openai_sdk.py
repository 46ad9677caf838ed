"""The official `openai` Python SDK against the real gateway, which relays Chat Completions
and Responses to the OpenAI group's API-key account on the fake upstream. The fake answers
with the text `TEXT` and its default usage in OpenAI's terms (the prompt count includes the
cached tokens), echoing the model it was sent; the rest (model mapping written back, the
forced `include_usage` and the removal of its chunk, errors, usage rows) is the gateway's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from conftest import OPENAI_MAPPED_MODEL, OPENAI_MAPPED_UPSTREAM, OPENAI_MODEL, Stack

TEXT = "Hello from the fake upstream."
# The fake's default usage: 25 fresh input tokens, 200 read from the cache, 12 output. OpenAI
# reports the prompt with the cached part inside it; usage rows keep them apart.
INPUT, CACHE_READ, OUTPUT = 25, 200, 12
PROMPT = INPUT + CACHE_READ
HELLO = [{"role": "user", "content": "hi"}]


def chat(client: openai.OpenAI, model: str = OPENAI_MODEL, **kw: Any):
    return client.chat.completions.create(model=model, messages=kw.pop("messages", HELLO), **kw)


def assert_chat_usage(usage) -> None:
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (PROMPT, OUTPUT, PROMPT + OUTPUT)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == CACHE_READ


def assert_responses_usage(usage) -> None:
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (PROMPT, OUTPUT, PROMPT + OUTPUT)
    assert usage.input_tokens_details.cached_tokens == CACHE_READ
    assert usage.output_tokens_details.reasoning_tokens == 0


def assert_usage_row(row: dict[str, Any]) -> None:
    assert row["status_code"] == 200, row
    assert row["error_message"] == "", row
    # input = prompt - cached; OpenAI has no cache writes.
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (INPUT, CACHE_READ, OUTPUT), row
    assert row["cache_creation_tokens"] == 0, row
    assert (row["cache_creation_5m_tokens"], row["cache_creation_1h_tokens"]) == (0, 0), row
    assert row["first_token_ms"] is not None, row


def assert_openai_error(err: openai.APIStatusError, status: int, error_type: str) -> None:
    """A gateway-made error in OpenAI's shape (`{"error": {message, type, param, code}}`, no
    Anthropic `"type": "error"` wrapper), the SDK's typed fields, and the request id in
    `x-request-id` (what this SDK reads)."""
    assert err.status_code == status
    whole = err.response.json()
    assert list(whole) == ["error"], whole
    assert set(whole["error"]) == {"message", "type", "param", "code"}, whole
    # The SDK unwraps `error` into `body` and its fields.
    assert err.body == whole["error"]
    assert err.type == error_type, whole
    assert err.message and whole["error"]["message"] in err.message
    assert err.request_id, "the SDK found no x-request-id header"
    assert err.request_id == err.response.headers.get("request-id")
    assert err.response.headers.get("x-should-retry") == "false"


# --- chat.completions.create -------------------------------------------------------------


def test_chat_returns_text_usage_and_the_asked_model(openai_client):
    completion = chat(openai_client)
    assert completion.object == "chat.completion"
    assert completion.model == OPENAI_MODEL
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert (choice.message.role, choice.message.content) == ("assistant", TEXT)
    assert choice.finish_reason == "stop"
    assert_chat_usage(completion.usage)
    # The gateway's request id, which the SDK exposes.
    assert completion._request_id


def test_chat_mapped_model_is_answered_under_the_asked_name(stack: Stack, openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(model=OPENAI_MAPPED_MODEL, messages=HELLO)
    assert raw.status_code == 200
    request_id = raw.headers["x-request-id"]
    assert float(raw.headers["x-sub2api-overhead-ms"]) >= 0
    completion = raw.parse()
    # The fake echoes the model it was sent (the mapped name); the gateway writes the asked
    # name back.
    assert completion.model == OPENAI_MAPPED_MODEL
    assert completion._request_id == request_id
    assert completion.choices[0].message.content == TEXT
    assert_chat_usage(completion.usage)
    row = stack.usage_rows([request_id])[request_id]
    assert_usage_row(row)
    assert row["stream"] is False, row
    assert (row["requested_model"], row["upstream_model"]) == (OPENAI_MAPPED_MODEL, OPENAI_MAPPED_UPSTREAM), row


def test_chat_without_v1_alias_route(stack: Stack):
    # `POST /chat/completions`: a client whose base URL is the gateway root.
    with openai.OpenAI(base_url=stack.url, api_key=stack.openai_key, max_retries=0, timeout=30) as c:
        completion = chat(c)
    assert completion.choices[0].message.content == TEXT
    assert_chat_usage(completion.usage)


# --- chat streams ------------------------------------------------------------------------


def test_chat_stream_without_stream_options_gets_no_usage_chunk(stack: Stack, openai_client):
    # The gateway forces include_usage upstream (to bill the stream) and removes the usage
    # chunk again, since the client did not ask for it.
    stream = chat(openai_client, model=OPENAI_MAPPED_MODEL, stream=True)
    request_id = stream.response.headers["x-request-id"]
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    with stream:
        chunks = list(stream)
    assert chunks, "no chunk"
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk.choices for chunk in chunks), "a chunk without choices (the usage chunk) came through"
    assert all(chunk.usage is None for chunk in chunks), [c.usage for c in chunks]
    assert all(chunk.model == OPENAI_MAPPED_MODEL for chunk in chunks), [c.model for c in chunks]
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == TEXT
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    # Still billed with the usage the client never saw.
    row = stack.usage_rows([request_id])[request_id]
    assert_usage_row(row)
    assert row["stream"] is True, row
    assert (row["requested_model"], row["upstream_model"]) == (OPENAI_MAPPED_MODEL, OPENAI_MAPPED_UPSTREAM), row


def test_chat_stream_raw_bytes_have_no_usage_and_end_with_done(openai_client):
    with openai_client.chat.completions.with_streaming_response.create(
        model=OPENAI_MAPPED_MODEL, messages=HELLO, stream=True
    ) as res:
        lines = [line for line in res.iter_lines() if line]
    assert lines[-1] == "data: [DONE]", lines
    body = "\n".join(lines)
    assert "prompt_tokens" not in body, body
    assert OPENAI_MAPPED_UPSTREAM not in body, "the upstream model leaked: " + body
    assert all(line.startswith("data: ") for line in lines), lines


def test_chat_stream_with_include_usage_ends_with_the_usage_chunk(openai_client):
    with chat(openai_client, stream=True, stream_options={"include_usage": True}) as stream:
        chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [], last
    assert_chat_usage(last.usage)
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert all(chunk.model == OPENAI_MODEL for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks[:-1]) == TEXT


def test_chat_stream_helper_final_completion(openai_client):
    with openai_client.chat.completions.stream(
        model=OPENAI_MAPPED_MODEL, messages=HELLO, stream_options={"include_usage": True}
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == TEXT
    assert final.model == OPENAI_MAPPED_MODEL
    assert final.choices[0].message.content == TEXT
    assert final.choices[0].finish_reason == "stop"
    assert_chat_usage(final.usage)


# --- responses ---------------------------------------------------------------------------


def test_responses_create_returns_text_usage_and_the_asked_model(stack: Stack, openai_client):
    raw = openai_client.responses.with_raw_response.create(model=OPENAI_MAPPED_MODEL, input="say hi")
    request_id = raw.headers["x-request-id"]
    response = raw.parse()
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == OPENAI_MAPPED_MODEL
    assert response.output_text == TEXT
    assert_responses_usage(response.usage)
    row = stack.usage_rows([request_id])[request_id]
    assert_usage_row(row)
    assert row["stream"] is False, row
    assert (row["requested_model"], row["upstream_model"]) == (OPENAI_MAPPED_MODEL, OPENAI_MAPPED_UPSTREAM), row


def test_responses_stream_helper_ends_completed_with_usage(openai_client):
    with openai_client.responses.stream(model=OPENAI_MAPPED_MODEL, input="say hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] == "response.completed", types
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == TEXT
    whole = [e.response for e in events if e.type in ("response.created", "response.in_progress", "response.completed")]
    assert [r.model for r in whole] == [OPENAI_MAPPED_MODEL] * 3, "the asked name in every response object"
    completed = events[-1].response
    assert completed.status == "completed"
    assert_responses_usage(completed.usage)
    assert final.output_text == TEXT
    assert final.model == OPENAI_MAPPED_MODEL
    assert_responses_usage(final.usage)


def test_responses_create_stream_events_in_order(openai_client):
    with openai_client.responses.create(model=OPENAI_MODEL, input="say hi", stream=True) as stream:
        events = list(stream)
    types = [event.type for event in events]
    assert types[0] == "response.created" and types[-1] == "response.completed", types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == TEXT
    assert events[-1].response.model == OPENAI_MODEL
    assert_responses_usage(events[-1].response.usage)


def test_codex_route_serves_responses(stack: Stack):
    # `POST /backend-api/codex/responses`, as Codex CLI calls it.
    with openai.OpenAI(
        base_url=f"{stack.url}/backend-api/codex", api_key=stack.openai_key, max_retries=0, timeout=30
    ) as c:
        response = c.responses.create(model=OPENAI_MODEL, input="say hi")
        with c.responses.stream(model=OPENAI_MODEL, input="say hi") as stream:
            final = stream.get_final_response()
    assert response.output_text == TEXT
    assert_responses_usage(response.usage)
    assert final.output_text == TEXT
    assert_responses_usage(final.usage)


# --- models ------------------------------------------------------------------------------


def test_models_list_names_the_group_models(openai_client):
    page = openai_client.models.list()
    ids = [model.id for model in page]
    # An account with a model mapping names exactly its models.
    assert sorted(ids) == sorted([OPENAI_MAPPED_MODEL, OPENAI_MODEL]), ids
    assert all(m.object == "model" and m.owned_by == "openai" and m.created > 0 for m in page.data)


# --- errors ------------------------------------------------------------------------------


def test_bad_key_is_authentication_error(stack: Stack):
    # One pooled client: a refused request's body is read before the 401, so the keep-alive
    # connection stays usable.
    with stack.openai_client("sk-not-a-real-key") as c:
        for _ in range(20):
            with pytest.raises(openai.AuthenticationError) as caught:
                chat(c)
            assert_openai_error(caught.value, 401, "authentication_error")
        with pytest.raises(openai.AuthenticationError) as caught:
            chat(c, stream=True)
        assert_openai_error(caught.value, 401, "authentication_error")
        with pytest.raises(openai.AuthenticationError) as caught:
            c.responses.create(model=OPENAI_MODEL, input="say hi")
        assert_openai_error(caught.value, 401, "authentication_error")
        with pytest.raises(openai.AuthenticationError) as caught:
            with c.responses.stream(model=OPENAI_MODEL, input="say hi") as stream:
                stream.until_done()
        assert_openai_error(caught.value, 401, "authentication_error")
        with pytest.raises(openai.AuthenticationError) as caught:
            c.models.list()
        assert caught.value.status_code == 401


def test_models_bad_key_error_is_in_openai_shape(stack: Stack):
    with stack.openai_client("sk-not-a-real-key") as c, pytest.raises(openai.AuthenticationError) as caught:
        c.models.list()
    assert_openai_error(caught.value, 401, "authentication_error")


def test_bad_key_is_not_retried(stack: Stack):
    sent: list[str] = []
    http = openai.DefaultHttpxClient(event_hooks={"request": [lambda req: sent.append(str(req.url))]})
    with stack.openai_client("sk-not-a-real-key", max_retries=3, http_client=http) as c:
        with pytest.raises(openai.AuthenticationError):
            chat(c)
    assert len(sent) == 1, sent


def test_unknown_model_is_not_found(stack: Stack, openai_client):
    with pytest.raises(openai.NotFoundError) as caught:
        chat(openai_client, model="gpt-nobody-serves-this")
    err = caught.value
    assert_openai_error(err, 404, "not_found_error")
    assert "gpt-nobody-serves-this" in err.body["message"]
    row = stack.usage_rows([err.request_id])[err.request_id]
    assert row["status_code"] == 404, row
    assert row["requested_model"] == "gpt-nobody-serves-this", row
    assert (row["input_tokens"], row["output_tokens"]) == (0, 0), row


def test_invalid_body_is_bad_request(openai_client):
    with pytest.raises(openai.BadRequestError) as caught:
        chat(openai_client, model="")
    assert_openai_error(caught.value, 400, "invalid_request_error")


# --- usage records -----------------------------------------------------------------------


def test_sdk_calls_are_recorded_with_their_tokens(stack: Stack, openai_client):
    calls: list[tuple[str, bool, str]] = []  # (request id, stream, model)

    raw = openai_client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=HELLO)
    raw.parse()
    calls.append((raw.headers["x-request-id"], False, OPENAI_MODEL))

    stream = chat(openai_client, stream=True)
    with stream:
        list(stream)
    calls.append((stream.response.headers["x-request-id"], True, OPENAI_MODEL))

    stream = chat(openai_client, model=OPENAI_MAPPED_MODEL, stream=True, stream_options={"include_usage": True})
    with stream:
        list(stream)
    calls.append((stream.response.headers["x-request-id"], True, OPENAI_MAPPED_MODEL))

    raw = openai_client.responses.with_raw_response.create(model=OPENAI_MODEL, input="say hi")
    raw.parse()
    calls.append((raw.headers["x-request-id"], False, OPENAI_MODEL))

    rstream = openai_client.responses.create(model=OPENAI_MAPPED_MODEL, input="say hi", stream=True)
    with rstream:
        list(rstream)
    calls.append((rstream.response.headers["x-request-id"], True, OPENAI_MAPPED_MODEL))

    assert len({request_id for request_id, _, _ in calls}) == len(calls), calls
    rows = stack.usage_rows([request_id for request_id, _, _ in calls])
    upstream = {OPENAI_MODEL: OPENAI_MODEL, OPENAI_MAPPED_MODEL: OPENAI_MAPPED_UPSTREAM}
    for request_id, streamed, model in calls:
        row = rows[request_id]
        assert_usage_row(row)
        assert row["stream"] is streamed, row
        assert (row["requested_model"], row["upstream_model"]) == (model, upstream[model]), row
        assert (row["user_id"], row["api_key_id"], row["group_id"], row["account_id"]) == (
            stack.user_id,
            stack.openai_key_id,
            stack.openai_group_id,
            stack.openai_account_id,
        ), row
        assert row["total_cost"] > 0, f"{upstream[model]} is in the price table: {row}"


# --- async client ------------------------------------------------------------------------


def test_async_client_chat_and_responses(stack: Stack):
    async def run() -> None:
        async with openai.AsyncOpenAI(
            base_url=f"{stack.url}/v1", api_key=stack.openai_key, max_retries=0, timeout=30
        ) as c:
            completion = await c.chat.completions.create(model=OPENAI_MAPPED_MODEL, messages=HELLO)
            assert completion.model == OPENAI_MAPPED_MODEL
            assert completion.choices[0].message.content == TEXT
            assert_chat_usage(completion.usage)
            stream = await c.chat.completions.create(model=OPENAI_MODEL, messages=HELLO, stream=True)
            chunks = [chunk async for chunk in stream]
            assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == TEXT
            assert all(ch.usage is None for ch in chunks)
            async with c.responses.stream(model=OPENAI_MODEL, input="say hi") as rstream:
                final = await rstream.get_final_response()
            assert final.output_text == TEXT
            assert_responses_usage(final.usage)
        async with openai.AsyncOpenAI(base_url=f"{stack.url}/v1", api_key="sk-bad", max_retries=0) as bad:
            with pytest.raises(openai.AuthenticationError):
                await bad.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)

    asyncio.run(run())
