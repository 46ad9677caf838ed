"""Protocol translation seen from the official SDKs: the `openai` SDK on an Anthropic group
(Chat Completions and Responses answered by Messages accounts), the `anthropic` SDK on the
OpenAI group (Messages answered by a chat account), tool calls both ways, usage rows, and
errors in the caller's shape.

The fake upstream answers in the protocol of the route it is called on, so every answer here
crossed the gateway's translation. It calls a tool when the request forces one (`tool_choice`
naming it, or `required` / `any`) and answers in text once the tool result came back.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
from conftest import OPENAI_MODEL, Stack

TEXT = "Hello from the fake upstream."
# The fake's default usage in Anthropic's terms: 25 fresh input tokens, 200 cache reads, 150
# cache writes, 12 output. OpenAI's prompt count includes the cached and written parts.
INPUT, CACHE_READ, CACHE_WRITE, OUTPUT = 25, 200, 150, 12
CLAUDE = "claude-sonnet-4-5-20250929"
WEATHER_CHAT = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def claude_via_openai(stack: Stack):
    """The openai SDK with the Anthropic group's key."""
    with stack.openai_client(stack.key) as c:
        yield c


@pytest.fixture
def gpt_via_anthropic(stack: Stack):
    """The anthropic SDK with the OpenAI group's key."""
    with stack.client(stack.openai_key) as c:
        yield c


def test_chat_on_anthropic_group_answers_with_usage(stack: Stack, claude_via_openai):
    raw = claude_via_openai.chat.completions.with_raw_response.create(
        model=CLAUDE, messages=[{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}]
    )
    completion = raw.parse()
    assert completion.model == CLAUDE
    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage.prompt_tokens == INPUT + CACHE_READ + CACHE_WRITE
    assert usage.prompt_tokens_details.cached_tokens == CACHE_READ
    assert usage.completion_tokens == OUTPUT
    row = stack.usage_rows([raw.headers["x-request-id"]])[raw.headers["x-request-id"]]
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (INPUT, CACHE_READ, OUTPUT)
    assert row["cache_creation_tokens"] == CACHE_WRITE
    assert row["status_code"] == 200 and row["stream"] is False


def test_chat_stream_on_anthropic_group_with_usage_chunk(stack: Stack, claude_via_openai):
    stream = claude_via_openai.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    with stream:
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == OUTPUT
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    rid = stream.response.headers["x-request-id"]
    assert stack.usage_rows([rid])[rid]["output_tokens"] == OUTPUT


def test_chat_tool_call_round_trip_on_anthropic_group(claude_via_openai):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = claude_via_openai.chat.completions.create(
        model=CLAUDE, messages=messages, tools=[WEATHER_CHAT], tool_choice="required"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "fake"}

    # Streamed, the same call arrives in pieces the SDK's helper puts back together.
    with claude_via_openai.chat.completions.stream(
        model=CLAUDE, messages=messages, tools=[WEATHER_CHAT], tool_choice="required"
    ) as stream:
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls[0]
    assert (streamed.function.name, json.loads(streamed.function.arguments)) == ("get_weather", {"city": "fake"})
    assert final.choices[0].finish_reason == "tool_calls"

    # The result goes back; the model answers in text.
    messages += [choice.message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "18°C"}]
    second = claude_via_openai.chat.completions.create(
        model=CLAUDE, messages=messages, tools=[WEATHER_CHAT], tool_choice="required"
    )
    assert second.choices[0].message.content == TEXT
    assert second.choices[0].finish_reason == "stop"


def test_responses_stream_on_anthropic_group(stack: Stack, claude_via_openai):
    with claude_via_openai.responses.stream(model=CLAUDE, input="say hi", instructions="be brief") as stream:
        events = [e.type for e in stream]
        final = stream.get_final_response()
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert "response.output_text.delta" in events
    assert final.output_text == TEXT
    assert final.usage.input_tokens_details.cached_tokens == CACHE_READ
    assert final.usage.output_tokens == OUTPUT
    whole = claude_via_openai.responses.create(model=CLAUDE, input="say hi")
    assert whole.output_text == TEXT and whole.status == "completed"


def test_chat_field_that_cannot_be_mapped_is_a_bad_request_naming_it(claude_via_openai):
    with pytest.raises(openai.BadRequestError) as caught:
        claude_via_openai.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "hi"}], n=2)
    assert caught.value.param == "n"
    assert caught.value.response.headers.get("x-should-retry") == "false"


def test_messages_on_openai_group_answers_and_streams(stack: Stack, gpt_via_anthropic):
    message = gpt_via_anthropic.messages.create(
        model=OPENAI_MODEL, max_tokens=64, system="terse", messages=[{"role": "user", "content": "hi"}]
    )
    assert message.model == OPENAI_MODEL
    assert message.content[0].text == TEXT and message.stop_reason == "end_turn"
    # OpenAI's fake counts 25 fresh + 200 cached prompt tokens.
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (INPUT, CACHE_READ)
    assert message.usage.output_tokens == OUTPUT

    with gpt_via_anthropic.messages.stream(
        model=OPENAI_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.usage.output_tokens == OUTPUT
    rid = stream.response.headers["x-request-id"]
    row = stack.usage_rows([rid])[rid]
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (INPUT, CACHE_READ, OUTPUT)


def test_messages_tool_use_round_trip_on_openai_group(gpt_via_anthropic):
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    first = gpt_via_anthropic.messages.create(
        model=OPENAI_MODEL, max_tokens=64, messages=messages, tools=[WEATHER_ANTHROPIC], tool_choice={"type": "any"}
    )
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert (use.name, use.input) == ("get_weather", {"city": "fake"})

    with gpt_via_anthropic.messages.stream(
        model=OPENAI_MODEL, max_tokens=64, messages=messages, tools=[WEATHER_ANTHROPIC], tool_choice={"type": "any"}
    ) as stream:
        final = stream.get_final_message()
    streamed = next(b for b in final.content if b.type == "tool_use")
    assert (streamed.name, streamed.input) == ("get_weather", {"city": "fake"})
    assert final.stop_reason == "tool_use"

    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "-3°C"}]},
    ]
    second = gpt_via_anthropic.messages.create(
        model=OPENAI_MODEL, max_tokens=64, messages=messages, tools=[WEATHER_ANTHROPIC], tool_choice={"type": "any"}
    )
    assert second.content[0].text == TEXT and second.stop_reason == "end_turn"


def test_messages_on_openai_group_errors_are_anthropic_shaped(gpt_via_anthropic):
    with pytest.raises(anthropic.BadRequestError) as caught:
        gpt_via_anthropic.messages.create(
            model=OPENAI_MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "x"}}]}],
        )
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
    assert "messages[0].content[0]" in body["error"]["message"], body
