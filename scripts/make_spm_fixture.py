"""Writes Tests/Fixtures/gguf-tokenizers/mistral-v1.gguf.gz and mistral-v1-cases.json: Mistral's SentencePiece
vocabulary as a GGUF file, and the ids the `sentencepiece` library gives texts with it.

    python3 scripts/make_spm_fixture.py      # needs `pip install sentencepiece protobuf mistral-common gguf`

The vocabulary is `tokenizer.model.v1` from the `mistral-common` package on PyPI (Mistral 7B's and Mixtral's,
32000 pieces, BPE with byte fallback). Its pieces, scores and types are written as llama.cpp's converter writes them
(`tokenizer.ggml.model` `llama`; the type from `is_unknown`, `is_control`, `is_unused` and `is_byte`;
`add_space_prefix` from the model's `add_dummy_prefix`), in a GGUF file without tensors, gzipped. The cases are the
texts of Tests/Fixtures/tokenizers/gpt2/cases.json and more (characters outside the vocabulary, which fall back to
bytes; control characters; runs of spaces), each with `sentencepiece`'s `encode(text)` (no BOS).
"""
import gzip
import json
from pathlib import Path

import gguf
import mistral_common
import sentencepiece
from sentencepiece import sentencepiece_model_pb2

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "gguf-tokenizers"
EXTRA = ["𠜎𠜱𠝹", "🧑🏽‍🚀 and 🏳️‍🌈", "tab\there\x01\x02\x7f", "   leading and trailing   ", "a\u00a0b\u2009c",
         "Ꭰ Ꭱ ᚠ ᚡ ꙮ", "∮ E⋅da = Q", "multiple\n\n\nnewlines\r\n", "ｆｕｌｌｗｉｄｔｈ", "<s> and </s> as text"]


def main():
    path = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(path.read_bytes())
    tokens, scores, types = [], [], []
    for i in range(processor.vocab_size()):
        tokens.append(processor.id_to_piece(i))
        scores.append(processor.get_score(i))
        kind = gguf.TokenType.NORMAL
        if processor.is_unknown(i):
            kind = gguf.TokenType.UNKNOWN
        elif processor.is_control(i):
            kind = gguf.TokenType.CONTROL
        elif processor.is_unused(i):
            kind = gguf.TokenType.UNUSED
        elif processor.is_byte(i):
            kind = gguf.TokenType.BYTE
        types.append(kind)

    plain = OUT / "mistral-v1.gguf"
    writer = gguf.GGUFWriter(str(plain), "llama")
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(processor.bos_id())
    writer.add_eos_token_id(processor.eos_id())
    writer.add_unk_token_id(processor.unk_id())
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(model.normalizer_spec.add_dummy_prefix)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (OUT / "mistral-v1.gguf.gz").write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    plain.unlink()

    texts = [case["text"] for case in json.loads((ROOT / "Tests" / "Fixtures" / "tokenizers" / "gpt2" / "cases.json").read_text())]
    cases = [{"text": text, "ids": processor.encode(text)} for text in texts + EXTRA]
    (OUT / "mistral-v1-cases.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
