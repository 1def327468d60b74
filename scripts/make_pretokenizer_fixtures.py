#!/usr/bin/env python3
"""Writes Tests/Fixtures/tokenizers/{deepseek_v3,glm4,gpt_oss}: small byte-level BPE tokenizers whose
pre-tokenisers are the published ones of DeepSeek-V3, GLM-4.5 and gpt-oss, with the ids and pieces the
Hugging Face `tokenizers` library gives for a varied multilingual text set.

    python3 scripts/make_pretokenizer_fixtures.py

Each pre-tokeniser is a `Sequence` of `Split(Regex(pattern), "isolated")` steps, with the regex strings
exactly as the published `tokenizer.json` files hold them (llama.cpp's llama-vocab.cpp quotes them), then
`ByteLevel(add_prefix_space=False, use_regex=False)`. The vocabulary is trained by `BpeTrainer` on the
texts below plus TRAINING (byte-level alphabet, 800 tokens), so that most pieces are single tokens and a
piece boundary in the wrong place changes the ids. GLM-4.5's file sets the model's `ignore_merges`, as
GLM-4.5 and Llama 3 do. What it writes per case:

- `tokenizer.json`: the tokenizer as `tokenizers` saves it;
- `tokenizer.gguf`: the same vocabulary and merges as llama.cpp's converter stores a byte-level BPE
  (`tokenizer.ggml.model` gpt2, every token normal) with the `tokenizer.ggml.pre` name llama.cpp gives
  that family (`deepseek-v3`, `glm4`, `gpt-4o`);
- `cases.json`: a list of `text`, `pieces` (the split steps' `pre_tokenize_str` pieces, before the
  byte-level mapping) and `ids` (`encode(text, add_special_tokens=False).ids`).

Needs tokenizers and gguf (pip install tokenizers gguf).
"""
import json
import pathlib

import gguf
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / "tokenizers"

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
O200K = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# DeepSeek-V3's third pattern holds carriage return and line feed themselves, not \r and \n escapes.
DEEPSEEK_V3 = [
    r"\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]

# name: (split regexes, tokenizer.ggml.pre, ignore_merges, general.architecture)
CASES = {
    "deepseek_v3": (DEEPSEEK_V3, "deepseek-v3", False, "deepseek2"),
    "glm4": ([LLAMA3], "glm4", True, "glm4moe"),
    "gpt_oss": ([O200K], "gpt-4o", False, "gpt-oss"),
}

TEXTS = [
    "Hello world! How are you today?",
    "I'LL say it'S 12345 times, don't you think? We've they're I'm he'd she'll",
    "DON'T STOP. Isn't it? 'quoted' and \u2018curly\u2019 apostrophes \u2019s",
    "  leading and trailing  ",
    "don't  stop\n\n  now!!\r\n",
    "line1\n \nline2\r\n\r\nline3\n\n\n",
    "tabs\tand\t\tspaces   and\u00a0nbsp \u3000ideographic\u3000space",
    "\u4f60\u597d\u4e16\u754c\uff0c\u8fd9\u662f\u4e00\u4e2a\u6d4b\u8bd5\u3002\u4e2d\u6587\u548cEnglish\u6df7\u5408123\u4e2a",
    "\u65e5\u672c\u8a9e\u306e\u3072\u3089\u304c\u306a\u3068\u30ab\u30bf\u30ab\u30ca\u3001\u6f22\u5b57\u3002\u30e9\u30fc\u30e1\u30f3\u3092\u98df\u3079\u305f\u3044\uff01",
    "\ud55c\uad6d\uc5b4 \ud14c\uc2a4\ud2b8\uc785\ub2c8\ub2e4. \uc548\ub155\ud558\uc138\uc694!",
    "Numbers: 1 12 123 1234 12345 1234567890 3.14159 -42 +7 1,000,000 0x1F",
    "Full-width \uff11\uff12\uff13\uff14 and Arabic-Indic \u0661\u0662\u0663\u0664\u0665 and Devanagari \u0968\u0966\u0968\u096b",
    "Roman \u2167 \u216b superscript x\u00b2 fraction \u00bd and \u2460\u2461",
    "Emoji \U0001F600\U0001F44D\U0001F3FD family \U0001F468\u200d\U0001F469\u200d\U0001F467 flag \U0001F1EB\U0001F1F7 heart \u2764\ufe0f",
    "caf\u00e9 vs cafe\u0301, na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u039a\u03cc\u03c3\u03bc\u03b5",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "camelCaseWords HTTPServer iPhone McDonald's XMLHttpRequest getHTTPResponseCode ABCdef",
    "\u01c5ungla \u01c8j titlecase, modifier \u02b0\u02b2 letters, \u02bcokina",
    "Punctuation!!! ... ?! -- ** ## @@ $$ %% ^^ && (( )) [[ ]] {{ }} ~~ `` || \\\\ // ;; ::",
    "/usr/local/bin/python3 a/b/c https://example.com/path?q=1&r=2#frag",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }\n",
    "def f(x):\n    return x**2 + _private_var - self.__dunder__\n",
    "@user #hashtag $100 \u20ac5 \u00a320 \u00a5300 50% a+b=c x<y>z",
    "'hello \"world\" (parens) [brackets] {braces} <angles>",
    "math \u2211 x\u00b2 \u222b f(x)dx \u2264 \u221e \u2248 \u03c0 \u00d7 \u00f7 \u2192 \u21d2",
    "control\u0001char and zero\u200bwidth and joiner\u200dhere and bom\ufeffmark",
    "private \ue000 use and combining alone \u0301 mark",
    "Mixed: abc123def 456ghi 7jkl mno8 9",
    "trailing newline and spaces   \n",
    "   \n\t  \r\n  ",
    "\n",
    "''s '''' ''t",
    "A1B22C333D4444E55555",
    "\u3053\u308c\u306f123\u3067\u3059\u3002\u6f22\u5b57\u3072\u3089\u304c\u306a\u30ab\u30bf\u30ab\u30ca ABC",
    "Ellipsis\u2026 em\u2014dash en\u2013dash \u00abguillemets\u00bb \u201cdouble\u201d \u300cbrackets\u300d",
    "URL-encoded%20space and snake_case_name and kebab-case-name",
    "1st 2nd 3rd 4th 21st 100th",
    "x\t(y) ?'s ''' \u00a0z",
]

TRAINING = [
    "The quick brown fox jumps over the lazy dog. It's a sunny day, isn't it?",
    "Tokenizers split text into pieces before byte-pair encoding merges them into tokens.",
    "\u6211\u4eec\u5728\u5b66\u4e60\u4eba\u5de5\u667a\u80fd\u548c\u81ea\u7136\u8bed\u8a00\u5904\u7406\u3002",
    "\u4eca\u65e5\u306f\u3044\u3044\u5929\u6c17\u3067\u3059\u306d\u3002\u6771\u4eac\u3078\u884c\u304d\u307e\u3057\u3087\u3046\u3002",
    "for (int i = 0; i < 10; i++) { sum += values[i]; }",
    "Prices rose 3.5% to $1,299.99 in 2024; 2025 looks better.",
]


def split_steps(patterns):
    return [pre_tokenizers.Split(Regex(pattern), "isolated") for pattern in patterns]


def build(patterns, ignore_merges):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        split_steps(patterns) + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=800, min_frequency=1, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(TEXTS + TRAINING, trainer)
    saved = json.loads(tokenizer.to_str())
    saved["model"]["ignore_merges"] = ignore_merges
    return Tokenizer.from_str(json.dumps(saved))


def write_gguf(path, tokenizer, pre, architecture):
    saved = json.loads(tokenizer.to_str())
    vocab = saved["model"]["vocab"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    assert [vocab[token] for token in tokens] == list(range(len(tokens)))
    merges = [" ".join(merge) if isinstance(merge, list) else merge for merge in saved["model"]["merges"]]
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * len(tokens))
    writer.add_token_merges(merges)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    for name, (patterns, pre, ignore_merges, architecture) in CASES.items():
        tokenizer = build(patterns, ignore_merges)
        splitter = pre_tokenizers.Sequence(split_steps(patterns))
        cases = []
        for text in TEXTS:
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            assert tokenizer.decode(ids) == text, f"{name}: {text!r} does not decode back"
            cases.append(dict(text=text, pieces=[piece for piece, _ in splitter.pre_tokenize_str(text)], ids=ids))
        target = ROOT / name
        target.mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(target / "tokenizer.json"))
        write_gguf(target / "tokenizer.gguf", tokenizer, pre, architecture)
        (target / "cases.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n")
        print(f"{name}: {tokenizer.get_vocab_size()} tokens, {len(cases)} cases")


if __name__ == "__main__":
    main()
