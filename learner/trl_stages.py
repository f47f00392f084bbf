"""The SFT and reward-model stages, run by TRL's own trainers.

The self-play learner is a plain loop (its optimizer lives across iterations); these two
stages run once, on a fixed data set, which is what TRL's `SFTTrainer` and `RewardTrainer`
are for. Each writes a Hugging Face checkpoint that loads unchanged in transformers and vLLM
(the SFT model) or as a `RewardModelJudge` (the reward model).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import torch

from learner.checkpoint import replace_dir_atomically
from prompts.chat import TEXT_FORMAT

COMPLETION_COLUMNS = ("prompt", "completion")


@dataclass(frozen=True)
class StageSettings:
    """What a TRL stage needs beyond its data: `steps` optimizer steps of `batch_size` examples."""

    steps: int = 200
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 10
    max_length: int = 64
    seed: int = 0
    show_progress: bool = True


def _common_args(settings: StageSettings, output_dir: Path) -> dict:
    return dict(
        output_dir=str(output_dir),
        max_steps=settings.steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_steps,
        lr_scheduler_type="constant_with_warmup",
        logging_strategy="steps" if settings.show_progress else "no",
        logging_steps=max(1, settings.steps // 10),
        save_strategy="no",
        report_to=[],
        seed=settings.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=_bf16_autocast(),
        max_length=settings.max_length,
        disable_tqdm=not settings.show_progress,
    )


def _bf16_autocast() -> bool:
    """bf16 mixed precision on a GPU that has it, fp32 on CPU. TRL's configs default to bf16
    everywhere; on a CPU without native bf16 (AVX2 only) that made a step about 3x slower."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _use_every_core() -> None:
    # Ray pins OMP_NUM_THREADS to a task's CPU reservation (1 for none); a stage runs alone.
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))


def train_sft(model_path: str | Path, data: pa.Table, out_dir: str | Path, settings: StageSettings) -> dict[str, float]:
    """Supervised fine-tuning on (prompt, completion) rows with TRL's `SFTTrainer` (loss on the
    completion only, EOS appended); the model and tokenizer are saved to `out_dir`."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    _use_every_core()
    start = time.perf_counter()
    out_dir = Path(out_dir)
    work = out_dir.with_name(f".{out_dir.name}.trainer")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    args = SFTConfig(**_common_args(settings, work), completion_only_loss=True)
    dataset = Dataset.from_dict(data.select(list(COMPLETION_COLUMNS)).to_pydict())
    trainer = SFTTrainer(model=str(model_path), args=args, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    replace_dir_atomically(out_dir, trainer.save_model)
    shutil.rmtree(work, ignore_errors=True)
    return {"loss": float(result.training_loss), "steps": float(result.global_step), "seconds": time.perf_counter() - start}


def train_reward_model(
    model_path: str | Path, pairs: pa.Table, out_dir: str | Path, settings: StageSettings, eval_pairs: pa.Table | None = None
) -> dict[str, float]:
    """A reward model (one-logit sequence classifier on the policy's body, Bradley-Terry loss)
    trained with TRL's `RewardTrainer` on (prompt, chosen, rejected) rows and saved to `out_dir`.
    Returns the training loss and, with `eval_pairs`, how often it ranks chosen above rejected there."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    _use_every_core()
    start = time.perf_counter()
    out_dir = Path(out_dir)
    work = out_dir.with_name(f".{out_dir.name}.trainer")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    args = RewardConfig(**_common_args(settings, work), model_init_kwargs={"dtype": torch.float32})
    columns = ["prompt", "chosen", "rejected"]
    evaluation = Dataset.from_dict(eval_pairs.select(columns).to_pydict()) if eval_pairs is not None and eval_pairs.num_rows else None
    trainer = RewardTrainer(
        model=str(model_path), args=args, train_dataset=Dataset.from_dict(pairs.select(columns).to_pydict()), eval_dataset=evaluation,
        processing_class=tokenizer,
    )
    result = trainer.train()
    stats = {"loss": float(result.training_loss), "steps": float(result.global_step)}
    if evaluation is not None:
        stats["eval_accuracy"] = float(trainer.evaluate()["eval_accuracy"])
    def save(tmp: Path) -> None:
        trainer.save_model(str(tmp))
        (tmp / TEXT_FORMAT).write_text(json.dumps({"rows": "prompt + response + EOS", "trained_by": "selfplay"}))

    replace_dir_atomically(out_dir, save)
    shutil.rmtree(work, ignore_errors=True)
    stats["seconds"] = time.perf_counter() - start
    return stats
