#!/usr/bin/env python3
"""Multi-turn chat through the official `openai` Python client against `byline serve`.

Pinned: openai==3.57.0 (see tools/test.sh). The Rust integration test
`openai_client_holds_a_three_turn_conversation` starts a server on 127.0.0.1
over the sample-site corpus and runs this script against it.

Usage: openai_chat_check.py --base-url http://127.0.0.1:PORT/v1

Checks, with the client used as an application would (exits 1 on the first
failure, printing what it saw as JSON; prints the same JSON on success):
1. models.list() holds exactly one model, and models.retrieve(id) returns it;
2. a three-turn conversation about the Old Fulling Mill whose third
   question ("When was it built?") names nothing itself: its retrieval
   query carries the earlier turns' words and its first prompt source is the
   mill's history page (it cites no other), while the same question asked
   alone goes elsewhere (the weir on the fish-pass page was built too);
   the third turn's prompt is longer than the first's (earlier turns are in
   it); usage adds up and matches the tokens Byline reports;
3. max_tokens caps completion_tokens; a stop sequence cuts the draft and the
   content; temperature > 0 with a seed repeats, temperature 0 is greedy;
4. errors: an unknown model raises NotFoundError (param "model", code
   "model_not_found"), a temperature of 5 raises BadRequestError (param
   "temperature"), both in the OpenAI error shape.
"""

import argparse
import json
import sys

import openai

HISTORY = "/history.html"
TURNS = [
    "Who built the Old Fulling Mill?",
    "What happened in the flood of 1947?",
    "When was it built?",
]


def fail(msg, seen):
    seen["ok"] = False
    seen["failure"] = msg
    print(json.dumps(seen, indent=2))
    sys.exit(1)


def byline(resp):
    return (resp.model_extra or {}).get("byline") or {}


def error_body(e):
    body = e.body if isinstance(e.body, dict) else {}
    return body.get("error", body) if isinstance(body.get("error"), dict) else body


def first_prompt_source(b):
    for r in b.get("retrieved", []):
        if r.get("prompt_n") == 1:
            return r["url"]
    return None


def check_usage(resp, seen, label):
    u, b = resp.usage, byline(resp)
    if u is None:
        fail(f"{label}: no usage", seen)
    if u.total_tokens != u.prompt_tokens + u.completion_tokens:
        fail(f"{label}: usage does not add up: {u!r}", seen)
    if u.prompt_tokens != b.get("prompt_tokens") or u.completion_tokens != b.get("generated_tokens"):
        fail(f"{label}: usage {u!r} is not the tokens Byline counted ({b.get('prompt_tokens')}, {b.get('generated_tokens')})", seen)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--max-tokens", type=int, default=40)
    args = ap.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key="unused-by-byline", max_retries=0, timeout=600)
    seen = {"openai_version": openai.__version__, "ok": True}

    models = client.models.list().data
    if len(models) != 1 or not models[0].id:
        fail(f"models.list() gave {models!r}", seen)
    model_id = models[0].id
    got = client.models.retrieve(model_id)
    if got.id != model_id or got.object != "model":
        fail(f"models.retrieve({model_id!r}) gave {got!r}", seen)
    seen["model"] = model_id

    messages, turns = [], []
    for q in TURNS:
        messages.append({"role": "user", "content": q})
        resp = client.chat.completions.create(model=model_id, messages=messages, max_tokens=args.max_tokens, temperature=0)
        choice = resp.choices[0]
        if choice.message.role != "assistant" or not (choice.message.content or "").strip():
            fail(f"turn {len(turns) + 1}: bad message {choice.message!r}", seen)
        check_usage(resp, seen, f"turn {len(turns) + 1}")
        b = byline(resp)
        turns.append({
            "question": q,
            "content": choice.message.content,
            "finish_reason": choice.finish_reason,
            "retrieval_query": b.get("retrieval_query"),
            "history_messages": b.get("history_messages"),
            "first_source": first_prompt_source(b),
            "cited": [c["url"] for c in b.get("citations", [])],
            "prompt_tokens": resp.usage.prompt_tokens,
            "completion_tokens": resp.usage.completion_tokens,
        })
        messages.append({"role": "assistant", "content": choice.message.content})
    seen["turns"] = turns
    third = turns[2]
    if not third["retrieval_query"] or "mill" not in third["retrieval_query"].lower():
        fail("the third turn's retrieval query does not carry the earlier turns' words", seen)
    if not (third["first_source"] or "").endswith(HISTORY):
        fail("the third turn's first source is not the mill's history page", seen)
    if any(not u.endswith(HISTORY) for u in third["cited"]):
        fail("the third turn cites another page", seen)
    if third["history_messages"] != 4:
        fail("the third turn's prompt does not hold the four earlier messages", seen)
    if third["prompt_tokens"] <= turns[0]["prompt_tokens"]:
        fail("the third turn's prompt is not longer than the first's", seen)

    alone = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": TURNS[2]}], max_tokens=args.max_tokens)
    seen["alone"] = {"content": alone.choices[0].message.content, "first_source": first_prompt_source(byline(alone)),
                     "retrieval_query": byline(alone).get("retrieval_query")}
    if (seen["alone"]["first_source"] or "").endswith(HISTORY) or seen["alone"]["retrieval_query"] is not None:
        fail("the third question alone also went to the history page: the conversation test shows nothing", seen)

    q = [{"role": "user", "content": "Who built the Old Fulling Mill?"}]
    short = client.chat.completions.create(model=model_id, messages=q, max_tokens=3)
    check_usage(short, seen, "max_tokens=3")
    if short.usage.completion_tokens > 3:
        fail(f"max_tokens=3 generated {short.usage.completion_tokens}", seen)
    if (short.choices[0].finish_reason == "length") != (byline(short).get("draft_stop") == "max_tokens"):
        fail("finish_reason does not follow the draft's end", seen)
    seen["max_tokens_3"] = {"completion_tokens": short.usage.completion_tokens, "finish_reason": short.choices[0].finish_reason}

    stopped = client.chat.completions.create(model=model_id, messages=q, max_tokens=args.max_tokens, stop=[" "])
    content, draft = stopped.choices[0].message.content or "", byline(stopped).get("draft", "")
    seen["stop"] = {"content": content, "draft": draft, "draft_stop": byline(stopped).get("draft_stop")}
    if " " in content or " " in draft:
        fail("a stop sequence did not cut the draft and the content", seen)

    greedy = byline(client.chat.completions.create(model=model_id, messages=q, max_tokens=16)).get("draft")
    zero = byline(client.chat.completions.create(model=model_id, messages=q, max_tokens=16, temperature=0)).get("draft")
    hot = [byline(client.chat.completions.create(model=model_id, messages=q, max_tokens=16, temperature=1.5, seed=7)).get("draft") for _ in range(2)]
    seen["sampling"] = {"greedy": greedy, "temperature_0": zero, "temperature_1.5_seed_7": hot}
    if greedy != zero:
        fail("temperature 0 is not the greedy draft", seen)
    if hot[0] != hot[1]:
        fail("the same seed gave two drafts", seen)

    try:
        client.chat.completions.create(model="no-such-model", messages=q)
        fail("an unknown model was accepted", seen)
    except openai.NotFoundError as e:
        err = error_body(e)
        seen["unknown_model"] = {"status": e.status_code, "error": err}
        if err.get("param") != "model" or err.get("code") != "model_not_found" or "message" not in err or "type" not in err:
            fail("the unknown-model error is not in the OpenAI shape", seen)
    try:
        client.chat.completions.create(model=model_id, messages=q, temperature=5)
        fail("temperature 5 was accepted", seen)
    except openai.BadRequestError as e:
        err = error_body(e)
        seen["bad_temperature"] = {"status": e.status_code, "error": err}
        if err.get("param") != "temperature":
            fail("the bad-temperature error does not name the parameter", seen)

    print(json.dumps(seen, indent=2))


if __name__ == "__main__":
    main()
