"""A tiny Llama and a character-level tokenizer, built in code and saved with save_pretrained.

Nothing is downloaded: the demo and the tests build this model, and every later load goes
through `from_pretrained(path)` or vLLM's `LLM(model=path)` exactly as a real checkpoint would.
"""
from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
# Digits and operators for the built-in task, and printable text so later prompts
# (critiques, skill tags) still tokenize.
CHARACTERS = string.digits + "+-*/=()., :;?!'\"<>" + string.ascii_letters + "\n"


# Qwen2.5-0.5B's shape as a Llama (494M parameters): the GPU benchmark and tests build it from config.
HALF_BILLION = dict(
    hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2, intermediate_size=4864, vocab_size=151936,
    tie_word_embeddings=True, max_position_embeddings=512,
)


TINY_CONTEXT = 64  # the tiny model's context: its prompts and answers are a few dozen characters


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for char in CHARACTERS:
        vocab.setdefault(char, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def build_tiny_model(
    path: Path,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 512,
    max_position_embeddings: int = TINY_CONTEXT,
    seed: int = 0,
    num_kv_heads: int | None = None,
    vocab_size: int | None = None,
    tie_word_embeddings: bool = False,
) -> Path:
    """Write a randomly initialised Llama and its tokenizer to `path`; returns `path`. The
    vocabulary is the tokenizer's unless `vocab_size` pads it (to give a model a real one's size)."""
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=max(vocab_size or 0, len(tokenizer)),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads or num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=tie_word_embeddings,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
