#!/usr/bin/env python3
"""The peer of tests/bench/bench_grpo_step: TRL's GRPOTrainer on the same checkpoint, prompts and shape, on CPU.

One optimizer step = `--prompts` prompts x `--group` completions of up to `--tokens` new tokens, trained in
micro-batches of `--micro-batch` completions (gradient accumulation over the rest), one policy update per batch
(num_iterations 1), no reference model (beta 0), one rule reward (a digit in the completion: the same rule as
aha's side). Prints and writes (--json) the median seconds per optimizer step over the steps after the first.

    AHA_PYTHON scripts/bench_grpo_step_peer.py --model DIR --prompts-file P.jsonl --json out.json [--steps 6]
Needs trl 1.16.0 (scripts/bench_grpo_step.sh installs it into the venv).
"""
import argparse
import json
import re
import statistics
import tempfile
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts-file", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--micro-batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tok = PreTrainedTokenizerFast(tokenizer_file=f"{args.model}/tokenizer.json", bos_token="<|begin_of_sentence|>",
                                  eos_token="<|end_of_sentence|>", pad_token="<|end_of_sentence|>")
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    prompts = [json.loads(l)["question"] for l in open(args.prompts_file)]
    data = Dataset.from_dict({"prompt": prompts})

    def digit(completions, **_):
        return [1.0 if re.search(r"[0-9]", c) else 0.0 for c in completions]

    completions = args.prompts * args.group
    assert completions % args.micro_batch == 0, "prompts x group must be a multiple of the micro-batch"
    cfg = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl_bench_"),
        per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=completions // args.micro_batch,
        num_generations=args.group,
        max_completion_length=args.tokens,
        num_iterations=1,
        beta=0.0,
        learning_rate=1e-5,
        max_steps=args.steps,
        temperature=1.0,
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        shuffle_dataset=False,
        seed=0,
        dataloader_num_workers=0,
    )
    ends = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_a, **_k):
            ends.append(time.perf_counter())

    start = time.perf_counter()
    trainer = GRPOTrainer(model=model, reward_funcs=digit, args=cfg, train_dataset=data, processing_class=tok,
                          callbacks=[Clock()])
    trainer.train()
    steps = [b - a for a, b in zip([start] + ends[:-1], ends)]
    median = statistics.median(steps[1:]) if len(steps) > 1 else steps[0]
    result = {"peer": "trl", "trl_version": __import__("trl").__version__, "step_s": steps, "median_step_s": median,
              "threads": args.threads}
    json.dump(result, open(args.json, "w"), indent=1)
    print(f"trl {result['trl_version']}: median {median:.3f} s/step over steps 2..{len(steps)} "
          f"({', '.join(f'{s:.2f}' for s in steps)})")


if __name__ == "__main__":
    main()
