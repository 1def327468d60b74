"""Writes Tests/Fixtures/gguf-models: tiny GGUF models made by llama.cpp, with llama.cpp's logits on them.

    python3 scripts/make_gguf_model_fixtures.py [--work /tmp/chronos-llama-cpp]

Needs torch, transformers, numpy, cmake (`pip install cmake`) and a C compiler. llama.cpp comes from the
source vendored in the llama-cpp-python source distribution (built once under --work, as by
scripts/compare_llama_cpp.py). What it writes:

- `<case>-f32.gguf` for each of Tests/Fixtures/hf-tiny's cases (llama_dense, mixtral, qwen2_moe, qwen3_moe),
  converted by llama.cpp's own `convert_hf_to_gguf.py --outtype f32`. The checkpoints have no tokenizer, so the
  converter is given a placeholder SentencePiece vocabulary of the models' 256 tokens: `<unk>`, `<s>`, `</s>`,
  then the byte tokens `<0x00>` … `<0xFC>` (the bytes that can appear in UTF-8 text), all scores 0.
- `deepseek_v2-f32.gguf`, `deepseek_v2_q_lora-f32.gguf`, `deepseek_v3-f32.gguf`: the hf-tiny DeepSeek cases, converted
  the same way (llama.cpp's `deepseek2`, with each layer's kv_b_proj split into attn_k_b and attn_v_b). llama.cpp
  itself loads only the two with a query latent (it takes a file without one for DeepSeek-V2-Lite by its 27 layers),
  so `deepseek_v2-f32` has no json. The V3 case's `mscale` (1.0) differs from its `mscale_all_dim` (0.7), which the
  file cannot say (llama.cpp stores only `0.1 · mscale_all_dim` and takes the two as equal).
- `glm4_moe-f32.gguf`, `glm4_moe_air-f32.gguf`: the hf-tiny GLM-4.5 cases, converted the same way (llama.cpp's
  `glm4moe`: the rotary width as `rope.dimension_count`, the expert groups, the pre-feed-forward norm as
  `post_attention_norm`); llama.cpp's logits on them agree with transformers' within its f16 cache's rounding.
- `glm4_moe_air-mtp-f32.gguf`: `glm4_moe_air-f32.gguf` with one multi-token-prediction layer appended as the
  converter writes GLM-4.5's (`block_count` one more, `nextn_predict_layers` 1, `blk.2.nextn.*` and `blk.2.attn_norm`
  tensors), which decoding skips; it has no json.
- `mixtral-wide-{q8_0,q4_k_m,q4_0}.gguf`: a random Mixtral wide enough for K-quants (vocab 256, hidden 256,
  2 layers, 4 heads / 2 kv heads, 4 experts top-2, expert width 256, seed 11, every matrix ~ N(0, 0.075^2),
  every RMSNorm weight 1 + 0.1 N(0, 1)), converted to f32 and quantised by `llama-quantize`.
- `qwen2-dense-f32.gguf`, `qwen3-dense-f32.gguf` and `olmoe-f32.gguf`: random dense Qwen2 and Qwen3 models and an
  OLMoE (vocab 256, hidden 64, 2 layers, 4 heads / 2 kv heads, head width 16, MLP width 128; OLMoE: 4 kv heads, 8
  experts top-2 of width 32; seed 5, matrices ~ N(0, 0.15^2), norms 1 + 0.1 N(0, 1)), converted to f32; their json also holds
  `transformers_logits`, the prompt's logits from transformers.
- `qwen3_moe-yarn-f32.gguf` and `llama-linear-f32.gguf`: a random Qwen3-MoE with YaRN rotary scaling (factor 4 over an
  original context of 64) and a dense Llama with linear scaling (factor 2), the same shapes, with transformers' logits.
- `<name>.json` beside each file: llama.cpp's logits on it (`scripts/llama_logits.c` against libllama, one
  thread): `input_ids`; `logits`, one row per prompt position from one batch; `greedy`, 12 greedy tokens;
  `greedy_logits`, the logits after each of the first 11, decoded one at a time; and `types`, the GGML type
  of each tensor in the file as gguf-py reads it.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from compare_llama_cpp import build_llama_cpp, llama_cpp_source, log, run  # noqa: E402

OUT = ROOT / "Tests" / "Fixtures" / "gguf-models"
CASES = ["llama_dense", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2_q_lora", "deepseek_v3", "glm4_moe", "glm4_moe_air"]
GREEDY = 12

CONVERT = """
import sys
sys.path.insert(0, {tree!r})
sys.path.insert(1, {tree!r} + "/gguf-py")
import gguf
import convert_hf_to_gguf
from conversion.base import ModelBase
import conversion.llama, conversion.qwen, conversion.olmo, conversion.deepseek, conversion.glm  # noqa: F401  (the classes whose vocabulary is replaced)

def placeholder_vocab(self):
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{{b:02X}}>" for b in range(253)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 253
    assert len(tokens) == self.hparams["vocab_size"]
    self.gguf_writer.add_tokenizer_model("llama")
    self.gguf_writer.add_tokenizer_pre("default")
    self.gguf_writer.add_token_list(tokens)
    self.gguf_writer.add_token_scores([0.0] * len(tokens))
    self.gguf_writer.add_token_types(types)
    self.gguf_writer.add_bos_token_id(1)
    self.gguf_writer.add_eos_token_id(2)

def every_subclass(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from every_subclass(sub)

for cls in every_subclass(ModelBase):
    cls.set_vocab = placeholder_vocab
sys.argv = ["convert_hf_to_gguf.py", {model!r}, "--outtype", "f32", "--outfile", {out!r}]
convert_hf_to_gguf.main()
"""


def convert(tree: Path, model: Path, out: Path):
    log(f"converting {model} to {out.name} with convert_hf_to_gguf.py")
    result = subprocess.run([sys.executable, "-c", CONVERT.format(tree=str(tree), model=str(model), out=str(out))],
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"convert_hf_to_gguf.py failed on {model}:\n{result.stderr[-3000:]}")


def wide_mixtral(directory: Path):
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM
    config = MixtralConfig(vocab_size=256, hidden_size=256, intermediate_size=256, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
                           max_position_embeddings=512, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(11)
    model = MixtralForCausalLM(config)
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.copy_(1 + 0.1 * torch.randn(parameter.shape, generator=generator))
            else:
                parameter.copy_(0.075 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(directory, safe_serialization=True)


def random_checkpoint(directory: Path, family: str) -> list[list[float]]:
    """A random Qwen2, Qwen3 or OLMoE checkpoint in `directory`; returns transformers' logits on the fixed prompt."""
    import torch
    from transformers import (OlmoeConfig, OlmoeForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                              Qwen3ForCausalLM)
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM
    config_type, model_type = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "qwen3": (Qwen3Config, Qwen3ForCausalLM),
                               "olmoe": (OlmoeConfig, OlmoeForCausalLM),
                               "qwen3_moe-yarn": (Qwen3MoeConfig, Qwen3MoeForCausalLM),
                               "llama-linear": (LlamaConfig, LlamaForCausalLM)}[family]
    shape = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=512, bos_token_id=1, eos_token_id=2,
                 tie_word_embeddings=False)
    if family == "qwen3_moe-yarn":
        shape.update(head_dim=16, moe_intermediate_size=32, num_experts=8, num_experts_per_tok=2, norm_topk_prob=True,
                     rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                      "original_max_position_embeddings": 64})
    elif family == "llama-linear":
        shape.update(head_dim=16, rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0})
    elif family == "olmoe":
        # llama.cpp normalises OLMoE's keys over the whole width, which needs as many KV heads as heads (as OLMoE has).
        shape.update(intermediate_size=32, num_experts=8, num_experts_per_tok=2, num_key_value_heads=4)
    else:
        shape.update(head_dim=16)
    config = config_type(**shape)
    torch.manual_seed(5)
    model = model_type(config)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            scale = 0.1 if "norm" in name else 0.15
            parameter.copy_((1 if "norm" in name else 0) + scale * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(directory, safe_serialization=True)
    with torch.no_grad():
        return model(torch.tensor([WIDE_PROMPT])).logits[0].tolist()


WIDE_PROMPT = [5, 77, 140, 3, 201, 66, 19, 250, 98, 31]


def with_prediction_layer(tree: Path, source: Path, out: Path):
    """Writes `source` (a glm4moe file) with one multi-token-prediction layer appended as llama.cpp's converter
    writes GLM-4.5's: `block_count` one more, `nextn_predict_layers` 1, and the layer's tensors (zeros and ones)."""
    sys.path.insert(0, str(tree / "gguf-py"))
    import gguf
    import numpy as np
    reader = gguf.GGUFReader(str(source))
    arch = reader.fields["general.architecture"].contents()
    blocks = reader.fields[f"{arch}.block_count"].contents()
    hidden = reader.fields[f"{arch}.embedding_length"].contents()
    writer = gguf.GGUFWriter(str(out), arch)
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue
        value = {f"{arch}.block_count": blocks + 1, f"{arch}.nextn_predict_layers": 1}.get(field.name, field.contents())
        sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, field.types[0], sub_type=sub_type)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, np.array(tensor.data))
    writer.add_tensor(f"blk.{blocks}.nextn.eh_proj.weight", np.zeros((hidden, 2 * hidden), np.float32))
    for name in ("nextn.enorm", "nextn.hnorm", "nextn.shared_head_norm", "attn_norm"):
        writer.add_tensor(f"blk.{blocks}.{name}.weight", np.ones(hidden, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def oracle(logits_tool: Path, tree: Path, gguf_file: Path, input_ids: list[int], extra: dict | None = None):
    result = json.loads(subprocess.run([str(logits_tool), str(gguf_file), ",".join(map(str, input_ids)), str(GREEDY)],
                                       check=True, capture_output=True, text=True).stdout)
    sys.path.insert(0, str(tree / "gguf-py"))
    import gguf
    reader = gguf.GGUFReader(str(gguf_file))
    result["types"] = {tensor.name: tensor.tensor_type.name for tensor in reader.tensors}
    result.update(extra or {})
    gguf_file.with_suffix(".json").write_text(json.dumps(result) + "\n")
    log(f"wrote {gguf_file.with_suffix('.json').name}: greedy {result['greedy']}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/tmp/chronos-llama-cpp")
    parser.add_argument("--llama-cpp-python", default="0.3.36")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tree = llama_cpp_source(work, args.llama_cpp_python)
    _, quantize = build_llama_cpp(tree)
    library = tree / "build" / "bin"
    logits_tool = work / "llama_logits"
    run(["cc", "-O2", "-o", str(logits_tool), str(ROOT / "scripts" / "llama_logits.c"), f"-I{tree}/include",
         f"-I{tree}/ggml/include", f"-L{library}", "-lllama", f"-Wl,-rpath,{library}"])
    OUT.mkdir(parents=True, exist_ok=True)

    for case in CASES:
        source = ROOT / "Tests" / "Fixtures" / "hf-tiny" / case
        out = OUT / f"{case}-f32.gguf"
        convert(tree, source, out)
        input_ids = json.loads((source / "reference.json").read_text())["input_ids"]
        oracle(logits_tool, tree, out, input_ids)

    convert(tree, ROOT / "Tests" / "Fixtures" / "hf-tiny" / "deepseek_v2", OUT / "deepseek_v2-f32.gguf")
    with_prediction_layer(tree, OUT / "glm4_moe_air-f32.gguf", OUT / "glm4_moe_air-mtp-f32.gguf")

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch) / "mixtral-wide"
        wide_mixtral(directory)
        f32 = Path(scratch) / "mixtral-wide-f32.gguf"
        convert(tree, directory, f32)
        input_ids = WIDE_PROMPT
        for recipe in ("q8_0", "q4_k_m", "q4_0"):
            out = OUT / f"mixtral-wide-{recipe}.gguf"
            log(f"quantising to {recipe} with llama-quantize")
            run([str(quantize), str(f32), str(out), recipe.upper()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            oracle(logits_tool, tree, out, input_ids)

        for family in ("qwen2", "qwen3", "olmoe", "qwen3_moe-yarn", "llama-linear"):
            directory = Path(scratch) / family
            logits = random_checkpoint(directory, family)
            out = OUT / (f"{family}-dense-f32.gguf" if family in ("qwen2", "qwen3") else f"{family}-f32.gguf")
            convert(tree, directory, out)
            oracle(logits_tool, tree, out, WIDE_PROMPT, {"transformers_logits": logits})


if __name__ == "__main__":
    main()
