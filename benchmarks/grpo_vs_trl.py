"""GRPO step time: r1lab against TRL's `GRPOTrainer`, the same work, in one process.

Both sides train the same tiny DeepSeek-V3 (an r1lab checkpoint, randomly initialised, that TRL
loads through transformers) on the same world prompts with the same reward (accuracy + format), G =
8 completions for each of 8 prompts per step, the same maximum completion length and temperature,
the same `kl_coef` (TRL's beta), per-sequence loss averaging, one optimizer step per rollout batch
(AdamW with betas 0.9 / 0.95, 5 warmup steps then a constant LR), no activation checkpointing on
either side (TRL's default would run its policy forward twice). A random model rarely emits EOS, so
both sides generate about the full length: equal work. TRL is an optional benchmark dependency (`pip
install trl`), not a runtime one.

Runs each side in float32 and in bf16 (r1lab: `bf16=True`, autocast in training, bf16 weights in the
engine's matmuls; TRL: its `bf16` flag), and ends with one JSON line: seconds per step (each side's
whole step: r1lab's logged `step_s`, TRL's step callbacks; median over the timed steps, after one
warm-up step) split into generation (tokenizing, sampling, decoding and rewards, on both sides) and
the rest (`training_s`), and TRL's seconds per step over r1lab's in the same precision (`ratio`:
float32, `ratio_bf16`) and with each side at its fastest setting (`ratio_fastest`). The four
settings run in turn, `--rounds` times (a shared machine's speed drifts by 10-20% over minutes), and
every figure is a median over all timed steps of all rounds; compare ratios from one run, not
seconds across runs. Both sides run with the allocator setting r1lab's stages use
(`runtime.keep_freed_memory`), applied once to the whole process before either starts.

    .venv/bin/python benchmarks/grpo_vs_trl.py [--steps 10] [--rounds 2] [--beta 0.04] [--model tiny|ref6m]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from r1lab.model import Transformer, preset, save_pretrained
from r1lab.stages import grpo
from r1lab.stages.rollout import world_rubric
from r1lab.tokenizer import world_tokenizer
from r1lab.runtime import keep_freed_memory

PROMPTS_PER_STEP, GROUP = 8, 8


# --model: the `tiny` preset (1.7M parameters with the world's vocabulary), or `ref6m`, tiny at
# twice the width (6.2M), the size of the 6.3M-parameter model the reference TRL timing used
MODELS = {
    "tiny": {},
    "ref6m": dict(hidden_size=256, intermediate_size=768, moe_intermediate_size=192, kv_lora_rank=128,
                  qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64),
}


def make_checkpoint(directory: Path, model: str = "tiny") -> tuple[Path, int]:
    """A randomly initialised checkpoint both sides load; returns it and its parameter count."""
    tokenizer = world_tokenizer(seed=0)
    config = preset("tiny").replace(vocab_size=tokenizer.vocab_size, bos_token_id=tokenizer.bos_id,
                                    eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id,
                                    num_nextn_predict_layers=0, **MODELS[model])
    torch.manual_seed(0)
    net = Transformer(config)
    path = save_pretrained(net, directory / "init")
    tokenizer.save(path)
    return path, sum(p.numel() for p in net.parameters())


def run_r1lab(init: Path, args: argparse.Namespace, bf16: bool, out: Path) -> dict:
    config = grpo.GRPOConfig(init=str(init), out_dir=str(out), prompts_per_step=PROMPTS_PER_STEP,
                             group_size=GROUP, max_steps=args.steps + 1, max_new_tokens=args.max_tokens,
                             temperature=1.0, lr=1e-5, kl_coef=args.beta, bf16=bf16, save_every=10_000,
                             log_samples_every=10_000)
    start = time.perf_counter()
    grpo.run(config)
    total = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][1:]  # skip warm-up
    # rollout_s: sampling and rewards (generate_s + reward_s), what TRL's side times as generation
    return {"step": [r["step_s"] for r in rows], "generation": [r["rollout_s"] for r in rows],
            "tokens": [r["length_mean"] for r in rows], "wall_s": total}


def run_trl(init: Path, args: argparse.Namespace, bf16: bool, out: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from r1lab.world import format_r1_zero, rl_prompts

    problems = rl_prompts(PROMPTS_PER_STEP * (args.steps + 2), seed=0)
    by_prompt = {f"<|bos|>{format_r1_zero(p.question)}": p for p in problems}
    rubric = world_rubric(grpo.GRPOConfig())

    def reward(prompts: list[str], completions: list[str], **_: object) -> list[float]:
        return rubric(completions, [by_prompt[p] for p in prompts]).total

    times: list[float] = []
    gen_times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a: object, **k: object) -> None:
            self.t = time.perf_counter()

        def on_step_end(self, *a: object, **k: object) -> None:
            times.append(time.perf_counter() - self.t)

    config = GRPOConfig(output_dir=str(out), per_device_train_batch_size=PROMPTS_PER_STEP * GROUP,
                        num_generations=GROUP, max_completion_length=args.max_tokens, temperature=1.0,
                        learning_rate=1e-5, beta=args.beta, loss_type="grpo", max_steps=args.steps + 1,
                        logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, bf16=bf16,
                        num_iterations=1, steps_per_generation=1, seed=0, disable_tqdm=True,
                        # TRL's default checkpoints activations (the policy forward runs twice); r1lab does not
                        gradient_checkpointing=False,
                        # r1lab's optimizer: AdamW betas (0.9, 0.95), linear warmup over 5 steps, then constant
                        adam_beta2=0.95, lr_scheduler_type="constant_with_warmup", warmup_steps=5)
    tokenizer = AutoTokenizer.from_pretrained(init)
    model = AutoModelForCausalLM.from_pretrained(init)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, processing_class=tokenizer,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in by_prompt]),
                          callbacks=[StepTimer()])
    # the generation share of a step, as r1lab's rollout_s: tokenizing, sampling, decoding, rewards
    generate, rewards = trainer._generate, trainer._calculate_rewards
    rollout_s = [0.0]

    def timed(fn, last: bool):
        def wrapper(*a: object, **k: object):
            start = time.perf_counter()
            result = fn(*a, **k)
            rollout_s[0] += time.perf_counter() - start
            if last:  # rewards come after generation: one rollout done
                gen_times.append(rollout_s[0])
                rollout_s[0] = 0.0
            return result
        return wrapper

    trainer._generate, trainer._calculate_rewards = timed(generate, False), timed(rewards, True)
    start = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - start
    lengths = [r["completions/mean_length"] for r in trainer.state.log_history if "completions/mean_length" in r]
    return {"step": times[1:], "generation": gen_times[1:], "tokens": lengths[1:], "wall_s": total}


def summarise(runs: list[dict]) -> dict:
    """Medians over every timed step of every round of one side."""
    step, gen = [x for r in runs for x in r["step"]], [x for r in runs for x in r["generation"]]
    out = {"s_per_step": statistics.median(step), "generation_s": statistics.median(gen),
           "training_s": statistics.median(a - b for a, b in zip(step, gen)), "timed_steps": len(step),
           "wall_s": sum(r["wall_s"] for r in runs)}
    if runs[0]["tokens"]:  # mean completion length: the two sides do equal work
        out["completion_tokens"] = statistics.mean(float(x) for r in runs for x in r["tokens"])
    return {k: round(v, 3) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per side (after one warm-up step)")
    parser.add_argument("--beta", type=float, default=0.04, help="kl_coef / TRL beta (TRL's default 0.04)")
    parser.add_argument("--max-tokens", type=int, default=64, help="maximum completion length")
    parser.add_argument("--rounds", type=int, default=2, help="runs per side, interleaved (the machine's speed drifts)")
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny", help="tiny preset or its 6.2M-parameter widening")
    args = parser.parse_args()
    if min(args.steps, args.rounds, args.max_tokens) < 1:
        parser.error("--steps, --rounds and --max-tokens must be >= 1")
    try:
        import trl
    except ImportError:
        print("benchmarks/grpo_vs_trl.py needs TRL: .venv/bin/pip install trl", file=sys.stderr)
        raise SystemExit(2)
    keep_freed_memory()  # process-wide, before either side runs: TRL gets the same allocator as r1lab
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        init, n_params = make_checkpoint(Path(tmp), args.model)
        for k in range(args.rounds):
            for name, fn, bf16 in (("r1lab_fp32", run_r1lab, False), ("trl_fp32", run_trl, False),
                                   ("r1lab_bf16", run_r1lab, True), ("trl_bf16", run_trl, True)):
                runs.setdefault(name, []).append(fn(init, args, bf16, Path(tmp) / f"{name}_{k}"))
                print(f"round {k} {name}: {summarise(runs[name][-1:])}", file=sys.stderr)
    results = {name: summarise(r) for name, r in runs.items()}
    fastest_r1lab = min(results["r1lab_fp32"]["s_per_step"], results["r1lab_bf16"]["s_per_step"])
    fastest_trl = min(results["trl_fp32"]["s_per_step"], results["trl_bf16"]["s_per_step"])
    print(json.dumps({"benchmark": "grpo_vs_trl", "trl_version": trl.__version__, "steps": args.steps,
                      "rounds": args.rounds, "model": args.model, "params": n_params,
                      "prompts_per_step": PROMPTS_PER_STEP, "group_size": GROUP, "max_tokens": args.max_tokens,
                      "beta": args.beta, **results,
                      "ratio_fastest": round(fastest_trl / fastest_r1lab, 2),
                      "ratio_bf16": round(results["trl_bf16"]["s_per_step"] / results["r1lab_bf16"]["s_per_step"], 2),
                      "ratio": round(results["trl_fp32"]["s_per_step"] / results["r1lab_fp32"]["s_per_step"], 2)}))


if __name__ == "__main__":
    main()
