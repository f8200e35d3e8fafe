"""transformers' side of the sampler benchmark (tests/bench/bench_sampler.cpp): decode tokens/s of
DeepseekV3ForCausalLM.generate on CPU, fp32, on the same checkpoint, batch sizes and lengths.

    ~/.cache/aha/venv/bin/pip install transformers==5.24.0 safetensors
    ~/.cache/aha/venv/bin/python scripts/bench_sampler_peer.py --model DIR [--batches 1,16,64] [--json OUT]

Sampling at temperature 1 with top_k 0 (no filtering), min_new_tokens = max_new_tokens so no row stops early, and
the cache on (transformers' default). A logits processor stamps the time at every generated token: decode time is
from the first stamp (right after the prefill's forward) to the last, i.e. new_tokens - 1 decode steps; prefill
time is from the call to the first stamp; cpu_seconds is the process CPU time of the whole call. Each figure is
the best of --repeats runs after one warm-up.
"""
import argparse
import json
import time

import torch


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformers
    from transformers import DeepseekV3ForCausalLM, LogitsProcessor, LogitsProcessorList

    transformers.logging.set_verbosity_error()
    model = DeepseekV3ForCausalLM.from_pretrained(args.model, attn_implementation="eager", dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    results = []
    print("batch  prefill tok/s  decode tok/s  total s  cpu s")
    for b in [int(x) for x in args.batches.split(",")]:
        g = torch.Generator().manual_seed(1234)
        ids = torch.randint(2, vocab, (b, args.prompt_len), generator=g)
        mask = torch.ones_like(ids)

        def run(new):
            stamps = []

            class Stamp(LogitsProcessor):
                def __call__(self, input_ids, scores):
                    stamps.append(time.perf_counter())
                    return scores

            c0 = time.process_time()
            t0 = time.perf_counter()
            with torch.inference_mode():
                model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0,
                               top_p=1.0, max_new_tokens=new, min_new_tokens=new, pad_token_id=0,
                               logits_processor=LogitsProcessorList([Stamp()]))
            total = time.perf_counter() - t0
            return stamps[0] - t0, stamps[-1] - stamps[0], total, time.process_time() - c0

        run(4)
        runs = [run(args.new_tokens) for _ in range(args.repeats)]
        first = min(r[0] for r in runs)
        decode = min(r[1] for r in runs)
        total = min(r[2] for r in runs)
        cpu = min(r[3] for r in runs)
        decode_tps = b * (args.new_tokens - 1) / decode
        prefill_tps = b * args.prompt_len / first
        print(f"{b:5d}  {prefill_tps:13.1f}  {decode_tps:12.1f}  {total:.3f}  {cpu:.3f}")
        results.append({"batch": b, "prefill_tokens_per_second": prefill_tps, "decode_tokens_per_second": decode_tps,
                        "total_seconds": total, "cpu_seconds": cpu})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"impl": "transformers", "version": transformers.__version__, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
