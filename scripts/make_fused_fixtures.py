#!/usr/bin/env python3
"""Writes Tests/Fixtures/hf-tiny-fused: the hf-tiny MoE checkpoints re-saved by transformers 5
in its fused expert layout (`save_pretrained(..., save_original_format=False)`), and checks
that transformers reads each back to the logits of hf-tiny's reference.json (within 1e-5: the
fused experts may sum in another order).

Needs torch and transformers>=5 (pip install torch "transformers>=5").
"""
import json
import pathlib
import shutil

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "Fixtures"
CASES = ["mixtral", "qwen2_moe", "qwen3_moe"]

for case in CASES:
    source, target = ROOT / "hf-tiny" / case, ROOT / "hf-tiny-fused" / case
    shutil.rmtree(target, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    model.save_pretrained(target, save_original_format=False)
    (target / "generation_config.json").unlink(missing_ok=True)
    with safe_open(target / "model.safetensors", "pt") as f:
        fused = sorted(k for k in f.keys() if k.endswith("experts.gate_up_proj"))
        assert fused, f"{case}: transformers wrote no fused experts"
    reference = json.loads((source / "reference.json").read_text())
    reloaded = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        logits = reloaded(torch.tensor([reference["input_ids"]])).logits[0]
    expected = torch.tensor(reference["logits"], dtype=torch.float32)
    difference = (logits - expected).abs().max().item()
    assert difference <= 1e-5, f"{case}: reloaded logits differ by {difference}"
    print(f"{case}: {len(fused)} fused layers, logits within {difference:.2g} of hf-tiny/{case}/reference.json")
