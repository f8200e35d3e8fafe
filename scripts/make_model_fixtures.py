#!/usr/bin/env python3
"""Generate the DeepSeek-V3 model parity fixtures under tests/data/model/.

Purpose
-------
aha's C++ DeepSeek-V3 model must reproduce HuggingFace transformers' DeepseekV3ForCausalLM
exactly.  This script builds tiny DeepSeek-V3 models from configs only (no hub access),
re-initialises every weight with O(1)-scale random values (HF's default std=0.02 init makes
logits tiny and parity trivially easy), runs the HF fp32 eager forward on a left-padded batch and
writes, per fixture, a directory tests/data/model/<name>/ with:

  config.json                 HF's own config (save_pretrained)
  model*.safetensors (+index) the weights (layout differs per fixture, see FIXTURES below)
  inputs.json                 input_ids / attention_mask / position_ids, B=3, T=11, left padded
  expected.safetensors        "logits" [B,T,V] f32 and "logits_unpadded_row1" [1,T-3,V]
                              (fp8_blocks also holds "dequant.<weight name>" tensors)
  meta.json                   versions, seed, expert key layout, logit statistics, HF facts

Fixtures: yarn_qlora_groups (the spec's tiny config, saved exactly as save_pretrained writes it),
plain_no_qlora (no q-LoRA / no YaRN / biases / tied / rope_interleave false, fused expert keys),
yarn_mtp_sharded (YaRN with attention_factor != 1, MTP layer weights, two shards + index),
fp8_blocks (128x128 block FP8 E4M3 weights with partial edge blocks).

How to run
----------
    ~/.cache/aha/venv/bin/pip install transformers==5.24.0 safetensors numpy && \
        ~/.cache/aha/venv/bin/python scripts/make_model_fixtures.py

Output is deterministic by construction: fixed seeds and a private torch.Generator per fixture,
single-threaded CPU torch, safetensors files written by this script's own writer (sorted tensor
names, fixed metadata, no timestamps) and JSON written with sorted keys.  Running it twice gives
byte-identical files.

Check mode (for checkpoints aha writes later)
---------------------------------------------
    ~/.cache/aha/venv/bin/python scripts/make_model_fixtures.py --check-aha DIR \
        --inputs tests/data/model/<name>/inputs.json --expected FILE [--tol 1e-4]

loads the HF-format checkpoint directory DIR with DeepseekV3ForCausalLM.from_pretrained (local
directory only, eager attention, float32), runs the inputs and compares against "logits" in FILE on
the non-padded positions.  Prints the max abs diff; exits 1 if it exceeds the tolerance.  A
directory whose config.json has an fp8 quantization_config is dequantised with exact 128x128 block
semantics by this script instead (transformers 5.24's own CPU dequantisation mis-handles partial
edge blocks, see meta.json of fp8_blocks).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
OUT_ROOT = REPO / "tests" / "data" / "model"

BASE_SEED = 20250101
B, T = 3, 11
PADS = [0, 3, 6]  # left pads per row
PAD_ID = 0

# ----------------------------------------------------------------------------------------------
# Deterministic safetensors I/O
# ----------------------------------------------------------------------------------------------

_ST_DTYPE = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Write a safetensors file byte-deterministically: names sorted, data in that order."""
    if metadata is None:
        metadata = {"format": "pt"}
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _ST_DTYPE:
            raise ValueError(f"unsupported dtype {t.dtype} for {name}")
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _ST_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return dict(load_file(str(path)))


def write_json(path: Path, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------

SPEC_TINY_CONFIG = json.loads(
    """{"model_type":"deepseek_v3","vocab_size":512,"hidden_size":64,"intermediate_size":128,"moe_intermediate_size":32,
"num_hidden_layers":3,"first_k_dense_replace":1,"num_attention_heads":4,"num_key_value_heads":4,"q_lora_rank":48,
"kv_lora_rank":32,"qk_nope_head_dim":32,"qk_rope_head_dim":16,"v_head_dim":32,"n_routed_experts":16,"n_group":4,
"topk_group":2,"num_experts_per_tok":4,"n_shared_experts":1,"routed_scaling_factor":2.5,"norm_topk_prob":true,
"rope_theta":10000.0,"max_position_embeddings":163840,"rope_scaling":{"type":"yarn","factor":40,
"original_max_position_embeddings":4096,"beta_fast":32,"beta_slow":1,"mscale":1.0,"mscale_all_dim":1.0},
"tie_word_embeddings":false,"torch_dtype":"float32"}"""
)

COMMON = dict(
    vocab_size=512, hidden_size=64, num_attention_heads=4, num_key_value_heads=4,
    qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32, kv_lora_rank=32,
    moe_intermediate_size=32, intermediate_size=128, n_routed_experts=16, num_experts_per_tok=4,
    max_position_embeddings=163840, rope_theta=10000.0, torch_dtype="float32",
)


def fixture_configs() -> dict[str, dict]:
    f1 = {k: v for k, v in SPEC_TINY_CONFIG.items() if k != "model_type"}
    f2 = dict(COMMON, q_lora_rank=None, rope_scaling=None, n_group=1, topk_group=1, first_k_dense_replace=0,
              norm_topk_prob=False, routed_scaling_factor=1.0, n_shared_experts=2, attention_bias=True,
              tie_word_embeddings=True, rope_interleave=False, num_hidden_layers=2, num_nextn_predict_layers=0)
    f3 = dict(COMMON, q_lora_rank=48,
              rope_scaling={"type": "yarn", "factor": 4, "original_max_position_embeddings": 4096,
                            "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 1.0},
              n_group=2, topk_group=1, first_k_dense_replace=2, num_hidden_layers=3, num_nextn_predict_layers=1,
              n_shared_experts=1, norm_topk_prob=True, routed_scaling_factor=2.5, tie_word_embeddings=False)
    f4 = dict(COMMON, hidden_size=160, intermediate_size=288, moe_intermediate_size=144, kv_lora_rank=96,
              q_lora_rank=200, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32, num_attention_heads=4,
              num_key_value_heads=4, num_hidden_layers=2, first_k_dense_replace=1, n_routed_experts=8,
              n_group=1, topk_group=1, num_experts_per_tok=2, rope_scaling=None, n_shared_experts=1,
              norm_topk_prob=True, routed_scaling_factor=2.5, tie_word_embeddings=False,
              num_nextn_predict_layers=0)
    return {"yarn_qlora_groups": f1, "plain_no_qlora": f2, "yarn_mtp_sharded": f3, "fp8_blocks": f4}


FP8_QCONFIG = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}

# ----------------------------------------------------------------------------------------------
# Weight init
# ----------------------------------------------------------------------------------------------

_NORM_RE = re.compile(r"(norm|layernorm)\.weight$")


def init_value(name: str, shape: tuple[int, ...], hidden: int, g: torch.Generator, tied: bool) -> torch.Tensor:
    """Deterministic O(1) init for one tensor, chosen from its HF name and shape."""
    n = torch.randn(shape, generator=g, dtype=torch.float32)
    if _NORM_RE.search(name):                      # RMSNorm weights (incl. enorm/hnorm/shared_head.norm)
        return 1.0 + 0.1 * n
    if name.endswith(".bias") or name.endswith("e_score_correction_bias"):
        return 0.1 * n
    if name.endswith("mlp.gate.weight"):           # router: N(0,1)/sqrt(D)
        return n / math.sqrt(hidden)
    if name.endswith("embed_tokens.weight"):
        # Untied: N(0,1) rows (the first RMSNorm rescales them anyway).  Tied: the same matrix is the
        # output head, so use 1/sqrt(D) scale to keep the logits O(1).
        return n * (1.0 / math.sqrt(hidden) if tied else 1.0)
    # every other weight is a linear [.., out, in]: N(0, 1/sqrt(fan_in))
    return n / math.sqrt(shape[-1])


def reinit_model(model, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    tied = bool(cfg.tie_word_embeddings)
    with torch.no_grad():
        params = dict(model.named_parameters())
        bufs = {n: b for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")}
        for name in sorted(set(params) | set(bufs)):
            t = params.get(name, bufs.get(name))
            t.copy_(init_value(name, tuple(t.shape), cfg.hidden_size, g, tied))
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


# ----------------------------------------------------------------------------------------------
# Expert layout conversion
# ----------------------------------------------------------------------------------------------

_PER_EXPERT_RE = re.compile(r"^(.*\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")
_FUSED_RE = re.compile(r"^(.*\.mlp\.experts)\.(gate_up_proj|down_proj)$")


def detect_layout(keys) -> str:
    per = any(_PER_EXPERT_RE.match(k) for k in keys)
    fused = any(_FUSED_RE.match(k) for k in keys)
    if per and fused:
        return "mixed"
    return "per_expert" if per else ("fused" if fused else "none")


def per_expert_to_fused(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, groups = {}, {}
    for k, v in sd.items():
        m = _PER_EXPERT_RE.match(k)
        if m:
            groups.setdefault(m.group(1), {})[(int(m.group(2)), m.group(3))] = v
        else:
            out[k] = v
    for prefix, d in groups.items():
        n_e = 1 + max(e for e, _ in d)
        out[prefix + ".gate_up_proj"] = torch.stack(
            [torch.cat([d[(e, "gate_proj")], d[(e, "up_proj")]], dim=0) for e in range(n_e)])  # gate rows first
        out[prefix + ".down_proj"] = torch.stack([d[(e, "down_proj")] for e in range(n_e)])
    return out


def fused_to_per_expert(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        m = _FUSED_RE.match(k)
        if not m:
            out[k] = v
            continue
        prefix, kind = m.groups()
        for e in range(v.shape[0]):
            if kind == "gate_up_proj":
                gate, up = v[e].chunk(2, dim=0)
                out[f"{prefix}.{e}.gate_proj.weight"] = gate.clone()
                out[f"{prefix}.{e}.up_proj.weight"] = up.clone()
            else:
                out[f"{prefix}.{e}.down_proj.weight"] = v[e].clone()
    return out


# ----------------------------------------------------------------------------------------------
# FP8 block quantisation (DeepSeek-V3 format)
# ----------------------------------------------------------------------------------------------

BLOCK = 128


def fp8_quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out_f, in_f = w.shape
    nb_r, nb_c = -(-out_f // BLOCK), -(-in_f // BLOCK)
    scale = torch.empty(nb_r, nb_c, dtype=torch.float32)
    q = torch.empty(out_f, in_f, dtype=torch.float8_e4m3fn)
    for i in range(nb_r):
        for j in range(nb_c):
            blk = w[i * BLOCK:(i + 1) * BLOCK, j * BLOCK:(j + 1) * BLOCK].float()
            amax = blk.abs().max()
            s = (amax / 448.0) if amax > 0 else torch.tensor(1.0)
            scale[i, j] = s
            q[i * BLOCK:(i + 1) * BLOCK, j * BLOCK:(j + 1) * BLOCK] = (blk / scale[i, j]).to(torch.float8_e4m3fn)
    return q, scale


def fp8_dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    out_f, in_f = q.shape
    s = scale.repeat_interleave(BLOCK, dim=0).repeat_interleave(BLOCK, dim=1)[:out_f, :in_f]
    return q.float() * s


def is_fp8_target(name: str) -> bool:
    if not name.endswith(".weight") or _NORM_RE.search(name):
        return False
    if name.endswith("embed_tokens.weight") or name == "lm_head.weight" or name.endswith("mlp.gate.weight"):
        return False
    return True


# ----------------------------------------------------------------------------------------------
# Inputs / forward
# ----------------------------------------------------------------------------------------------


def make_inputs(vocab: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    for r, p in enumerate(PADS):
        ids[r, :p] = PAD_ID
        mask[r, :p] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos}


def load_inputs(path) -> dict[str, torch.Tensor]:
    with open(path) as f:
        d = json.load(f)
    return {k: torch.tensor(d[k], dtype=torch.long) for k in ("input_ids", "attention_mask", "position_ids")}


@torch.no_grad()
def hf_logits(model, inp: dict[str, torch.Tensor]) -> torch.Tensor:
    out = model(input_ids=inp["input_ids"], attention_mask=inp["attention_mask"],
                position_ids=inp["position_ids"], use_cache=False)
    return out.logits.float()


@torch.no_grad()
def forward_with_routing(model, inp):
    """Forward pass that also records, per MoE layer, routing of every token (for sanity checks)."""
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3TopkRouter

    records, hooks = {}, []
    for name, mod in model.named_modules():
        if isinstance(mod, DeepseekV3TopkRouter):
            def hook(m, args, out, name=name):
                x = args[0].reshape(-1, m.hidden_dim).float()
                records[name] = (x, out[2].clone())
            hooks.append(mod.register_forward_hook(hook))
    logits = hf_logits(model, inp)
    for h in hooks:
        h.remove()
    return logits, records


def routing_report(model, records, mask: torch.Tensor) -> dict:
    """Distinct experts used on real tokens; whether group limit / bias change any selection."""
    real = mask.reshape(-1).bool()
    report = {}
    for name, (x, idx) in sorted(records.items()):
        gate = model.get_submodule(name)
        idx = idx[real]
        k = idx.shape[-1]
        distinct = sorted(set(idx.flatten().tolist()))
        sets = {tuple(sorted(r)) for r in idx.tolist()}
        s = torch.sigmoid(x[real] @ gate.weight.float().t())
        plain = s.topk(k, dim=-1).indices                                   # no bias, no group limit
        biased = (s + gate.e_score_correction_bias).topk(k, dim=-1).indices  # bias, no group limit
        chosen = [set(r) for r in idx.tolist()]
        n_diff_plain = sum(set(p) != c for p, c in zip(plain.tolist(), chosen))
        n_diff_biased = sum(set(p) != c for p, c in zip(biased.tolist(), chosen))
        report[name] = {"distinct_experts": len(distinct), "distinct_expert_sets": len(sets),
                        "tokens_changed_vs_plain_topk": n_diff_plain,
                        "tokens_changed_vs_biased_topk_without_groups": n_diff_biased}
        need = min(gate.num_experts, k + 2)
        if len(distinct) < need or len(sets) < 3:
            raise SystemExit(f"routing too uniform in {name}: {report[name]}")
    return report


# ----------------------------------------------------------------------------------------------
# Fixture building
# ----------------------------------------------------------------------------------------------


def build_model(cfg_kwargs: dict, seed: int):
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    config = DeepseekV3Config(**cfg_kwargs)
    torch.manual_seed(seed)
    model = DeepseekV3ForCausalLM._from_config(config, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    reinit_model(model, seed)
    return model


def hf_saved_state_dict(model, tmp: Path) -> tuple[dict[str, torch.Tensor], dict, Path]:
    """What model.save_pretrained writes: (tensors of model.safetensors, config.json dict)."""
    d = tmp / "hf_save"
    model.save_pretrained(str(d))
    files = sorted(os.listdir(d))
    assert "model.safetensors" in files, files
    with open(d / "config.json") as f:
        cfg = json.load(f)
    return read_safetensors(d / "model.safetensors"), cfg, d


def mtp_tensors(config, layer: int, seed: int) -> dict[str, torch.Tensor]:
    """Random MTP-module weights as in DeepSeek-V3 checkpoints (layer index = num_hidden_layers)."""
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3DecoderLayer

    c = config
    D, V = c.hidden_size, c.vocab_size
    assert layer >= c.first_k_dense_replace
    dec = DeepseekV3DecoderLayer(c, layer_idx=layer)
    p = f"model.layers.{layer}."
    shapes = {p + "embed_tokens.weight": (V, D), p + "enorm.weight": (D,), p + "hnorm.weight": (D,),
              p + "eh_proj.weight": (D, 2 * D), p + "shared_head.norm.weight": (D,),
              p + "shared_head.head.weight": (V, D)}
    for n, t in list(dec.named_parameters()) + [(n, b) for n, b in dec.named_buffers()]:
        shapes[p + n] = tuple(t.shape)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name.endswith("shared_head.head.weight"):
            out[name] = torch.randn(shape, generator=g) / math.sqrt(D)
        else:
            out[name] = init_value(name, shape, D, g, tied=False)
    return fused_to_per_expert(out)


def shard_two(sd: dict[str, torch.Tensor]) -> tuple[list[dict], dict]:
    names = sorted(sd)
    total = sum(sd[n].numel() * sd[n].element_size() for n in names)
    first, acc = {}, 0
    for n in names:
        if acc >= total / 2:
            break
        first[n] = sd[n]
        acc += sd[n].numel() * sd[n].element_size()
    second = {n: sd[n] for n in names if n not in first}
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    wm = {n: files[0] for n in first}
    wm.update({n: files[1] for n in second})
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))}
    return [first, second], index


def logit_stats(logits: torch.Tensor, mask: torch.Tensor) -> dict:
    real = logits[mask.bool()]
    return {"max_abs_logit": round(float(real.abs().max()), 6), "std_logits": round(float(real.std()), 6)}


def load_hf_dir(d: Path):
    from transformers import DeepseekV3ForCausalLM

    m = DeepseekV3ForCausalLM.from_pretrained(str(d), attn_implementation="eager", dtype=torch.float32,
                                              local_files_only=True)
    return m.eval()


def make_fixture(name: str, cfg_kwargs: dict, index: int, tmp_root: Path) -> dict:
    import transformers

    seed = BASE_SEED + 1000 * index
    out = OUT_ROOT / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tmp = tmp_root / name
    tmp.mkdir()

    model = build_model(cfg_kwargs, seed)
    config = model.config
    meta: dict = {"fixture": name, "transformers_version": transformers.__version__,
                  "torch_version": torch.__version__, "seed": seed, "inputs_seed": seed + 1}
    extra_expected: dict[str, torch.Tensor] = {}

    hf_sd, _, hf_dir = hf_saved_state_dict(model, tmp)
    hf_layout = detect_layout(hf_sd)
    meta["save_pretrained_expert_layout"] = hf_layout
    meta["e_score_correction_bias_is"] = "buffer (persistent, saved in state dict)"

    if name == "fp8_blocks":
        # Quantise per-expert weights, then load the DEQUANTISED values into the fp32 model.
        per = hf_sd if hf_layout == "per_expert" else fused_to_per_expert(hf_sd)
        file_sd, deq_sd = {}, {}
        for k in sorted(per):
            v = per[k]
            if is_fp8_target(k):
                q, s = fp8_quantize(v)
                file_sd[k] = q
                file_sd[k + "_scale_inv"] = s
                deq_sd[k] = fp8_dequantize(q, s)
            else:
                file_sd[k] = v
                deq_sd[k] = v
        missing, unexpected = model.load_state_dict(per_expert_to_fused(deq_sd), strict=False)
        assert not missing and not unexpected, (missing, unexpected)
        for k in ("model.layers.0.self_attn.kv_b_proj.weight", "model.layers.0.self_attn.q_a_proj.weight"):
            extra_expected["dequant." + k] = deq_sd[k]
        n_fp8 = sum(1 for k in file_sd if k.endswith("_scale_inv"))
        meta["fp8_quantised_weights"] = n_fp8
        meta["fp8_rule"] = ("128x128 blocks, partial edge blocks; scale_inv = amax/448 (1 for all-zero block); "
                            "Wq = (W/scale).to(float8_e4m3fn); dequant = Wq.float() * scale per block")
        # Does transformers' own CPU dequant (Fp8Dequantize) reproduce 128-block semantics here?
        try:
            from transformers.integrations.finegrained_fp8 import Fp8Dequantize

            k = "model.layers.0.self_attn.q_a_proj.weight"
            hf_deq = Fp8Dequantize(None)._dequantize_one(file_sd[k], file_sd[k + "_scale_inv"], torch.float32)
            diff = float((hf_deq - deq_sd[k]).abs().max())
            meta["transformers_Fp8Dequantize_vs_128_blocks"] = {
                "weight": k, "shape": list(file_sd[k].shape), "max_abs_diff": diff,
                "note": "transformers 5.24 derives the block size as rows/scale_rows, cols/scale_cols, so partial "
                        "edge blocks are dequantised with the wrong scale (or raise if not divisible)"}
        except Exception as e:  # noqa: BLE001
            meta["transformers_Fp8Dequantize_vs_128_blocks"] = {"error": repr(e)}
        layout = "per_expert"
    elif name == "plain_no_qlora":
        other = "fused" if hf_layout == "per_expert" else "per_expert"
        file_sd = per_expert_to_fused(hf_sd) if other == "fused" else fused_to_per_expert(hf_sd)
        # sanity: the converted tensors are exactly the model's in-memory parameters
        msd = model.state_dict()
        for k, v in file_sd.items():
            if k in msd:
                assert torch.equal(msd[k], v), k
        layout = other
    else:
        file_sd = hf_sd
        layout = hf_layout
    meta["expert_key_layout"] = layout
    meta["expert_keys"] = (
        {"per_expert": ["mlp.experts.{e}.gate_proj.weight [Im,D]", "mlp.experts.{e}.up_proj.weight [Im,D]",
                        "mlp.experts.{e}.down_proj.weight [D,Im]"],
         "fused": ["mlp.experts.gate_up_proj [E,2*Im,D] (gate rows first)", "mlp.experts.down_proj [E,D,Im]"]}[layout])

    # ---- inputs & expected ----
    inp = make_inputs(config.vocab_size, seed + 1)
    logits, records = forward_with_routing(model, inp)
    meta["routing"] = routing_report(model, records, inp["attention_mask"])
    p1 = PADS[1]
    row1 = {"input_ids": inp["input_ids"][1:2, p1:], "attention_mask": torch.ones(1, T - p1, dtype=torch.long),
            "position_ids": torch.arange(T - p1).unsqueeze(0)}
    logits_row1 = hf_logits(model, row1)
    pad_diff = float((logits_row1[0] - logits[1, p1:]).abs().max())
    assert pad_diff < 1e-4, f"padding invariance broken in HF? {pad_diff}"
    meta["padding_invariance_max_abs_diff_row1"] = pad_diff
    meta.update(logit_stats(logits, inp["attention_mask"]))
    meta["logits_compare_only_where_attention_mask_is_1"] = True

    # ---- config facts ----
    from transformers import DeepseekV3Config

    meta["rope_interleave_field_supported"] = "rope_interleave" in getattr(DeepseekV3Config, "__annotations__", {})
    meta["rope_interleave"] = bool(config.rope_interleave)
    meta["rope_parameters"] = dict(config.rope_parameters)
    meta["hf_rope_attention_factor"] = float(model.model.rotary_emb.attention_scaling)
    meta["hf_softmax_scale"] = float(model.model.layers[0].self_attn.scaling)
    meta["hf_inv_freq"] = [float(x) for x in model.model.rotary_emb.inv_freq]

    # ---- write files ----
    if name == "yarn_mtp_sharded":
        L = config.num_hidden_layers
        mtp = mtp_tensors(config, L, seed + 7)
        full = dict(file_sd)
        full.update(mtp)
        shards, index_json = shard_two(full)
        for fname, sd in zip(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"], shards):
            write_safetensors(out / fname, sd)
        write_json(out / "model.safetensors.index.json", index_json)
        meta["mtp_keys"] = sorted(mtp)
        meta["num_tensors"] = len(full)
    else:
        write_safetensors(out / "model.safetensors", file_sd)
        meta["num_tensors"] = len(file_sd)
    meta["tensor_keys"] = {k: [_ST_DTYPE[v.dtype], list(v.shape)] for k, v in sorted(
        (full if name == "yarn_mtp_sharded" else file_sd).items())}

    if name == "fp8_blocks":
        from transformers import DeepseekV3Config as C

        qcfg = C.from_pretrained(str(hf_dir))
        qcfg.quantization_config = dict(FP8_QCONFIG)
        qcfg.save_pretrained(str(out))
        with open(out / "config.json") as f:
            cj = json.load(f)
        assert cj["quantization_config"] == FP8_QCONFIG, cj.get("quantization_config")
    else:
        shutil.copyfile(hf_dir / "config.json", out / "config.json")

    write_json(out / "inputs.json", {k: v.tolist() for k, v in inp.items()})
    exp = {"logits": logits.contiguous(), "logits_unpadded_row1": logits_row1.contiguous()}
    exp.update(extra_expected)
    write_safetensors(out / "expected.safetensors", exp)

    # ---- reload checks through HF's own loader ----
    if name != "fp8_blocks":
        reloaded = hf_logits(load_hf_dir(out), inp)
        d = float((reloaded - logits).abs().max())
        meta["from_pretrained_reload_max_abs_diff"] = d
        assert d == 0.0, f"{name}: reload through from_pretrained differs by {d}"
    if name == "yarn_mtp_sharded":
        nomtp = tmp / "no_mtp"
        nomtp.mkdir()
        shutil.copyfile(out / "config.json", nomtp / "config.json")
        write_safetensors(nomtp / "model.safetensors", file_sd)
        d = float((hf_logits(load_hf_dir(nomtp), inp) - logits).abs().max())
        meta["logits_diff_with_vs_without_mtp_keys"] = d
        assert d == 0.0, d
    elif name == "fp8_blocks":
        # fp8: reload through this script's own 128-block dequantising loader (the --check-aha path)
        d = float((hf_logits(load_checkpoint_for_check(out), inp) - logits).abs().max())
        meta["fp8_reload_via_check_loader_max_abs_diff"] = d
        assert d == 0.0, d

    write_json(out / "meta.json", meta)
    print(f"[{name}] layout={layout} tensors={meta['num_tensors']} std={meta['std_logits']} "
          f"max|logit|={meta['max_abs_logit']} pad_diff={pad_diff:.2e} "
          f"attn_factor={meta['hf_rope_attention_factor']:.6f} softmax_scale={meta['hf_softmax_scale']:.6f}")
    for lname, r in meta["routing"].items():
        print(f"    {lname}: {r}")
    return meta


# ----------------------------------------------------------------------------------------------
# Check mode
# ----------------------------------------------------------------------------------------------


def _read_dir_tensors(d: Path) -> dict[str, torch.Tensor]:
    idx = d / "model.safetensors.index.json"
    if idx.exists():
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    sd = {}
    for fn in files:
        sd.update(read_safetensors(d / fn))
    return sd


def load_checkpoint_for_check(d: Path):
    """HF from_pretrained, except FP8 checkpoints are dequantised here with exact 128x128 blocks."""
    with open(d / "config.json") as f:
        cj = json.load(f)
    qc = cj.get("quantization_config")
    if not qc:
        return load_hf_dir(d)
    if qc.get("quant_method") != "fp8":
        raise SystemExit(f"unsupported quantization_config {qc}")
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    cj = dict(cj)
    cj.pop("quantization_config")
    cfg = DeepseekV3Config.from_dict(cj)
    model = DeepseekV3ForCausalLM._from_config(cfg, attn_implementation="eager", dtype=torch.float32).eval()
    raw = _read_dir_tensors(d)
    sd = {}
    for k, v in raw.items():
        if k.endswith("_scale_inv"):
            continue
        if v.dtype == torch.float8_e4m3fn:
            sd[k] = fp8_dequantize(v, raw[k + "_scale_inv"].float())
        else:
            sd[k] = v.float()
    n_layers = cfg.num_hidden_layers
    sd = {k: v for k, v in sd.items()
          if not (m := re.match(r"model\.layers\.(\d+)\.", k)) or int(m.group(1)) < n_layers}
    if detect_layout(sd) == "per_expert":
        sd = per_expert_to_fused(sd)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not (cfg.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise SystemExit(f"fp8 load: missing={missing} unexpected={unexpected}")
    if cfg.tie_word_embeddings:
        model.tie_weights()
    return model


def check_aha(ckpt: str, inputs: str, expected: str, tol: float) -> int:
    inp = load_inputs(inputs)
    from safetensors.torch import load_file

    ref = load_file(expected)["logits"].float()
    model = load_checkpoint_for_check(Path(ckpt))
    got = hf_logits(model, inp)
    if got.shape != ref.shape:
        print(f"shape mismatch: got {tuple(got.shape)} expected {tuple(ref.shape)}")
        return 1
    real = inp["attention_mask"].bool()
    diff = float((got[real] - ref[real]).abs().max())
    print(f"max abs diff on non-padded positions: {diff:.3e} (tol {tol:g}, {int(real.sum())} positions)")
    return 0 if diff <= tol else 1


# ----------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check-aha", metavar="DIR", help="HF-format checkpoint dir to verify")
    ap.add_argument("--inputs", help="inputs.json of a fixture (with --check-aha)")
    ap.add_argument("--expected", help="expected.safetensors (with --check-aha)")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--only", nargs="*", help="generate only these fixtures")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    if args.check_aha:
        if not (args.inputs and args.expected):
            ap.error("--check-aha needs --inputs and --expected")
        return check_aha(args.check_aha, args.inputs, args.expected, args.tol)

    if transformers.__version__ != "5.24.0":
        print(f"WARNING: transformers {transformers.__version__}, fixtures were specified for 5.24.0")
    cfgs = fixture_configs()
    OUT_ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, kw) in enumerate(cfgs.items()):
            if args.only and name not in args.only:
                continue
            make_fixture(name, kw, i, Path(tmp))
    total = sum(p.stat().st_size for p in OUT_ROOT.rglob("*") if p.is_file())
    print(f"total size of {OUT_ROOT.relative_to(REPO)}: {total} bytes ({total / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
