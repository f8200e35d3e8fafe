#!/usr/bin/env python3
"""The transformers side of the CPU model benchmark (tests/bench/bench_model is aha's side).

Builds transformers' DeepseekV3ForCausalLM from the same HF config.json (default
configs/model/bench_20m.json), fp32 on CPU, eager attention, freshly initialised (seed 0), and
times, on a batch of random token ids drawn exactly as bench_model draws them (torch.manual_seed(seed);
randint(vocab, (batch, seq))):

  forward           model(input_ids) under torch.inference_mode() (eval mode), logits included;
  forward_backward  model(input_ids), then logits.logsumexp(-1).mean().backward() (grads reset each step).

tokens/s = batch * seq / (median seconds per iteration); the mean- and best-iteration-based figures
and every iteration's time are in the JSON too.
The experts run with transformers' default experts implementation unless --experts-implementation
says otherwise ("eager" is the per-expert Python loop); the one used is printed and recorded.

Install and run
---------------
    ~/.cache/aha/venv/bin/pip install torch==2.11.0 transformers==5.24.0
    ~/.cache/aha/venv/bin/python scripts/bench_model_peer.py --threads 2 --json out.json

scripts/bench_model.sh runs this after aha's bench with the same flags and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, DeepseekV3Config

REPO = Path(__file__).resolve().parent.parent


def time_it(warmup: int, iters: int, step) -> list[float]:
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - t0)
    return seconds


def figures(seconds: list[float], tokens: int) -> dict:
    median, mean = statistics.median(seconds), statistics.fmean(seconds)
    return {
        "tokens_per_s": tokens / median,
        "tokens_per_s_mean": tokens / mean,
        "tokens_per_s_best": tokens / min(seconds),
        "median_s": median,
        "mean_s": mean,
        "iter_s": seconds,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "model" / "bench_20m.json"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234, help="seed of the token ids")
    ap.add_argument("--experts-implementation", default=None,
                    help="transformers' experts implementation (default: its own default)")
    ap.add_argument("--json", default=None, help="write the figures here")
    a = ap.parse_args()
    if min(a.batch, a.seq, a.iters, a.threads) < 1 or a.warmup < 0:
        ap.error("batch, seq, iters and threads must be >= 1, warmup >= 0")

    torch.set_num_threads(a.threads)
    with open(a.config) as f:
        cfg = DeepseekV3Config.from_dict(json.load(f))
    if a.seq > cfg.max_position_embeddings:
        ap.error(f"--seq exceeds max_position_embeddings ({cfg.max_position_embeddings})")

    torch.manual_seed(0)
    kwargs = {"attn_implementation": "eager", "dtype": torch.float32}
    if a.experts_implementation is not None:
        kwargs["experts_implementation"] = a.experts_implementation
    model = AutoModelForCausalLM.from_config(cfg, **kwargs)
    attn_impl = model.config._attn_implementation
    experts_impl = model.config._experts_implementation

    total = sum(p.numel() for p in model.parameters())
    experts = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    embedding = model.get_input_embeddings().weight.numel()
    active = total - experts + experts * cfg.num_experts_per_tok // cfg.n_routed_experts

    torch.manual_seed(a.seed)
    input_ids = torch.randint(cfg.vocab_size, (a.batch, a.seq), dtype=torch.long)
    tokens = a.batch * a.seq

    print(f"transformers bench_model_peer: {a.config}")
    print(f"  torch {torch.__version__}, transformers {transformers.__version__}, threads "
          f"{torch.get_num_threads()}, fp32 CPU, attn {attn_impl}, experts {experts_impl}, batch "
          f"{a.batch} x seq {a.seq}, warmup {a.warmup}, iters {a.iters}")
    print(f"  parameters: total {total} ({total / 1e6:.2f}M), active per token {active} "
          f"({active / 1e6:.2f}M), embedding {embedding}")

    model.eval()

    def forward():
        with torch.inference_mode():
            model(input_ids=input_ids, use_cache=False).logits

    fwd = time_it(a.warmup, a.iters, forward)
    print(f"  forward:          {tokens / statistics.median(fwd):10.1f} tok/s  "
          f"(median {statistics.median(fwd):.3f} s/iter)")

    model.train()
    last_loss = [0.0]

    def forward_backward():
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=input_ids, use_cache=False).logits
        loss = logits.logsumexp(-1).mean()
        loss.backward()
        last_loss[0] = loss.item()

    fb = time_it(a.warmup, a.iters, forward_backward)
    print(f"  forward_backward: {tokens / statistics.median(fb):10.1f} tok/s  "
          f"(median {statistics.median(fb):.3f} s/iter, loss {last_loss[0]:.4f})")

    if a.json:
        out = {
            "impl": "transformers",
            "config": a.config,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "attn_implementation": attn_impl,
            "experts_implementation": experts_impl,
            "threads": torch.get_num_threads(),
            "batch": a.batch,
            "seq": a.seq,
            "warmup": a.warmup,
            "iters": a.iters,
            "params_total": total,
            "params_active": active,
            "params_embedding": embedding,
            "loss": last_loss[0],
            "forward": figures(fwd, tokens),
            "forward_backward": figures(fb, tokens),
        }
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
