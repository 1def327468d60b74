"""Training throughput of the `chronos bench train` reference configuration in PyTorch.

transformers' Mixtral at the same shape stands in for a Chronos model (vocab 6400, hidden 256,
4 layers, 8 heads / 4 KV heads, 8 experts top-2 of width 512, sequence 256, batch 8, f32),
trained with AdamW on random tokens; prints forward + backward + optimiser tokens/s.

    python3 scripts/pytorch_train_reference.py [--threads 2] [--steps 3]
"""
import argparse
import resource
import time

import torch
from transformers import MixtralConfig, MixtralForCausalLM

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--steps", type=int, default=3)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

config = MixtralConfig(vocab_size=6400, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                       num_attention_heads=8, num_key_value_heads=4, head_dim=32, num_local_experts=8,
                       num_experts_per_tok=2, max_position_embeddings=4096, tie_word_embeddings=True,
                       attn_implementation="eager")
model = MixtralForCausalLM(config).float().train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
batch, seq = 8, 256
data = [torch.randint(0, 6400, (batch, seq + 1)) for _ in range(args.steps + 1)]

elapsed = 0.0
for i, ids in enumerate(data):
    start = time.perf_counter()
    out = model(input_ids=ids[:, :-1], labels=ids[:, :-1])
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if i > 0:
        elapsed += time.perf_counter() - start
print(f"torch {torch.__version__}, {args.threads} threads: "
      f"{args.steps * batch * seq / elapsed:.1f} tokens/s, peak RSS "
      f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
