"""Regenerates chat_golden.json: the chat templates of the npm tokenizer packages rendered by
Jinja2 configured the way transformers' `apply_chat_template` configures it
(transformers/utils/chat_template_utils.py: ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, its own `tojson`, `raise_exception`; variables `messages`,
`add_generation_prompt` and the tokenizer's special_tokens_map).

    $VERINFER_VENV/bin/python prover/tests/data/chat_golden.py > prover/tests/data/chat_golden.json
"""
import json
import os
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

BASE = os.environ["VERINFER_TOKENIZERS"]
SPECIAL = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "  Name three primes.\n"},
    ],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Translate «bonjour» to English 🙂"},
    ],
    [
        {"role": "system", "content": "Think first."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
        {"role": "user", "content": "and 3+3?"},
    ],
]


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def token_text(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    out = []
    for package in ["tokenizer-llama3", "tokenizer-qwen3"]:
        with open(os.path.join(BASE, package, "models", "tokenizer_config.json")) as f:
            cfg = json.load(f)
        special = {k: token_text(cfg[k]) for k in SPECIAL if token_text(cfg.get(k)) is not None}
        extra = [token_text(t) for t in cfg.get("additional_special_tokens", [])]
        template = env.from_string(cfg["chat_template"])
        for messages in CONVERSATIONS:
            rendered = template.render(
                messages=messages,
                add_generation_prompt=True,
                additional_special_tokens=extra,
                **special,
            )
            out.append({"package": package, "messages": messages, "rendered": rendered})
    json.dump({"generator": "jinja2 " + jinja2.__version__, "cases": out}, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


main()
