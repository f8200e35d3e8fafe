#!/usr/bin/env python3
"""An external-process reward for aha: a persistent worker speaking JSON lines (aha/reward/process.h).

aha starts it once, with an argv list and no shell:
    {"name": "process", "params": {"argv": ["python3", "examples/reward_process/reward.py"], "timeout_s": 5}}
then writes one line per batch to stdin,
    {"protocol": 1, "samples": [{"id", "prompt", "completion", "completion_tokens", "truncated", "fields"}, ...]}
and reads one line per batch from stdout,
    {"scores": [score, ...]}
where a score is a number, null (skip the sample), or {"score": number or null, "extras": {name: number}}.

This one scores 1 when the last <answer>...</answer> holds the number in the prompt field "answer" (commas
and a trailing period ignored), 0 when it holds another one, and skips prompts without a numeric answer.
Anything it prints to stderr shows up in aha's log; it exits when aha closes its stdin.
"""
import json
import re
import sys

ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def number(text):
    try:
        return float(str(text).strip().replace(",", "").rstrip("."))
    except ValueError:
        return None


def score(sample):
    truth = number(sample["fields"].get("answer", ""))
    if truth is None:
        return None  # nothing to compare with: skip
    answers = ANSWER.findall(sample["completion"])
    got = number(answers[-1]) if answers else None
    return {"score": 1.0 if got == truth else 0.0, "extras": {"answers": len(answers)}}


def main():
    for line in sys.stdin:
        request = json.loads(line)
        scores = [score(s) for s in request["samples"]]
        sys.stdout.write(json.dumps({"scores": scores}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
