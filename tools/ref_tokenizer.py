#!/usr/bin/env python3
"""Golden token ids for byline's tokenizer tests, produced by llama.cpp.

Pinned versions (the oracle):
    llama-cpp-python==0.3.36   (builds llama.cpp from source; `llama_cpp.Llama(..., vocab_only=True)`)
    gguf==0.19.0               (reads / writes vocab-only GGUF fixtures)

Run from the repository root:
    /work/venv/bin/python tools/ref_tokenizer.py

Outputs (committed; CI never runs this script):
    tests/data/tokenizer/smollm2.jsonl      default model (pre = smollm), parse_special on and off
    tests/data/tokenizer/gpt2-vocab.gguf    vocab-only GGUF with GPT-2's vocabulary (MIT), taken
                                            from the `ggml-vocab-gpt-2.gguf` file that the
                                            llama-cpp-python sdist ships under vendor/llama.cpp/models
    tests/data/tokenizer/pre-<name>.jsonl   that vocabulary tokenized by llama.cpp with
                                            tokenizer.ggml.pre = <name> (llama-bpe, qwen2, gpt-2, default)
    tests/data/tokenizer/phi3-spm-vocab.gguf  vocab-only GGUF of Phi-3-mini's SentencePiece vocabulary
                                            (model = llama, MIT), from the sdist's `ggml-vocab-phi-3.gguf`
    tests/data/tokenizer/phi3-spm.jsonl     its golden ids, parse_special on and off

Each jsonl line: {"text": str, "parse_special": bool, "ids": [int], "decoded": str}
where "decoded" is llama.cpp's token_to_piece(special=parse_special) over ids, as UTF-8.
"""

import json
import os
import random
import sys
import tempfile

import gguf
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "tokenizer")
DEFAULT_MODEL = os.path.expanduser("~/.cache/byline/models/SmolLM2-135M-Instruct.Q4_1.gguf")
SDIST_PHI3 = os.environ.get(
    "PHI3_VOCAB_GGUF",
    "/work/llama-ref/llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-phi-3.gguf",
)
SDIST_GPT2 = os.environ.get(
    "GPT2_VOCAB_GGUF",
    "/work/llama-ref/llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-gpt-2.gguf",
)


def golden_strings():
    s = [
        "",
        " ",
        "a",
        "\n",
        "\t",
        "Hello world",
        "Hello world, this is a test of provenance.",
        "In 2024, 12345 pages were crawled (3.5% failed).",
        "Café naïve — 東京 🦀 don't won't I'm",
        "  two  spaces\n\nnew lines\t\ttab   ",
        "fn main() { println!(\"{}\", x+1); } // code",
        "The quick brown fox jumps over the lazy dog.",
        "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!",
        "It's, it'S, you're, YOU'RE, we've, I'd, they'll, she'LL, don't",
        "'s 't 're 've 'm 'll 'd",
        "''''",
        "Mr. O'Neil's dog—isn't it?",
        "A sentence with trailing spaces   ",
        "   leading spaces",
        "\n\n\n",
        "\r\n\r\nWindows line endings\r\n",
        "mixed \t \n whitespace \u00a0 nbsp \u2003 em-space \u3000 ideographic",
        "tab\tseparated\tvalues\t1\t2\t3",
        "0",
        "7",
        "42",
        "123",
        "1234",
        "12345678901234567890",
        "3.14159265358979323846",
        "-0.000001e-10",
        "1,000,000 and 1.000.000 and 1 000 000",
        "Phone: +1 (555) 123-4567",
        "2026-11-28T17:05:00Z",
        "v1.2.3-rc.4+build.567",
        "0x1F600 0b1010 0o777",
        "١٢٣ ٤٥٦ Arabic-Indic digits",
        "१२३४ Devanagari digits",
        "½ ¼ ¾ ² ³ Ⅻ ⅷ",
        "①②③ ⑩",
        "東京は日本の首都です。",
        "我爱自然语言处理。",
        "한국어 텍스트를 토큰화합니다.",
        "ひらがな カタカナ 漢字",
        "مرحبا بالعالم! هذا اختبار.",
        "नमस्ते दुनिया, यह एक परीक्षण है।",
        "Привет, мир! Это тест.",
        "Ελληνικά γράμματα αβγ",
        "עברית: שלום עולם",
        "ไทย: สวัสดีชาวโลก",
        "Tiếng Việt có dấu: Xin chào thế giới",
        "Zürich Straße Ærøskøbing Łódź",
        "🦀",
        "😀😃😄😁",
        "👍🏽",
        "👨‍👩‍👧‍👦",
        "🏳️‍🌈",
        "👩🏾‍💻 writes code",
        "🇯🇵🇺🇸🇩🇪",
        "Emoji at end 🎉",
        "❤️ ✨ ☕ ⚡",
        "a\u0301 e\u0301 combining accents",
        "\u200b zero\u200bwidth \ufeff BOM",
        "\u00e9t\u00e9",
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "<|endoftext|><|endoftext|>",
        "text<|im_end|>more text",
        "<|im_start|system",
        "<|im_start|><|im_start|>",
        "<repo_name>byline<file_sep>src/main.rs",
        "<filename>a.py\n<gh_stars>10",
        "<jupyter_start><jupyter_code>print(1)<jupyter_output>1",
        "< |im_start| >",
        "<<|im_end|>>",
        "<s></s>[INST][/INST]",
        "x" * 1,
        "x" * 300,
        "supercalifragilisticexpialidocious" * 10,
        "a" * 1000,
        " " * 40,
        "\n" * 20,
        "\t" * 9,
        "=" * 80,
        "-" * 64 + "\n",
        "!!!???...",
        "...",
        "@#$%^&*()_+-=[]{}|;':\",./<>?`~",
        "~!@#",
        "C:\\Users\\name\\file.txt",
        "https://example.com/path?query=1&x=y#frag",
        "user@example.org",
        "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
        "SELECT id, name FROM users WHERE age > 21 ORDER BY name;",
        "def f(x):\n    return x * 2\n\nprint(f(21))\n",
        "class Foo:\n    def __init__(self, bar: int = 0) -> None:\n        self.bar = bar\n",
        "import numpy as np\narr = np.zeros((3, 4), dtype=np.float32)",
        "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
        "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
        "fn add<T: std::ops::Add<Output = T>>(a: T, b: T) -> T { a + b }",
        "let v: Vec<u8> = vec![0xff; 16];\nassert_eq!(v.len(), 16);",
        "function greet(name) {\n  return `Hello, ${name}!`;\n}",
        "const x = async () => await fetch('/api');",
        "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}",
        "public static void main(String[] args) { System.out.println(args.length); }",
        "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\"; done",
        "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
        "key: value\nlist:\n  - one\n  - two\n",
        "[section]\nname = \"byline\"\nversion = \"0.1.0\"",
        "\\begin{equation} E = mc^2 \\end{equation}",
        "x = (-b ± √(b² − 4ac)) / 2a",
        "∀x ∈ ℝ, x² ≥ 0 → ∃y: y ≠ x",
        "|--|--|\n| a | b |",
        "# Heading\n\n* item one\n* item two\n\n> quote",
        "    indented code block\n        more indent",
        "The year 1999 and 2000 and 20001.",
        "I have 3 apples, 12 oranges and 1000000 grapes.",
        "A1B2C3D4",
        "abc123def456",
        "3rd 21st 42nd 100th",
        "$100.00 €50 £20 ¥1000",
        "50% off!!!",
        "Room 101, floor -2",
        "don't\ncan't\nwon't",
        "   \n   \n",
        " \n",
        "\n ",
        "a \n b",
        "a  b   c    d",
        "end with newline\n",
        "end with spaces   \n   ",
        "\u00a0",
        "\u3000\u3000",
        "\u0085 next line",
        "\x00\x01\x02 control chars \x7f",
        "\x0b\x0c vertical tab form feed",
        "\U0001F9FF nazar amulet",
        "\U00010348 gothic hwair",
        "\U0002A6B2 CJK ext B",
        "\ue000 private use",
        "\U000E0001 tag",
        "unassigned \u0378\u0379 and \U0003FFFD x",
        "noncharacters \ufdd0 \uffff end",
        "a\u0378b \u0378\u0378 9\u03789",
        "Ω ≈ ç √ ∫ ˜ µ ≤ ≥ ÷",
        "ﬁ ligature ﬂ",
        "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
        "The café's crème brûlée was très délicieux.",
        "naïve coöperate résumé",
        "O'Reilly's 'quoted' \"double\" «guillemets» „German“",
        "He said: \"It's 5 o'clock.\"",
        "Provenance: every answer cites its source URL and fetch time.",
        "Respect robots.txt, ai.txt and TDM-Rep headers before crawling.",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.",
        "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer",
        "ALL CAPS SENTENCE WITH NUMBERS 123 AND SYMBOLS #!",
        "camelCaseIdentifier snake_case_identifier kebab-case-identifier SCREAMING_SNAKE",
        "__init__ __main__ ___triple___",
        "a.b.c.d e-f-g h/i/j",
        "....    ----    ____",
        "?!?! ?! !?",
        "((()))[[[]]]{{{}}}",
        "</s>",
        "<unk>",
        "<0x41>",
        "Ġhello",
        "Ċ newline marker",
        "▁sentencepiece▁style",
    ]
    rng = random.Random(20261128)
    pool = (
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        "     \n\t.,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`"
        "éüßøçñ東京日本語한국어ميحनमस्тестαβγ🦀😀👍🏽"
    )
    for n in range(60):
        length = rng.randint(1, 60)
        s.append("".join(rng.choice(pool) for _ in range(length)))
    # digit runs of every length 1..24
    for n in range(1, 25):
        s.append("".join(str((i * 7 + n) % 10) for i in range(n)))
    return s


def detokenize(llm, ids, special):
    """llama.cpp's token_to_piece per token, with a buffer large enough for any
    token (llama-cpp-python 0.3.36's own detokenize uses 32 bytes and truncates)."""
    import ctypes

    out = b""
    size = 4096
    buf = (ctypes.c_char * size)()
    for t in ids:
        n = llama_cpp.llama_token_to_piece(llm._model.vocab, llama_cpp.llama_token(t), buf, size, 0, special)
        assert 0 <= n <= size, n
        out += bytes(buf[:n])
    return out


def llama_vocab(path):
    return llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)


def run(llm, strings, out_path, modes=(False, True)):
    n = 0
    with open(out_path, "w", encoding="utf-8") as f:
        for text in strings:
            for parse_special in modes:
                ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=parse_special)
                dec = detokenize(llm, ids, parse_special).decode("utf-8", errors="replace")
                rec = {"text": text, "parse_special": parse_special, "ids": ids, "decoded": dec}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
    print(f"{out_path}: {n} records", file=sys.stderr)


def copy_vocab(src_path, dst_path, pre=None, drop_merges_over=None):
    """Write a vocab-only GGUF with the tokenizer keys of src_path, optionally overriding `pre`."""
    r = gguf.GGUFReader(src_path)
    w = gguf.GGUFWriter(dst_path, arch="llama")
    for key, field in r.fields.items():
        if not key.startswith("tokenizer.") or key == "tokenizer.chat_template":
            continue
        val = field.contents()
        if key == "tokenizer.ggml.pre" and pre is not None:
            val = pre
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_array(key, val)
        elif vtype == gguf.GGUFValueType.STRING:
            w.add_string(key, val)
        elif vtype == gguf.GGUFValueType.BOOL:
            w.add_bool(key, val)
        else:
            w.add_uint32(key, int(val))

    if pre is not None and "tokenizer.ggml.pre" not in r.fields:
        w.add_string("tokenizer.ggml.pre", pre)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    strings = golden_strings()
    llm = llama_vocab(DEFAULT_MODEL)
    run(llm, strings, os.path.join(OUT, "smollm2.jsonl"))
    del llm

    # GPT-2 vocabulary (MIT) with several pre-tokenizers.
    fixture = os.path.join(OUT, "gpt2-vocab.gguf")
    copy_vocab(SDIST_GPT2, fixture, pre="gpt-2")
    with tempfile.TemporaryDirectory() as td:
        for pre in ["gpt-2", "llama-bpe", "qwen2", "default"]:
            p = os.path.join(td, f"{pre}.gguf")
            copy_vocab(SDIST_GPT2, p, pre=pre)
            llm = llama_vocab(p)
            run(llm, strings, os.path.join(OUT, f"pre-{pre}.jsonl"), modes=(False,))
            del llm

    # A SentencePiece vocabulary (Phi-3-mini, MIT).
    fixture = os.path.join(OUT, "phi3-spm-vocab.gguf")
    copy_vocab(SDIST_PHI3, fixture)
    llm = llama_vocab(fixture)
    run(llm, strings, os.path.join(OUT, "phi3-spm.jsonl"))
    del llm


if __name__ == "__main__":
    main()
