#!/usr/bin/env python3
"""Compatibility check: the official `openai` Python client against `byline serve`.

Pinned: openai==3.57.0 (Python 3.11). `.ci/run` installs it into a venv and
the Rust integration test `serve_openai_client` runs this script against a
server on 127.0.0.1 that it started itself.

Usage: openai_compat_check.py --base-url http://127.0.0.1:PORT/v1 --question "..."

Checks, with the client used exactly as an application would:
1. non-streaming chat.completions.create: one choice, role assistant,
   finish_reason "stop" (or "length" at max_tokens), non-empty content, usage present, and Byline's extra
   `citations` field readable from the response object;
2. streaming: chunks arrive as ChatCompletionChunk objects, content deltas
   concatenate to the same kind of text, the last chunk has finish_reason
   "stop" (or "length") and carries `citations`;
3. an invalid request (no user message) raises openai.BadRequestError with
   the server's message.
Prints one JSON object with what it saw; exits 1 on the first failed check.
"""

import argparse
import json
import sys

import openai


def fail(msg, seen):
    seen["ok"] = False
    seen["failure"] = msg
    print(json.dumps(seen, indent=2))
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--question", required=True)
    ap.add_argument("--max-tokens", type=int, default=48)
    args = ap.parse_args()

    client = openai.OpenAI(base_url=args.base_url, api_key="unused-by-byline", max_retries=0, timeout=600)
    seen = {"openai_version": openai.__version__, "ok": True}

    resp = client.chat.completions.create(
        model="byline",
        messages=[
            {"role": "system", "content": "ignored by byline: the answer pipeline has its own prompt"},
            {"role": "user", "content": args.question},
        ],
        max_tokens=args.max_tokens,
    )
    if resp.object != "chat.completion":
        fail(f"object is {resp.object!r}", seen)
    if len(resp.choices) != 1:
        fail(f"{len(resp.choices)} choices", seen)
    choice = resp.choices[0]
    if choice.message.role != "assistant":
        fail(f"role {choice.message.role!r}", seen)
    # "length" when the draft ran into max_tokens.
    if choice.finish_reason not in ("stop", "length"):
        fail(f"finish_reason {choice.finish_reason!r}", seen)
    if not (choice.message.content or "").strip():
        fail("empty content", seen)
    if resp.usage is None or resp.usage.total_tokens < resp.usage.completion_tokens:
        fail(f"bad usage {resp.usage!r}", seen)
    extra = resp.model_extra or {}
    if not isinstance(extra.get("citations"), list):
        fail(f"no citations list in the extra fields: {sorted(extra)}", seen)
    seen["non_streaming"] = {
        "content": choice.message.content,
        "citations": len(extra["citations"]),
        "completion_tokens": resp.usage.completion_tokens,
    }

    stream = client.chat.completions.create(
        model="byline",
        messages=[{"role": "user", "content": args.question}],
        max_tokens=args.max_tokens,
        stream=True,
    )
    parts, last, chunks = [], None, 0
    for chunk in stream:
        chunks += 1
        if chunk.object != "chat.completion.chunk":
            fail(f"chunk object {chunk.object!r}", seen)
        if chunk.choices:
            delta = chunk.choices[0].delta
            if delta.content:
                parts.append(delta.content)
            if chunk.choices[0].finish_reason is not None:
                last = chunk
    if last is None or last.choices[0].finish_reason not in ("stop", "length"):
        fail("no final chunk with finish_reason stop or length", seen)
    if not "".join(parts).strip():
        fail("streamed content is empty", seen)
    if not isinstance((last.model_extra or {}).get("citations"), list):
        fail("final chunk carries no citations list", seen)
    seen["streaming"] = {"chunks": chunks, "content": "".join(parts), "citations": len(last.model_extra["citations"])}

    try:
        client.chat.completions.create(model="byline", messages=[{"role": "system", "content": "x"}])
        fail("a request without a user message was accepted", seen)
    except openai.BadRequestError as e:
        seen["bad_request"] = {"status": e.status_code, "message": str(e)}
        if "user message" not in str(e):
            fail("the 400 does not say what is wrong", seen)

    print(json.dumps(seen, indent=2))


if __name__ == "__main__":
    main()
