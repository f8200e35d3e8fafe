"""Writes the safetensors test fixtures in tests/data/safetensors/ with the reference implementation.

The C++ tests (tests/io/test_safetensors.cpp) load these files and compare them bit for bit with the expectations
recorded here, so they need no Python at test time. Rerun only to change the fixtures; the output is deterministic.

    ~/.cache/aha/venv/bin/pip install safetensors numpy
    ~/.cache/aha/venv/bin/python scripts/make_safetensors_fixtures.py

Writes:
  all_dtypes.safetensors         one tensor per safetensors dtype (a scalar, a zero-size and a 3-D one among them),
                                 __metadata__ {"format": "pt", "source": "aha-fixture"}
  all_dtypes.expected.json       per tensor: dtype, shape, nbytes, SHA-256 of the raw little-endian bytes, a few
                                 elements as [flat index, value as float]; plus the metadata
  sharded/                       an HF-style checkpoint: model-0000{1,2}-of-00002.safetensors and
                                 model.safetensors.index.json ({"metadata": {"total_size": N}, "weight_map": {...}})
  sharded.expected.json          the same per-tensor record for the sharded checkpoint, plus each tensor's shard
"""

import hashlib
import json
import os
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "safetensors")

DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def raw_bytes(t: torch.Tensor) -> bytes:
    """The tensor's bytes as safetensors stores them (little-endian, row-major)."""
    assert sys.byteorder == "little"
    flat = t.contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    return flat.view(torch.uint8).numpy().tobytes()


def record(t: torch.Tensor) -> dict:
    flat = t.contiguous().reshape(-1)
    n = flat.numel()
    picks = sorted({i for i in (0, 1, n // 2, n - 1) if 0 <= i < n})
    data = raw_bytes(t)
    return {
        "dtype": DTYPE_NAMES[t.dtype],
        "shape": list(t.shape),
        "nbytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "values": [[i, float(flat[i].item())] for i in picks],
    }


def all_dtypes() -> dict:
    g = torch.Generator().manual_seed(1234)
    f = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    return {
        # 3-D, with a negative zero among random values
        "f32_3d": torch.cat([torch.tensor([-0.0], dtype=torch.float64), f.reshape(-1)[1:]]).reshape(2, 3, 4).float(),
        "f64": torch.tensor([1.0, -2.5, 3.141592653589793, 1e-300, -1e300, 2.0**-1074], dtype=torch.float64),
        # 65504 is F16's largest finite value, 6e-8 its smallest subnormal
        "f16": torch.tensor([[0.5, -1.0, 65504.0], [6e-8, 1000.0, -0.0999]], dtype=torch.float16),
        "bf16": torch.tensor([1.0, -3.0e38, 0.0078125, 7.0, -0.1], dtype=torch.bfloat16),
        "f8_e4m3": torch.tensor([0.0, 1.0, -1.5, 448.0, -448.0, 0.015625, 3.25], dtype=torch.float8_e4m3fn),
        "f8_e5m2": torch.tensor([0.0, 1.0, -1.5, 57344.0, -0.25, 1.5258789e-05], dtype=torch.float8_e5m2),
        "i64_scalar": torch.tensor(-1234567890123, dtype=torch.int64),  # shape []
        "i32": torch.tensor([[2147483647, -2147483648], [0, -7], [123456, 42]], dtype=torch.int32),
        "i16_empty": torch.zeros(0, 4, dtype=torch.int16),  # zero elements
        "i8": torch.tensor([-128, -1, 0, 1, 127], dtype=torch.int8),
        "u8": torch.arange(0, 255, 37, dtype=torch.uint8),  # 7 elements: odd byte count
        "bool": torch.tensor([True, False, False, True, True], dtype=torch.bool),
    }


def sharded() -> list:
    """(shard index, name, tensor) in checkpoint order; values are simple formulas."""

    def ramp(n, scale, offset, dtype):
        return (torch.arange(n, dtype=torch.float32) * scale + offset).to(dtype)

    return [
        (0, "model.embed_tokens.weight", ramp(32, 0.5, -4.0, torch.float32).reshape(8, 4)),
        (0, "model.layers.0.mlp.down_proj.weight", ramp(16, 0.25, 1.0, torch.bfloat16).reshape(4, 4)),
        (0, "model.layers.0.input_layernorm.weight", torch.ones(4, dtype=torch.float32)),
        (1, "model.layers.1.mlp.down_proj.weight", ramp(16, -0.25, 2.0, torch.bfloat16).reshape(4, 4)),
        (1, "model.norm.weight", ramp(4, 0.125, 1.0, torch.float32)),
        (1, "lm_head.weight", ramp(32, -0.5, 3.0, torch.float32).reshape(8, 4)),
        (1, "model.rotary.step", torch.tensor(7, dtype=torch.int64)),
    ]


def save_deterministic(tensors: dict, path: str, metadata: dict) -> None:
    """save_file, repeated until __metadata__'s keys come out sorted: the library writes them in hash-map order,
    which changes from run to run, and the fixtures should not change when the script is rerun."""
    for _ in range(1000):
        save_file(tensors, path, metadata=metadata)
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n), object_pairs_hook=list)
        keys = [k for k, _ in dict(header)["__metadata__"]]
        if keys == sorted(keys):
            return
    raise RuntimeError(f"{path}: could not get a deterministic header")


def write_expected(path: str, expected: dict) -> None:
    """Pretty JSON with one line per tensor."""
    tensors = expected.pop("tensors")
    lines = [f"  {json.dumps(name)}: {json.dumps(rec, sort_keys=True)}" for name, rec in sorted(tensors.items())]
    head = json.dumps(expected, sort_keys=True)[1:-1]
    with open(path, "w") as f:
        f.write("{" + head + ',\n "tensors": {\n' + ",\n".join(lines) + "\n }\n}\n")
    json.load(open(path))  # still valid JSON


def main() -> None:
    os.makedirs(os.path.join(OUT, "sharded"), exist_ok=True)

    tensors = all_dtypes()
    metadata = {"format": "pt", "source": "aha-fixture"}
    save_deterministic(tensors, os.path.join(OUT, "all_dtypes.safetensors"), metadata)
    expected = {"metadata": metadata, "tensors": {name: record(t) for name, t in tensors.items()}}
    write_expected(os.path.join(OUT, "all_dtypes.expected.json"), expected)

    entries = sharded()
    n = 1 + max(i for i, _, _ in entries)
    files = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    weight_map, total = {}, 0
    expected = {"metadata": {"format": "pt"}, "tensors": {}}
    for i in range(n):
        shard = {name: t for j, name, t in entries if j == i}
        save_deterministic(shard, os.path.join(OUT, "sharded", files[i]), {"format": "pt"})
        for name, t in shard.items():
            weight_map[name] = files[i]
            total += t.numel() * t.element_size()
            expected["tensors"][name] = dict(record(t), shard=files[i])
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(OUT, "sharded", "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    expected["total_size"] = total
    write_expected(os.path.join(OUT, "sharded.expected.json"), expected)

    for dirpath, _, names in os.walk(OUT):
        for name in sorted(names):
            p = os.path.join(dirpath, name)
            print(f"{os.path.getsize(p):6d}  {os.path.relpath(p, ROOT)}")


if __name__ == "__main__":
    main()
