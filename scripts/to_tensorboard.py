#!/usr/bin/env python3
"""Turns a run's metrics.jsonl into TensorBoard event files: one scalar series per numeric metric, at its step.

    scripts/to_tensorboard.py RUN_DIR [--logdir DIR] [--follow [--interval 2]]
    tensorboard --logdir RUN_DIR/tensorboard

--logdir defaults to RUN_DIR/tensorboard. With --follow it keeps reading the lines the trainer appends (a live
run) until interrupted; a run resumed from a checkpoint rewrites metrics.jsonl from that step on, and the
events it adds then carry the same steps again (TensorBoard shows the latest). Runs in aha's venv
(scripts/setup.sh) and installs the `tensorboard` package there when it is missing; nothing of it runs inside
aha itself.
"""
import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time


def ensure_tensorboard():
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        print("installing tensorboard into", sys.prefix, file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "tensorboard"])


def scalars(record):
    """The record's numeric metrics (not its step), as (name, value)."""
    for key, value in record.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        yield key, float(value)


def convert_lines(lines, writer):
    """Writes every complete line; returns how many records were written."""
    n = 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written, or cut short by a crash
        step = record.get("step")
        if not isinstance(step, int):
            continue
        for key, value in scalars(record):
            writer.add_scalar(key, value, step)
        n += 1
    writer.flush()
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--logdir", help="where the event files go (default: RUN_DIR/tensorboard)")
    ap.add_argument("--follow", action="store_true", help="keep converting lines as the run appends them")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between reads with --follow")
    args = ap.parse_args()
    path = os.path.join(args.run_dir, "metrics.jsonl")
    if not os.path.exists(path) and not args.follow:
        sys.exit(f"{path}: no such file (is {args.run_dir} a run directory?)")
    ensure_tensorboard()
    from torch.utils.tensorboard import SummaryWriter

    # Ctrl-C or SIGTERM end a --follow cleanly (the last events flushed).
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    logdir = args.logdir or os.path.join(args.run_dir, "tensorboard")
    writer = SummaryWriter(log_dir=logdir)
    total, offset, pending = 0, 0, ""
    try:
        while True:
            if os.path.exists(path):
                with open(path, "r", encoding="utf-8") as f:
                    if os.path.getsize(path) < offset:  # rewritten (a resumed run): start over
                        offset, pending = 0, ""
                    f.seek(offset)
                    chunk = f.read()
                    offset = f.tell()
                text = pending + chunk
                lines = text.split("\n")
                pending = lines.pop()  # an unfinished last line waits for the rest
                total += convert_lines(lines, writer)
            if not args.follow:
                total += convert_lines([pending], writer)
                break
            time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    writer.close()
    print(f"{total} records -> {logdir}")


if __name__ == "__main__":
    main()
