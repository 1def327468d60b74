"""The Chronos-native mixture-of-experts decoder for PyTorch and transformers.

`chronos export DIR --to transformers` writes this module beside the checkpoint, so that

    AutoModelForCausalLM.from_pretrained(OUT, trust_remote_code=True)

computes the logits Chronos computes. The architecture (`config.json`, `model_type` "chronos"):

- decoder layers whose attention is, per `layer_types`, multi-head latent attention over the
  whole prefix (`full_attention`, Chronos's `mla`: one compressed key/value latent and one shared
  RoPE key per position; per head the RoPE rows come first in `q_proj`) or grouped-query
  attention over the last `sliding_window` positions (`sliding_attention`, Chronos's `sliding`);
- every feed-forward a mixture of `num_experts` routed SwiGLU experts (softmax router, top-k,
  renormalised when `norm_topk_prob`) plus `num_shared_experts` always-on SwiGLU experts summed
  without a gate. A routed slot whose expert is unavailable moves its weight to the shared path
  (the soft fallback; training drops slots at random with probability `fallback_mask_prob`);
- a lookahead head on the residual stream after layer 0 that predicts the routed experts of the
  current and next `lookahead_steps` tokens.

RoPE pairs dimension i with i + d/2 (the rotate-half convention). Given `labels`, the loss is the
Chronos loss mix: next-token cross-entropy plus λ-weighted load-balance, temporal-locality,
lookahead and (with reference router probabilities) router-anchor terms, each computed per
sequence and averaged over the batch (`chronos_loss_terms`).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ModelOutput


class ChronosConfig(PretrainedConfig):
    """`config.json` of a Chronos-native model; every default is Chronos's."""

    model_type = "chronos"

    def __init__(
        self,
        vocab_size=32000,
        hidden_size=512,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=2,
        head_dim=64,
        kv_latent_dim=128,
        rope_dim=32,
        sliding_window=512,
        layer_types=None,
        num_experts=16,
        num_experts_per_tok=2,
        num_shared_experts=1,
        moe_intermediate_size=512,
        shared_expert_intermediate_size=512,
        norm_topk_prob=True,
        lookahead_steps=4,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        lambda_balance=0.01,
        lambda_temporal=0.01,
        lambda_lookahead=0.1,
        lambda_anchor=0.0,
        fallback_mask_prob=0.1,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.kv_latent_dim = kv_latent_dim
        self.rope_dim = rope_dim
        self.sliding_window = sliding_window
        # In transformers' vocabulary (Chronos's own "mla" and "sliding" are read too): latent
        # attention over the whole prefix is "full_attention".
        spelling = {"mla": "full_attention", "sliding": "sliding_attention"}
        kinds = layer_types or ["mla" if i % 2 == 0 else "sliding" for i in range(num_hidden_layers)]
        self.layer_types = [spelling.get(kind, kind) for kind in kinds]
        self.num_experts = num_experts
        self.num_experts_per_tok = num_experts_per_tok
        self.num_shared_experts = num_shared_experts
        self.moe_intermediate_size = moe_intermediate_size
        self.shared_expert_intermediate_size = shared_expert_intermediate_size
        self.norm_topk_prob = norm_topk_prob
        self.lookahead_steps = lookahead_steps
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.max_position_embeddings = max_position_embeddings
        self.lambda_balance = lambda_balance
        self.lambda_temporal = lambda_temporal
        self.lambda_lookahead = lambda_lookahead
        self.lambda_anchor = lambda_anchor
        self.fallback_mask_prob = fallback_mask_prob
        kwargs.setdefault("use_cache", False)
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
        if len(self.layer_types) != num_hidden_layers or any(
            kind not in spelling.values() for kind in self.layer_types
        ):
            raise ValueError(
                f"layer_types must name full_attention (mla) or sliding_attention (sliding) for each of {num_hidden_layers} layers"
            )


class ChronosRMSNorm(nn.Module):
    """x / sqrt(mean(x²) + ε) · w, computed in float32."""

    def __init__(self, width, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x * self.weight.float()).to(dtype)


def rotary(x, positions, theta):
    """Rotates the last dimension of `x` [..., T, d] by RoPE at `positions` [T], pairing i with i + d/2."""
    d = x.shape[-1]
    inverse = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d))
    angles = positions.to(torch.float64)[:, None] * inverse[None, :]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    first, second = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)


def causal_mask(tokens, window, device):
    """[T, T] booleans: query t sees key s when s ≤ t and, with a window, t − s < window."""
    t = torch.arange(tokens, device=device)
    allowed = t[None, :] <= t[:, None]
    if window is not None:
        allowed &= (t[:, None] - t[None, :]) < window
    return allowed


class ChronosLatentAttention(nn.Module):
    """Multi-head latent attention: keys and values of every head projected up from one latent."""

    def __init__(self, config):
        super().__init__()
        h, d, r, l, width = (
            config.num_attention_heads,
            config.head_dim,
            config.rope_dim,
            config.kv_latent_dim,
            config.hidden_size,
        )
        self.heads, self.head_dim, self.rope_dim, self.theta = h, d, r, config.rope_theta
        self.q_proj = nn.Linear(width, h * (r + d), bias=False)
        self.kv_down_proj = nn.Linear(width, l, bias=False)
        self.kv_norm = ChronosRMSNorm(l, config.rms_norm_eps)
        self.k_rope_proj = nn.Linear(width, r, bias=False)
        self.k_up_proj = nn.Linear(l, h * d, bias=False)
        self.v_up_proj = nn.Linear(l, h * d, bias=False)
        self.o_proj = nn.Linear(h * d, width, bias=False)

    def forward(self, x, positions):
        b, t, _ = x.shape
        h, d, r = self.heads, self.head_dim, self.rope_dim
        q = self.q_proj(x).view(b, t, h, r + d).transpose(1, 2)  # [B, H, T, r + d]
        q_rope, q_nope = rotary(q[..., :r], positions, self.theta), q[..., r:]
        latent = self.kv_norm(self.kv_down_proj(x))  # [B, T, l]
        k_rope = rotary(self.k_rope_proj(x), positions, self.theta)[:, None]  # [B, 1, T, r]
        k_nope = self.k_up_proj(latent).view(b, t, h, d).transpose(1, 2)
        v = self.v_up_proj(latent).view(b, t, h, d).transpose(1, 2)
        scores = (q_rope @ k_rope.transpose(-1, -2) + q_nope @ k_nope.transpose(-1, -2)) / math.sqrt(d + r)
        scores = scores.masked_fill(~causal_mask(t, None, x.device), float("-inf"))
        out = scores.float().softmax(-1).to(v.dtype) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, h * d))


class ChronosSlidingAttention(nn.Module):
    """Grouped-query attention over the last `sliding_window` positions, RoPE over whole heads."""

    def __init__(self, config):
        super().__init__()
        h, kv, d, width = config.num_attention_heads, config.num_key_value_heads, config.head_dim, config.hidden_size
        self.heads, self.kv_heads, self.head_dim = h, kv, d
        self.window, self.theta = config.sliding_window, config.rope_theta
        self.q_proj = nn.Linear(width, h * d, bias=False)
        self.k_proj = nn.Linear(width, kv * d, bias=False)
        self.v_proj = nn.Linear(width, kv * d, bias=False)
        self.o_proj = nn.Linear(h * d, width, bias=False)

    def forward(self, x, positions):
        b, t, _ = x.shape
        h, kv, d = self.heads, self.kv_heads, self.head_dim
        q = rotary(self.q_proj(x).view(b, t, h, d).transpose(1, 2), positions, self.theta)
        k = rotary(self.k_proj(x).view(b, t, kv, d).transpose(1, 2), positions, self.theta)
        v = self.v_proj(x).view(b, t, kv, d).transpose(1, 2)
        k, v = k.repeat_interleave(h // kv, dim=1), v.repeat_interleave(h // kv, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        scores = scores.masked_fill(~causal_mask(t, self.window, x.device), float("-inf"))
        out = scores.float().softmax(-1).to(v.dtype) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, h * d))


class ChronosMLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) · up(x))."""

    def __init__(self, width, intermediate):
        super().__init__()
        self.gate_proj = nn.Linear(width, intermediate, bias=False)
        self.up_proj = nn.Linear(width, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, width, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


@dataclass
class ChronosRouting:
    """What one MoE layer's router did over a batch: scores [B, T, E] and the chosen experts [B, T, k]."""

    probabilities: torch.Tensor
    selected: torch.Tensor


class ChronosMoE(nn.Module):
    """Routed SwiGLU experts plus ungated shared experts, with the soft fallback to the shared path."""

    def __init__(self, config):
        super().__init__()
        self.top_k, self.normalize = config.num_experts_per_tok, config.norm_topk_prob
        self.gate = nn.Linear(config.hidden_size, config.num_experts, bias=False)
        self.experts = nn.ModuleList(
            ChronosMLP(config.hidden_size, config.moe_intermediate_size) for _ in range(config.num_experts)
        )
        self.shared_experts = nn.ModuleList(
            ChronosMLP(config.hidden_size, config.shared_expert_intermediate_size)
            for _ in range(config.num_shared_experts)
        )

    def forward(self, x, drop_probability=0.0):
        b, t, width = x.shape
        flat = x.reshape(-1, width)
        logits = self.gate(flat).float()  # [N, E]
        probabilities = logits.softmax(-1)
        top, selected = torch.topk(probabilities, self.top_k, dim=-1)  # descending
        combine = logits.gather(1, selected).softmax(-1) if self.normalize else top  # [N, k]
        # Availability of each slot: 0 where training drops it.
        available = torch.ones_like(combine)
        if drop_probability > 0:
            available = (torch.rand_like(combine) >= drop_probability).to(combine.dtype)
        if len(self.shared_experts) > 0:
            weights = combine * available
        else:
            # Without a shared path the kept slots carry the selected total (a constant factor).
            with torch.no_grad():
                kept = (combine * available).sum(-1, keepdim=True)
                factor = torch.where(kept > 0, combine.sum(-1, keepdim=True) / kept, torch.zeros_like(kept))
            weights = combine * available * factor
        out = torch.zeros_like(flat)
        for expert_index, expert in enumerate(self.experts):
            rows, slots = torch.nonzero(selected == expert_index, as_tuple=True)
            if rows.numel() == 0:
                continue
            contribution = expert(flat[rows]) * weights[rows, slots, None].to(flat.dtype)
            out = out.index_add(0, rows, contribution)
        if len(self.shared_experts) > 0:
            shared = sum(mlp(flat) for mlp in self.shared_experts)
            coefficient = 1 + (combine * (1 - available)).sum(-1, keepdim=True)
            out = out + shared * coefficient.to(flat.dtype)
        routing = ChronosRouting(probabilities.view(b, t, -1), selected.view(b, t, -1))
        return out.view(b, t, width), routing


class ChronosDecoderLayer(nn.Module):
    """Pre-norm attention, then pre-norm mixture of experts, each added to the residual stream."""

    def __init__(self, config, kind):
        super().__init__()
        self.input_layernorm = ChronosRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = ChronosRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = (
            ChronosSlidingAttention(config) if kind == "sliding_attention" else ChronosLatentAttention(config)
        )
        self.mlp = ChronosMoE(config)

    def forward(self, x, positions, drop_probability):
        x = x + self.self_attn(self.input_layernorm(x), positions)
        moe, routing = self.mlp(self.post_attention_layernorm(x), drop_probability)
        return x + moe, routing


class ChronosLookahead(nn.Module):
    """logits[k·E + e] = W2 · silu(W1 · h + b1) + b2 for offsets k = 0 … K."""

    def __init__(self, config):
        super().__init__()
        width = max(1, config.hidden_size // 4)
        self.steps, self.experts = config.lookahead_steps, config.num_experts
        self.fc1 = nn.Linear(config.hidden_size, width)
        self.fc2 = nn.Linear(width, (config.lookahead_steps + 1) * config.num_experts)

    def forward(self, h):
        b, t, _ = h.shape
        return self.fc2(F.silu(self.fc1(h))).view(b, t, self.steps + 1, self.experts)


class ChronosPreTrainedModel(PreTrainedModel):
    """Initialisation as Chronos's: projections N(0, 0.02²), norms 1, biases 0."""

    config_class = ChronosConfig
    base_model_prefix = "model"
    _no_split_modules = ["ChronosDecoderLayer"]

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, ChronosRMSNorm):
            nn.init.ones_(module.weight)


class ChronosModel(ChronosPreTrainedModel):
    """The decoder: embedding, layers, final norm."""

    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(ChronosDecoderLayer(config, kind) for kind in config.layer_types)
        self.norm = ChronosRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def forward(self, input_ids, drop_probability=0.0):
        """The normed final hidden state [B, T, H], each layer's routing, and the stream after layer 0."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.embed_tokens(input_ids)
        routings, after_first = [], None
        for index, layer in enumerate(self.layers):
            h, routing = layer(h, positions, drop_probability)
            routings.append(routing)
            if index == 0:
                after_first = h
        return self.norm(h), routings, after_first


@dataclass
class ChronosCausalLMOutput(ModelOutput):
    """Logits, the lookahead head's logits [B, T, K+1, E], each MoE layer's routing, and the loss with its parts."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    lookahead_logits: torch.Tensor | None = None
    router_probabilities: tuple | None = None
    selected_experts: tuple | None = None
    loss_terms: dict | None = None


def chronos_loss_terms(probabilities, selected, lookahead_log_probabilities, reference_probabilities=None):
    """Chronos's routing terms per sequence, averaged over the batch, as a dict of scalars.

    probabilities: per MoE layer [B, T, E]; selected: per layer [B, T, k];
    lookahead_log_probabilities: [B, T, K+1, E] or None; reference_probabilities: per layer
    [B, T, E] (a constant) or None.
    - balance: Σ_layers E · Σ_e load_e · mean_t P_e, load_e the share of top-k assignments to e;
    - temporal: mean over layers and pairs (t−1, t) of ‖P_t − P_{t−1}‖²;
    - lookahead: mean over offsets k ≥ 1 of mean_t −Σ_e sg(P̄_{t+k,e}) · log Q^{(k)}_{t,e}, P̄ the
      mean over layers;
    - anchor: mean over layers and t of KL(P_t ‖ P_ref,t).
    """
    b, t, experts = probabilities[0].shape
    balance = 0
    for p, chosen in zip(probabilities, selected):
        load = F.one_hot(chosen, experts).float().sum((1, 2)) / chosen[0].numel()  # [B, E]
        balance = balance + experts * (p.mean(1) * load).sum(-1)
    terms = {"balance": balance.mean()}
    if t > 1:
        temporal = sum(((p[:, 1:] - p[:, :-1]) ** 2).sum(-1).mean(1) for p in probabilities) / len(probabilities)
        terms["temporal"] = temporal.mean()
    else:
        terms["temporal"] = probabilities[0].new_zeros(())
    terms["lookahead"] = probabilities[0].new_zeros(())
    if lookahead_log_probabilities is not None:
        target = (sum(p.detach() for p in probabilities) / len(probabilities)).float()
        offsets = [k for k in range(1, lookahead_log_probabilities.shape[2]) if k < t]
        if offsets:
            per_offset = [
                -(lookahead_log_probabilities[:, : t - k, k].float() * target[:, k:]).sum(-1).mean(1) for k in offsets
            ]
            terms["lookahead"] = (sum(per_offset) / len(offsets)).mean()
    terms["anchor"] = probabilities[0].new_zeros(())
    if reference_probabilities is not None:
        floor = 1e-12
        kl = sum(
            (p * ((p + floor).log() - (q.detach() + floor).log())).sum(-1).mean(1)
            for p, q in zip(probabilities, reference_probabilities)
        )
        terms["anchor"] = (kl / len(probabilities)).mean()
    return terms


class ChronosForCausalLM(ChronosPreTrainedModel, GenerationMixin):
    """The decoder with its LM head (tied to the embedding when `tie_word_embeddings`) and lookahead head."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config):
        super().__init__(config)
        self.model = ChronosModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.lookahead = ChronosLookahead(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def forward(self, input_ids, labels=None, reference_router_probabilities=None, **kwargs):
        """Logits for `input_ids` [B, T] (no cache: every call runs the whole sequence).

        With `labels` (the inputs, shifted inside as transformers does) the loss is the Chronos
        mix; while training, routed slots are dropped with probability `fallback_mask_prob`.
        """
        drop = self.config.fallback_mask_prob if self.training else 0.0
        hidden, routings, after_first = self.model(input_ids, drop)
        logits = self.lm_head(hidden)
        lookahead_logits = self.lookahead(after_first)
        probabilities = tuple(r.probabilities for r in routings)
        selected = tuple(r.selected for r in routings)
        loss, terms = None, None
        if labels is not None:
            cross_entropy = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100
            )
            terms = chronos_loss_terms(
                probabilities, selected, lookahead_logits.float().log_softmax(-1), reference_router_probabilities
            )
            c = self.config
            loss = (
                cross_entropy
                + c.lambda_balance * terms["balance"]
                + c.lambda_temporal * terms["temporal"]
                + c.lambda_lookahead * terms["lookahead"]
                + c.lambda_anchor * terms["anchor"]
            )
            terms = {"ce": cross_entropy, **terms}
        return ChronosCausalLMOutput(
            loss=loss,
            logits=logits,
            lookahead_logits=lookahead_logits,
            router_probabilities=probabilities,
            selected_experts=selected,
            loss_terms=terms,
        )

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        return {"input_ids": input_ids}
