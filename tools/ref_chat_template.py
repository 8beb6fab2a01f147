#!/usr/bin/env python3
"""Golden chat-template renderings for byline's tests, produced by jinja2 set up
the way Hugging Face transformers' `apply_chat_template` sets it up.

Pinned versions:
    jinja2==3.1.6     (MarkupSafe 3.0.4)
    gguf==0.19.0      (reads tokenizer.chat_template from the default model)

Run from the repository root:
    /work/venv/bin/python tools/ref_chat_template.py

Inputs:  tests/data/chat/cases.json (conversations), tests/data/chat/tools.jinja
         (a harder HF-style template), the default model's tokenizer.chat_template.
Outputs: tests/data/chat/smollm2.jinja (the default model's template, verbatim),
         tests/data/chat/expected.jsonl, one line per (template, case,
         add_generation_prompt): {"template", "case", "add_generation_prompt",
         "output"} or {"error"} when the template raised.
"""

import json
import os
from datetime import datetime

import gguf
import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

assert jinja2.__version__ == "3.1.6", jinja2.__version__

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "chat")
DEFAULT_MODEL = os.path.expanduser("~/.cache/byline/models/SmolLM2-135M-Instruct.Q4_1.gguf")


class TemplateRaised(Exception):
    pass


def raise_exception(message):
    raise TemplateRaised(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # As in transformers: json.dumps, no HTML escaping.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    r = gguf.GGUFReader(DEFAULT_MODEL)
    smollm2 = r.fields["tokenizer.chat_template"].contents()
    toks = r.fields["tokenizer.ggml.tokens"].contents()
    bos = toks[r.fields["tokenizer.ggml.bos_token_id"].contents()]
    eos = toks[r.fields["tokenizer.ggml.eos_token_id"].contents()]
    with open(os.path.join(DATA, "smollm2.jinja"), "w", encoding="utf-8", newline="") as f:
        f.write(smollm2)
    with open(os.path.join(DATA, "tools.jinja"), encoding="utf-8") as f:
        tools_src = f.read()
    with open(os.path.join(DATA, "cases.json"), encoding="utf-8") as f:
        cases = json.load(f)

    env = environment()
    templates = {"smollm2": env.from_string(smollm2), "tools": env.from_string(tools_src)}
    n = 0
    with open(os.path.join(DATA, "expected.jsonl"), "w", encoding="utf-8") as out:
        for tname, tmpl in templates.items():
            for cname, case in cases.items():
                if tname == "smollm2" and case.get("smollm2") is False:
                    continue
                for agp in (True, False):
                    rec = {"template": tname, "case": cname, "add_generation_prompt": agp}
                    try:
                        rec["output"] = tmpl.render(
                            messages=case["messages"],
                            tools=case.get("tools"),
                            add_generation_prompt=agp,
                            bos_token=bos,
                            eos_token=eos,
                        )
                    except TemplateRaised as e:
                        rec["error"] = str(e)
                    out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    n += 1
    print(f"expected.jsonl: {n} renderings")


if __name__ == "__main__":
    main()
