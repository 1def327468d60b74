#!/usr/bin/env python3
"""Writes the hf-tiny oracle cases for RoPE scaling and the DeepSeek, gpt-oss and GLM-4.5 families into
Tests/Fixtures/hf-tiny/CASE (see that folder's README for what each file holds): a tiny
randomly initialised causal LM saved by transformers 5 and reference.json with its logits,
greedy continuation, and router choices and weights.

    python3 scripts/make_hf_tiny_fixtures.py [CASE ...]     # all cases when none is named

For each case, seeds from the case's first seed upwards are tried until the smallest top-1/top-2
logit gap over the greedy steps and the smallest router selection gap are both at least 0.01,
so float32 rounding in another implementation cannot flip a choice.

Needs torch (CPU) and transformers>=5 (pip install torch "transformers>=5").
"""
import json
import pathlib
import shutil
import sys

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / "hf-tiny"
PROMPT_LENGTH, NEW_TOKENS, MARGIN = 10, 12, 0.01

LLAMA = dict(
    model_type="llama", vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5, max_position_embeddings=64,
    tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
)
DEEPSEEK = dict(
    vocab_size=256, hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
    v_head_dim=12, n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1,
    rms_norm_eps=1e-6, max_position_embeddings=64, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
)
GPT_OSS = dict(
    model_type="gpt_oss", vocab_size=256, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
    sliding_window=4, rms_norm_eps=1e-5, max_position_embeddings=64, tie_word_embeddings=False, bos_token_id=1,
    eos_token_id=2,
)
GLM4_MOE = dict(
    model_type="glm4_moe", vocab_size=256, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, n_routed_experts=8,
    num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1, attention_bias=True, rms_norm_eps=1e-5,
    max_position_embeddings=64, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, num_nextn_predict_layers=0,
)

CASES = {
    "llama_linear": dict(LLAMA, rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=4.0)),
    "llama_llama3": dict(
        LLAMA,
        rope_parameters=dict(
            rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
            original_max_position_embeddings=16,
        ),
    ),
    "llama_yarn": dict(
        LLAMA,
        rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0, original_max_position_embeddings=16),
    ),
    # No query latent; softmax scores, the top groups by their best expert (group_limited_greedy).
    "deepseek_v2": dict(
        DEEPSEEK, model_type="deepseek_v2", q_lora_rank=None, topk_method="group_limited_greedy", n_group=4,
        topk_group=2, routed_scaling_factor=1.5, norm_topk_prob=False,
        rope_parameters=dict(rope_type="default", rope_theta=10000.0),
    ),
    # A query latent; plain greedy top-k; YaRN with DeepSeek's mscale_all_dim correction.
    "deepseek_v2_q_lora": dict(
        DEEPSEEK, model_type="deepseek_v2", q_lora_rank=24, topk_method="greedy", n_group=None, topk_group=None,
        routed_scaling_factor=1.0, norm_topk_prob=False,
        rope_parameters=dict(
            rope_type="yarn", rope_theta=10000.0, factor=4.0, original_max_position_embeddings=16, mscale=1.0,
            mscale_all_dim=1.0, beta_fast=32, beta_slow=1,
        ),
    ),
    # Sigmoid scores with the selection bias, groups by their top-2 sum (noaux_tc), YaRN whose
    # mscale and mscale_all_dim differ, so both the cos/sin factor and the softmax correction act.
    "deepseek_v3": dict(
        DEEPSEEK, model_type="deepseek_v3", q_lora_rank=24, topk_method="noaux_tc", n_group=4, topk_group=2,
        routed_scaling_factor=2.5, norm_topk_prob=True, scoring_func="sigmoid", rope_interleave=True,
        num_nextn_predict_layers=0,
        rope_parameters=dict(
            rope_type="yarn", rope_theta=10000.0, factor=4.0, original_max_position_embeddings=16, mscale=1.0,
            mscale_all_dim=0.7, beta_fast=32, beta_slow=1,
        ),
    ),
    # Sliding (window 4) then full attention, attention sinks, biases on attention, router and
    # experts, YaRN without truncation as the published configs have it, and swiglu_limit 1 so the
    # clamps act on these small activations (the published checkpoints use 7).
    "gpt_oss": dict(
        GPT_OSS, swiglu_limit=1.0,
        rope_parameters=dict(
            rope_type="yarn", rope_theta=150000.0, factor=4.0, original_max_position_embeddings=16, beta_fast=32.0,
            beta_slow=1.0, truncate=False,
        ),
    ),
    # GLM-4.5's shape: per-head q/k norms, q/k/v biases, half of each head rotated (the default
    # partial_rotary_factor 0.5), sigmoid scores plus the selection bias, groups by their top-2
    # sum (n_group 4, topk_group 2; the published models have one group), renormalised and scaled.
    "glm4_moe": dict(
        GLM4_MOE, use_qk_norm=True, n_group=4, topk_group=2, norm_topk_prob=True, routed_scaling_factor=2.5,
        rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5),
    ),
    # GLM-4.5-Air's shape: no q/k norms, one group; a quarter of each head rotated, with YaRN over
    # those dimensions, and weights neither renormalised nor scaled.
    "glm4_moe_air": dict(
        GLM4_MOE, use_qk_norm=False, n_group=1, topk_group=1, norm_topk_prob=False, routed_scaling_factor=1.0,
        rope_parameters=dict(
            rope_type="yarn", rope_theta=10000.0, factor=4.0, original_max_position_embeddings=16,
            partial_rotary_factor=0.25,
        ),
    ),
}
# As gpt_oss, with the experts' weights in MXFP4 as the published checkpoints store them (see
# quantize_experts); the reference is computed with the dequantised weights.
CASES["gpt_oss_mxfp4"] = dict(CASES["gpt_oss"])
MXFP4_CASES = {"gpt_oss_mxfp4"}


def quantize_experts(model):
    """Rounds every expert weight to MXFP4 (gguf-py's quantiser, blocks of 32 along each output
    row's inputs), sets the parameters to the dequantised values, and returns the checkpoint
    tensors `*_blocks` [E, rows, columns / 32, 16] and `*_scales` [E, rows, columns / 32] in the
    Hugging Face layout (code 2j in the low nibble of byte j, 2j + 1 in the high)."""
    import numpy as np
    from gguf.quants import GGMLQuantizationType as Q, dequantize, quantize

    tensors = {}
    for index, layer in enumerate(model.model.layers):
        for name in ("gate_up_proj", "down_proj"):
            parameter = getattr(layer.mlp.experts, name)
            rows = parameter.detach().transpose(1, 2).contiguous().numpy()  # [E, out, in]
            experts, out, columns = rows.shape
            ggml = quantize(rows.reshape(-1, 32), Q.MXFP4).reshape(-1, 17)
            values = dequantize(ggml.reshape(-1), Q.MXFP4).reshape(experts, out, columns)
            codes = np.concatenate([ggml[:, 1:] & 0x0F, ggml[:, 1:] >> 4], axis=1)
            blocks = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
            prefix = f"model.layers.{index}.mlp.experts.{name}"
            tensors[prefix + "_blocks"] = torch.from_numpy(blocks.reshape(experts, out, columns // 32, 16))
            tensors[prefix + "_scales"] = torch.from_numpy(ggml[:, 0].copy().reshape(experts, out, columns // 32))
            with torch.no_grad():
                parameter.copy_(torch.from_numpy(values).transpose(1, 2))
    return tensors


def build(case, seed):
    spec = dict(CASES[case])
    model_type = spec.pop("model_type")
    config = AutoConfig.for_model(model_type, **spec)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.copy_(1 + 0.1 * torch.randn(parameter.shape, generator=generator))
            else:
                parameter.copy_(0.15 * torch.randn(parameter.shape, generator=generator))
        for name, buffer in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buffer.copy_(0.1 * torch.randn(buffer.shape, generator=generator))
    model.eval()
    model.mxfp4_tensors = quantize_experts(model) if case in MXFP4_CASES else None
    return model


def routers(model):
    """Each decoder layer's router module, None for a dense layer."""
    name = "router" if model.config.model_type == "gpt_oss" else "gate"
    return [getattr(layer.mlp, name, None) if hasattr(layer.mlp, "experts") else None for layer in model.model.layers]


def routing(model, gate, logits):
    """The experts a DeepSeek or gpt-oss router picks for each row of `logits`, best first by the
    score it selects on, their combine weights, and the smallest gap that decides the choice."""
    c = model.config
    experts, k = logits.shape[-1], c.num_experts_per_tok
    if c.model_type == "gpt_oss":
        # The top-k logits, then a softmax over those k only.
        ordered = logits.sort(dim=-1, descending=True)
        gap = (ordered.values[:, k - 1] - ordered.values[:, k]).min().item()
        return ordered.indices[:, :k], ordered.values[:, :k].softmax(dim=-1), gap
    if c.model_type in ("deepseek_v3", "glm4_moe"):
        scores = logits.sigmoid()
        choice = scores + gate.e_score_correction_bias
        group_scores = choice.view(-1, c.n_group, experts // c.n_group).topk(2, dim=-1)[0].sum(dim=-1)
        # One group leaves nothing to choose.
        group_scores = group_scores if c.n_group > 1 else None
        masked_value = float("-inf")
    else:
        scores = logits.softmax(dim=-1)
        choice = scores
        group_scores = scores.view(-1, c.n_group, experts // c.n_group).max(dim=-1).values if c.n_group else None
        masked_value = 0.0
    gaps = []
    if group_scores is not None:
        ordered = group_scores.sort(dim=-1, descending=True).values
        gaps.append((ordered[:, c.topk_group - 1] - ordered[:, c.topk_group]).min().item())
        chosen = group_scores.topk(c.topk_group, dim=-1).indices
        mask = torch.zeros_like(group_scores).scatter_(1, chosen, 1).bool()
        mask = mask.unsqueeze(-1).expand(-1, c.n_group, experts // c.n_group).reshape(-1, experts)
        choice = choice.masked_fill(~mask, masked_value)
    ordered = choice.sort(dim=-1, descending=True)
    gaps.append((ordered.values[:, k - 1] - ordered.values[:, k]).min().item())
    indices = ordered.indices[:, :k]
    weights = scores.gather(1, indices)
    if c.model_type in ("deepseek_v3", "glm4_moe") and c.norm_topk_prob:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    return indices, weights * c.routed_scaling_factor, min(gaps)


def reference(case, seed):
    model = build(case, seed)
    generator = torch.Generator().manual_seed(seed)
    prompt = torch.randint(3, 256, (1, PROMPT_LENGTH), generator=generator)

    captured = {}
    hooks = []
    for layer, gate in enumerate(routers(model)):
        if gate is not None:
            hooks.append(gate.register_forward_hook(lambda module, args, output, layer=layer: captured.setdefault(layer, []).append(output)))
    with torch.no_grad():
        logits = model(prompt).logits[0]

    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    with torch.no_grad():
        generated = model.generate(
            prompt, do_sample=False, use_cache=True, max_new_tokens=NEW_TOKENS, output_scores=True,
            return_dict_in_generate=True,
        )
    greedy = generated.sequences[0, PROMPT_LENGTH:].tolist()
    greedy_margin = min((s[0].topk(2).values[0] - s[0].topk(2).values[1]).item() for s in generated.scores)

    # The greedy tokens again without the cache, one full forward per step.
    ids = prompt
    for _ in range(NEW_TOKENS):
        with torch.no_grad():
            ids = torch.cat([ids, model(ids).logits[:, -1:].argmax(-1)], dim=1)
    assert ids[0, PROMPT_LENGTH:].tolist() == greedy, f"{case}: cached and uncached greedy tokens differ"
    for hook in hooks:
        hook.remove()

    router_topk, router_weights, router_gap = [], [], float("inf")
    for layer, gate in enumerate(routers(model)):
        if gate is None:
            router_topk.append([])
            router_weights.append([])
            continue
        # The prompt's routing, then the routing of the whole sequence (for the margin).
        indices, weights, _ = routing(model, gate, captured[layer][0][0])
        assert torch.equal(indices.sort(dim=-1).values, captured[layer][0][2].sort(dim=-1).values), f"{case}: layer {layer} experts differ"
        expected_weights = captured[layer][0][1].gather(1, captured[layer][0][2].argsort(dim=-1))
        assert torch.allclose(
            weights.gather(1, indices.argsort(dim=-1)), expected_weights, atol=1e-6
        ), f"{case}: layer {layer} weights differ from the router's"
        router_topk.append(indices.tolist())
        router_weights.append([[float(f"{w:.9g}") for w in row] for row in weights.tolist()])
        with torch.no_grad():
            everything = torch.cat([step[0] for step in captured[layer]], dim=0)
        router_gap = min(router_gap, routing(model, gate, everything)[2])

    return model, dict(
        case=case,
        model_type=model.config.model_type,
        input_ids=prompt[0].tolist(),
        logits=[[float(f"{v:.9g}") for v in row] for row in logits.tolist()],
        greedy=greedy,
        router_topk=router_topk if any(router_topk) else None,
        router_weights=router_weights if any(router_weights) else None,
        transformers_version=transformers.__version__,
        torch_version=torch.__version__,
        seed=seed,
        init=dict(weight_std=0.15, norm_weight="1 + 0.1 * N(0,1)", e_score_correction_bias_std=0.1),
        attn_implementation="eager",
        min_greedy_top1_top2_margin=float(f"{greedy_margin:.9g}"),
        min_router_kth_gap=None if router_gap == float("inf") else float(f"{router_gap:.9g}"),
    )


def write_mxfp4_checkpoint(target, mxfp4_tensors):
    """Replaces the saved float experts with their MXFP4 blocks and scales, and marks the config
    as the published checkpoints are marked."""
    from safetensors.torch import load_file, save_file

    path = target / "model.safetensors"
    tensors = {k: v for k, v in load_file(path).items() if not k.endswith(("experts.gate_up_proj", "experts.down_proj"))}
    tensors.update(mxfp4_tensors)
    save_file(tensors, path, metadata={"format": "pt"})
    config = json.loads((target / "config.json").read_text())
    config["quantization_config"] = dict(
        quant_method="mxfp4", modules_to_not_convert=["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]
    )
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def main():
    for case in sys.argv[1:] or CASES:
        for seed in range(100):
            model, ref = reference(case, seed)
            margins = [ref["min_greedy_top1_top2_margin"]] + ([ref["min_router_kth_gap"]] if ref["min_router_kth_gap"] is not None else [])
            if min(margins) >= MARGIN:
                break
        else:
            raise SystemExit(f"{case}: no seed below 100 gives margins of {MARGIN}")
        target = ROOT / case
        shutil.rmtree(target, ignore_errors=True)
        model.save_pretrained(target, safe_serialization=True)
        (target / "reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")
        if model.mxfp4_tensors is not None:
            write_mxfp4_checkpoint(target, model.mxfp4_tensors)
            print(f"{case}: seed {ref['seed']}, margins {margins}")
            continue
        reloaded = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32, attn_implementation="eager")
        with torch.no_grad():
            again = reloaded(torch.tensor([ref["input_ids"]])).logits[0]
        assert torch.equal(again, torch.tensor(ref["logits"])), f"{case}: reloaded logits differ"
        size = sum(f.stat().st_size for f in target.iterdir())
        print(f"{case}: seed {ref['seed']}, margins {margins}, {size // 1024} KB")


if __name__ == "__main__":
    main()
