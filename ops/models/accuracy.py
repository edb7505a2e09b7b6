#!/usr/bin/env python3
"""Accuracy of the integer engine against the float reference (transformers, float32) on the same
Hugging Face checkpoint, for chat prompts.

The integer side is `verinfer infer --chat --dump-logits`: its greedy tokens, and the integer
logits of the last prompt position dequantized to float (a report of the committed integers;
the dequantization is outside the committed path). The float side is transformers'
LlamaForCausalLM in float32 on the checkpoint directory the SKU was built from.

Reported per prompt and overall:
  - template: whether transformers' apply_chat_template gives the prompt ids the Rust renderer
    (minijinja + tokenizers) gave;
  - prefix: how many leading greedy tokens the integer and float generations share (of N);
  - greedy agreement: position-wise equality of the two greedy sequences over the first N tokens
    (a finished sequence is padded with its EOS);
  - teacher-forced top-1: along the integer engine's own continuation, how often the float
    model's argmax is the integer engine's token (no divergence compounding), and where not,
    how far below the float top-1 the integer token was (float logit and probability gaps);
  - last-position logits: top-1 equality, cosine similarity (over the tokenizer's vocabulary),
    top-5 overlap.

Usage: python ops/models/accuracy.py --model DIR --sku FILE.sku [--verinfer BIN]
           [--prompts ops/models/prompts.txt] [--new-tokens 16] [--threads 2] [--json OUT]
Needs torch and transformers (the venv of ops/setup.sh). Installs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def default_verinfer() -> str:
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path(__file__).resolve().parents[2] / "target")
    return str(Path(target) / "release" / "verinfer")


def run_integer(args) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as td:
        dump = Path(td) / "logits.json"
        cmd = [
            args.verinfer, "infer", "--sku", str(args.sku), "--prompts", str(args.prompts),
            "--chat", "--max-new-tokens", str(args.new_tokens), "--json",
            "--dump-logits", str(dump),
        ]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print("$", " ".join(cmd), file=sys.stderr)
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return json.loads(res.stdout), json.loads(dump.read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True, help="the HF checkpoint directory")
    ap.add_argument("--sku", type=Path, required=True, help="the SKU built from it")
    ap.add_argument("--verinfer", default=default_verinfer())
    ap.add_argument("--prompts", type=Path, default=Path(__file__).with_name("prompts.txt"))
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, help="write the full report here")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run, dump = run_integer(args)
    valid = dump["valid_vocab"]
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    eos = set(model.generation_config.eos_token_id if isinstance(model.generation_config.eos_token_id, list)
              else [model.generation_config.eos_token_id])
    pad = next(iter(eos))
    texts = [l for l in args.prompts.read_text().splitlines() if l.strip()]
    if len(texts) != len(dump["prompts"]):
        sys.exit("prompt count mismatch between the prompts file and the integer run")

    rows = []
    n = args.new_tokens
    for text, item in zip(texts, dump["prompts"]):
        pids = item["prompt_ids"]
        hf_ids = tok.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True,
            return_dict=True,
        )["input_ids"]
        template_ok = list(hf_ids) == pids
        int_gen = item["ids"]
        x = torch.tensor([pids])
        with torch.no_grad():
            out = model.generate(
                x, attention_mask=torch.ones_like(x), max_new_tokens=n, do_sample=False,
                eos_token_id=list(eos), pad_token_id=pad,
            )
            float_gen = out[0, len(pids):].tolist()
            # Teacher forcing along the integer continuation.
            seq = torch.tensor([pids + int_gen])
            logits = model(seq).logits[0].float()
        last_f = logits[len(pids) - 1, :valid]
        last_i = torch.tensor(item["last_logits"][:valid], dtype=torch.float32)
        cos = torch.nn.functional.cosine_similarity(last_f.double(), last_i.double(), dim=0).item()
        top1 = int(last_f.argmax()) == int(last_i.argmax())
        top5 = len(set(last_f.topk(5).indices.tolist()) & set(last_i.topk(5).indices.tolist()))
        forced = [int(logits[len(pids) - 1 + j, :valid].argmax()) for j in range(len(int_gen))]
        forced_agree = sum(int(a == b) for a, b in zip(forced, int_gen))
        # Where they disagree: how far the integer engine's token is below the float top-1, in
        # float logits and in float probability.
        gaps = []
        for j, (f, t) in enumerate(zip(forced, int_gen)):
            if f != t:
                row = logits[len(pids) - 1 + j, :valid]
                prob = torch.softmax(row.double(), dim=0)
                gaps.append({"logit_gap": float(row[f] - row[t]), "p_top1": float(prob[f]),
                             "p_int": float(prob[t])})

        def padded(g):
            g = list(g[:n])
            fill = g[-1] if g and g[-1] in eos else None
            return g + [fill] * (n - len(g))

        a, b = padded(int_gen), padded(float_gen)
        prefix = 0
        while prefix < n and a[prefix] == b[prefix] and a[prefix] is not None:
            prefix += 1
        agree = sum(int(p == q and p is not None) for p, q in zip(a, b))
        rows.append({
            "prompt": text, "prompt_tokens": len(pids), "template_ok": template_ok,
            "int_text": tok.decode(int_gen, skip_special_tokens=False),
            "float_text": tok.decode(float_gen, skip_special_tokens=False),
            "prefix": prefix, "greedy_agree": agree, "n": n,
            "forced_agree": forced_agree, "forced_n": len(int_gen), "mismatch_gaps": gaps,
            "last_top1": top1, "last_cos": cos, "last_top5_overlap": top5,
        })

    print(f"| # | prompt | tokens | template | prefix/{n} | greedy agree | teacher-forced | last top-1 | last cos | top-5 ∩ |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        print(f"| {i} | {r['prompt']} | {r['prompt_tokens']} | {'same' if r['template_ok'] else 'DIFF'} | "
              f"{r['prefix']} | {r['greedy_agree']}/{n} | {r['forced_agree']}/{r['forced_n']} | "
              f"{'yes' if r['last_top1'] else 'no'} | {r['last_cos']:.5f} | {r['last_top5_overlap']}/5 |")
    tot = lambda k: sum(r[k] for r in rows)  # noqa: E731
    summary = {
        "prompts": len(rows),
        "template_same": tot("template_ok"),
        "mean_prefix": tot("prefix") / len(rows),
        "greedy_agree": f"{tot('greedy_agree')}/{n * len(rows)}",
        "teacher_forced_agree": f"{tot('forced_agree')}/{tot('forced_n')}",
        "last_top1": f"{tot('last_top1')}/{len(rows)}",
        "last_cos_min": min(r["last_cos"] for r in rows),
        "last_cos_mean": tot("last_cos") / len(rows),
        "last_top5_overlap_mean": tot("last_top5_overlap") / len(rows),
        "integer_seconds": run["seconds"],
    }
    gaps = sorted(g["logit_gap"] for r in rows for g in r["mismatch_gaps"])
    if gaps:
        pr = sorted(g["p_top1"] - g["p_int"] for r in rows for g in r["mismatch_gaps"])
        summary["mismatch_logit_gap_median"] = gaps[len(gaps) // 2]
        summary["mismatch_logit_gap_max"] = gaps[-1]
        summary["mismatch_prob_gap_median"] = pr[len(pr) // 2]
        summary["mismatch_prob_gap_max"] = pr[-1]
    print()
    print(json.dumps(summary, indent=2))
    for i, r in enumerate(rows):
        print(f"[{i}] int:   {r['int_text']!r}")
        print(f"[{i}] float: {r['float_text']!r}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows, "sku_id": run["sku_id"]}, indent=2))


if __name__ == "__main__":
    main()
