#!/usr/bin/env python3
# A process-reward worker for tests/reward/test_process.cpp that misbehaves on request: a completion holding
# CRASH makes it exit with status 3, SEGV kill itself with SIGSEGV, HANG sleep, GARBAGE answer a line that is
# not JSON, COUNT answer too few scores, TWICE answer two lines, WRONGTYPE answer a string score, LATE answer
# correctly and then print a stray line, NOREAD exit without reading anything. Otherwise every sample scores
# the length of its completion, with extras: the worker's pid, the batch size and argc; a sample whose
# fields hold "skip" is skipped.
import json
import os
import sys
import time

if "--noread" in sys.argv:
    sys.exit(5)

for line in sys.stdin:
    samples = json.loads(line)["samples"]
    text = " ".join(s["completion"] for s in samples)
    if "CRASH" in text:
        os._exit(3)
    if "SEGV" in text:
        os.kill(os.getpid(), 11)
    if "HANG" in text:
        time.sleep(3600)
    if "GARBAGE" in text:
        print("Traceback (most recent call last): this is not JSON", flush=True)
        continue
    if "COUNT" in text:
        print(json.dumps({"scores": []}), flush=True)
        continue
    if "WRONGTYPE" in text:
        print(json.dumps({"scores": ["high"] * len(samples)}), flush=True)
        continue
    extras = {"pid": os.getpid(), "batch": len(samples), "argc": len(sys.argv)}
    scores = [None if "skip" in s["fields"] else {"score": float(len(s["completion"])), "extras": extras}
              for s in samples]
    answer = json.dumps({"scores": scores})
    if "TWICE" in text:
        answer += "\n" + answer
    print(answer, flush=True)
    if "LATE" in text:
        time.sleep(0.01)
        print("a stray line", flush=True)
