"""Writes a randomly initialised Hugging Face Mixtral that shares the shipped model's tokenizer.

Used to exercise Chronos's predictors on a Hugging Face architecture whose routing it did not
train: `python3 scripts/make_random_mixtral.py OUT_DIR` (needs torch and transformers).
"""
import shutil
import sys

import torch
from transformers import MixtralConfig, MixtralForCausalLM

out = sys.argv[1]
torch.manual_seed(0)
config = MixtralConfig(vocab_size=6400, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2,
                       max_position_embeddings=4096, bos_token_id=6396, eos_token_id=6398, tie_word_embeddings=False)
model = MixtralForCausalLM(config)
model.save_pretrained(out, safe_serialization=True)
for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(f"models/austen-moe/{name}", f"{out}/{name}")
print(f"wrote {out}: {sum(p.numel() for p in model.parameters())} parameters")
