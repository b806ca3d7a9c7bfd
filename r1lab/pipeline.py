"""The R1 recipe chained end to end on the embedded miniature world (what `make demo` runs).

    base model (shipped, or pretrained here)                                  R1 §2.2 starts here
    -> R1-Zero: GRPO from the base, rule rewards, R1-Zero template            R1 §2.2
    -> cold-start data: R1-Zero samples rewritten readable + long CoT        R1 §2.3.1
    -> cold start: SFT of the base on it                                      R1 §2.3.1
    -> reasoning RL: GRPO from the cold-start model + language consistency   R1 §2.3.2
    -> rejection sampling from the RL model + chat data                       R1 §2.3.3
    -> SFT of the base on the rejection-sampled set                           R1 §2.3.3
    -> all-scenario RL: reward models for helpfulness and safety trained on   R1 §2.3.4
       judged replies, then GRPO on reasoning (rules) and general prompts (RMs)
    -> distillation: a smaller dense student fine-tuned on that set, against  R1 §2.4, §4.1
       the same student trained by R1-Zero's RL alone

Every model is evaluated on the held-out split (pass@1 over k samples, cons@k) and the results
form one table; the SFT'd and all-scenario models are also judged on held-out general prompts.
Each stage leaves its checkpoint, data and metrics in one run directory; a stage
whose output already exists is reused (unless a stage it was built from was rebuilt since), and an
interrupted GRPO or SFT stage continues from its newest checkpoint, so an interrupted demo resumes
where it stopped (to the last checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, runs are not guarded
    fcntl = None

from r1lab import runtime, training
from r1lab.data import check_output_dir
from r1lab.prompts import CHAT
from r1lab.reuse import build, check_settings, finish_interrupted, read_stamp, reuse_or_run, stamp_path, time_to
from r1lab.results import GeneralRow, cache_path, cached_row, fingerprint, general_table, markdown_table
from r1lab.stages import (all_scenario, cold_start, general_eval, grpo, preference_data, pretrain, rejection_sampling,
                          reward_model, sft)
from r1lab.stages.sample_eval import SampleEvalConfig, evaluate_checkpoint

SHIPPED_BASE = Path(__file__).resolve().parent / "assets" / "base-tiny"
SHIPPED_STUDENT = Path(__file__).resolve().parent / "assets" / "base-student"  # distillation's student base
SET_HERE = "(set by the pipeline)"  # a path the pipeline fills in from the run directory
STOP_POINTS: tuple[str, ...] = ("", "zero", "cold_start", "reasoning_rl", "rejection", "all_scenario", "distill")
STAGE_CONFIGS = ("zero", "cold_start_data", "cold_start_sft", "reasoning_rl", "rejection", "final_sft",
                 "preference_data", "helpful_rm", "safety_rm", "all_scenario", "student", "student_zero", "distill_sft")


def _sft_defaults(**overrides: object) -> sft.SFTConfig:
    # the tiny model learns from a few hundred examples at a higher LR than the paper's 5e-5
    # a checkpoint every 50 steps: an interrupted stage continues (the pipeline removes them once it is done)
    # bf16: SFTConfig's default, where this machine computes it in hardware
    return sft.SFTConfig(data=SET_HERE, lr=1e-3, warmup_steps=10, save_every=50, **overrides)


@dataclass(kw_only=True)
class PipelineConfig:
    out_dir: str = "runs/demo"  # run directory holding every stage
    seed: int = 0  # seed of every stage
    pretrain: bool = False  # pretrain the base models (teacher's and student's) here even if shipped ones exist
    eval_problems: int = 200  # held-out problems per evaluation
    eval_samples: int = 8  # k samples per problem (pass@1 averaged over k, cons@k)
    stop_after: str = ""  # "" = all; else the last stage run: one of STOP_POINTS (zero ... all_scenario | distill)
    device: str = "cpu"  # cpu | cuda | cuda:N: every stage's (training, sampling, evaluation)
    zero: grpo.GRPOConfig = field(default_factory=grpo.GRPOConfig)  # R1-Zero (init/out_dir/seed set here)
    cold_start_data: cold_start.ColdStartConfig = field(default_factory=lambda: cold_start.ColdStartConfig(
        n_prompts=512, n_long_cot=512))  # ~1.6k examples; ~700 left RL 4-5 points under R1-Zero
    cold_start_sft: sft.SFTConfig = field(default_factory=lambda: _sft_defaults(epochs=8))
    reasoning_rl: grpo.GRPOConfig = field(default_factory=lambda: grpo.GRPOConfig(
        template=CHAT, language_weight=1.0, max_new_tokens=160, max_steps=160, lr=4e-5))  # R1 §2.3.2
    rejection: rejection_sampling.RejectionSamplingConfig = field(
        default_factory=lambda: rejection_sampling.RejectionSamplingConfig(checkpoint=SET_HERE, n_prompts=1024))
    final_sft: sft.SFTConfig = field(default_factory=lambda: _sft_defaults(epochs=8))
    # all-scenario RL (R1 §2.3.4): the reward models' data, the two models (from the SFT'd model), then GRPO
    preference_data: preference_data.PreferenceDataConfig = field(
        default_factory=lambda: preference_data.PreferenceDataConfig(checkpoint=SET_HERE))
    helpful_rm: reward_model.RewardModelConfig = field(default_factory=lambda: reward_model.RewardModelConfig(
        data=SET_HERE, objective="pairwise"))  # 1 epoch, as the paper's
    safety_rm: reward_model.RewardModelConfig = field(default_factory=lambda: reward_model.RewardModelConfig(
        data=SET_HERE, objective="pointwise"))
    all_scenario: all_scenario.AllScenarioConfig = field(default_factory=lambda: all_scenario.AllScenarioConfig(
        helpful_rm=SET_HERE, safety_rm=SET_HERE, max_new_tokens=160, max_steps=60, lr=4e-5))
    # distillation (R1 §2.4, §4.1): a smaller dense student, pretrained on the same corpus (shipped; ~2 min here)
    student: pretrain.PretrainConfig = field(default_factory=lambda: pretrain.PretrainConfig(model="student"))
    student_zero: grpo.GRPOConfig = field(default_factory=grpo.GRPOConfig)  # RL alone on the student: R1-Zero's
    # the student on the RS set with the final SFT's settings (the paper: 2-3 epochs over its 800k samples)
    distill_sft: sft.SFTConfig = field(default_factory=lambda: _sft_defaults(epochs=8))

    def __post_init__(self) -> None:
        if self.stop_after not in STOP_POINTS:
            raise ValueError(f"PipelineConfig.stop_after must be one of {STOP_POINTS[1:]} (or empty for all)")
        runtime.check_device(self.device, "PipelineConfig")
        if not 0 <= self.seed < 2**32 - 1:  # evaluations sample with seed + 1
            raise ValueError(f"PipelineConfig.seed must be in [0, 2^32 - 1), got {self.seed}")
        for name in ("eval_problems", "eval_samples"):  # checked before any stage runs, not at the first evaluation
            value = getattr(self, name)
            if not runtime.is_int(value) or value < 1:
                raise ValueError(f"PipelineConfig.{name} must be an integer >= 1, got {value!r}")
        runtime.check_int_fields(self)
        for name in STAGE_CONFIGS:  # the pipeline's device is every stage's
            setattr(self, name, dataclasses.replace(getattr(self, name), device=self.device))


@dataclass
class StageRow:
    stage: str
    checkpoint: str
    pass_at_1: float
    pass_at_k: float
    cons_at_k: float
    format_rate: float
    length_mean: float
    reasoning_share: float
    accuracy_reasoning: float | None  # None: no sample reasoned (a mean over nothing)
    accuracy_bare: float | None  # None: every sample reasoned
    language_consistency: float | None  # of the reasoning; None: no sample reasoned
    seconds: float


def base_checkpoint(config: PipelineConfig) -> Path:
    out, planned = Path(config.out_dir) / "base", planned_base(config)
    if planned == SHIPPED_BASE:
        print(f"using the shipped base model {SHIPPED_BASE} (pass --pretrain to train it here)")
        return SHIPPED_BASE
    if (planned / "config.json").exists():  # pretrained here by an earlier run: of this seed only
        check_settings(planned, planned / "r1lab_config.json", {"seed": config.seed})
        # killed after saving it, before its stamp: its time is kept for the table, as for the other stages
        stamp_file = stamp_path(planned)
        finish_interrupted(stamp_file, read_stamp(stamp_file), planned, planned / "r1lab_config.json",
                           out / "checkpoints")
        return _drop_resume_checkpoints(out, planned)  # left by a run that stopped right after saving it
    if (left := training.latest_checkpoint(out / "checkpoints")) is not None:  # as for the other stages
        check_settings(out / "checkpoints", left / "r1lab_config.json", {"seed": config.seed})
    # its time (with a resumed run's time before its checkpoint), for the table of a rerun that reuses it
    stamp_file = stamp_path(planned)
    base, _ = build(stamp_file, [], time_to(left, stamp_file, read_stamp(stamp_file)), lambda: pretrain.run(
        pretrain.PretrainConfig(out_dir=str(out), seed=config.seed, device=config.device,
                                resume=_should_resume(out, False))))
    return _drop_resume_checkpoints(out, base)


def planned_base(config: PipelineConfig) -> Path:
    """The base model `base_checkpoint` will return, before it is pretrained (if it must be)."""
    pretrained = Path(config.out_dir) / "base" / "base"
    if (pretrained / "config.json").exists() or config.pretrain or not SHIPPED_BASE.exists():
        return pretrained
    return SHIPPED_BASE


def evaluate(stage: str, checkpoint: Path, config: PipelineConfig, seconds: float) -> StageRow:
    """A model on the held-out reasoning problems: its table row (cached, `results.cached_row`)."""
    settings = SampleEvalConfig(checkpoint=str(checkpoint), n_problems=config.eval_problems, k=config.eval_samples,
                                seed=config.seed + 1, max_new_tokens=192, device=config.device)

    def compute() -> StageRow:
        s = evaluate_checkpoint(settings).summary()
        return StageRow(stage=stage, checkpoint=str(checkpoint), pass_at_1=s["pass@1"], pass_at_k=s["pass@k"],
                        cons_at_k=s["cons@k"], format_rate=s["format_rate"], length_mean=s["length_mean"],
                        reasoning_share=s["reasoning_share"], accuracy_reasoning=s["accuracy_reasoning"],
                        accuracy_bare=s["accuracy_bare"], language_consistency=s["language_consistency"],
                        seconds=seconds)

    return cached_row(cache_path(config, stage), fingerprint(checkpoint, asdict(settings)), compute, StageRow)


def general_row(stage: str, checkpoint: Path, config: PipelineConfig) -> GeneralRow:
    """A model on held-out general prompts, judged by the world (the paper's sampling: k at T = 0.6),
    cached as `evaluate`'s rows are."""
    settings = {"n_prompts": config.eval_problems, "k": config.eval_samples, "seed": config.seed + 1,
                "device": config.device}

    def compute() -> GeneralRow:
        return GeneralRow(stage=stage, **asdict(general_eval.evaluate_general(checkpoint, **settings)))

    return cached_row(cache_path(config, f"general {stage}"), fingerprint(checkpoint, settings), compute, GeneralRow)


def _should_resume(out: Path, requested: bool) -> bool:
    """Resume when an interrupted run of the stage left a checkpoint (its finished output is missing)."""
    ck = training.latest_checkpoint(out / "checkpoints")
    if ck is not None:
        print(f"{out}: an interrupted run left {ck}; continuing from it")
    return requested or ck is not None


def _rl(settings: grpo.GRPOConfig, init: Path, out: Path, seed: int) -> Path:
    """A GRPO stage (it writes its curves.png next to its metrics); all-scenario RL by its own `run`."""
    trainer = all_scenario.run if isinstance(settings, all_scenario.AllScenarioConfig) else grpo.run
    policy = trainer(dataclasses.replace(settings, init=str(init), out_dir=str(out), seed=seed,
                                         resume=_should_resume(out, settings.resume)))
    return _drop_resume_checkpoints(out, policy)


def _sft(settings: sft.SFTConfig, data: Path, init: Path, out: Path, seed: int) -> Path:
    model = sft.run(dataclasses.replace(settings, data=str(data), init=str(init), out_dir=str(out), seed=seed,
                                        resume=_should_resume(out, settings.resume)))
    return _drop_resume_checkpoints(out, model)


def _rl_stage(settings: grpo.GRPOConfig, init: Path, out: Path, seed: int,
              reward_models: tuple[Path, ...] = ()) -> tuple[Path, float]:
    """A GRPO stage's policy (`out/policy`) and its seconds: reused when finished from this `init`
    (and `reward_models`) with these settings, else trained (continued from an interrupted run's checkpoints)."""
    return reuse_or_run(out / "policy", lambda: _rl(settings, init, out, seed),
                        out / "policy" / "r1lab_config.json", [init, *reward_models], out / "checkpoints",
                        init=str(init), seed=seed, **_settings(settings))


def _sft_stage(settings: sft.SFTConfig, data: Path, init: Path, out: Path, seed: int) -> tuple[Path, float]:
    """An SFT stage's model (`out/model`) and its seconds, reused or trained as `_rl_stage`'s."""
    return reuse_or_run(out / "model", lambda: _sft(settings, data, init, out, seed),
                        out / "model" / "r1lab_config.json", [data, init], out / "checkpoints", data=str(data),
                        init=str(init), seed=seed, **_settings(settings))


def _drop_resume_checkpoints(out: Path, final: Path) -> Path:
    """A finished stage's checkpoints only served to resume it: left behind, a rebuild of the
    stage (its output deleted, or an input rebuilt) would continue from them instead."""
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return final


@contextmanager
def _only_run_in(out: Path) -> Iterator[None]:
    """Holds `out` for one demo: two demos in one run directory would train the same stages into
    the same checkpoints, each resuming or deleting the other's. The lock goes with the process
    (flock), so a killed demo leaves none behind."""
    with (out / ".demo.lock").open("a") as lock:
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ValueError(f"{out} is in use by another demo still running; wait for it to finish, "
                                 "or use another --out") from None
        yield


def run(config: PipelineConfig) -> list[StageRow]:
    out = check_output_dir(config.out_dir)  # a file there failed in mkdir as a bare "File exists"
    out.mkdir(parents=True, exist_ok=True)
    with _only_run_in(out):
        return _run_stages(config)


def _run_stages(config: PipelineConfig) -> list[StageRow]:
    out, seed = Path(config.out_dir), config.seed
    # an R1-Zero built from another base, seed or GRPO settings is refused now, not after pretraining
    # and evaluating a base (minutes)
    zero_config = out / "zero" / "policy" / "r1lab_config.json"
    check_settings(out / "zero" / "policy", zero_config, {"init": str(planned_base(config)), "seed": seed,
                                                          **_settings(config.zero)})
    base = base_checkpoint(config)
    # the shipped base was not trained here: no time
    seconds = 0.0 if base == SHIPPED_BASE else read_stamp(stamp_path(base)).get("seconds", 0.0)
    rows = [evaluate("base", base, config, seconds)]

    def finish(general: list[GeneralRow] | None = None) -> list[StageRow]:
        _write_results(rows, config, general)
        return rows

    zero, s = _rl_stage(config.zero, base, out / "zero", seed)
    rows.append(evaluate("R1-Zero", zero, config, s))
    if config.stop_after == "zero":
        return finish()

    data, s1 = reuse_or_run(out / "cold_start" / "data.jsonl", lambda: cold_start.run(dataclasses.replace(
        config.cold_start_data, zero_checkpoint=str(zero), out=str(out / "cold_start" / "data.jsonl"), seed=seed)),
        out / "cold_start" / "data.stats.json", [zero], zero_checkpoint=str(zero), seed=seed,
        **_settings(config.cold_start_data))
    cold, s2 = _sft_stage(config.cold_start_sft, data, base, out / "cold_start", seed)
    rows.append(evaluate("cold start (SFT)", cold, config, s1 + s2))
    if config.stop_after == "cold_start":
        return finish()

    rl, s = _rl_stage(config.reasoning_rl, cold, out / "reasoning_rl", seed)
    rows.append(evaluate("cold start + reasoning RL", rl, config, s))
    if config.stop_after == "reasoning_rl":
        return finish()

    rs_data, s1 = reuse_or_run(out / "rejection" / "data.jsonl", lambda: rejection_sampling.run(dataclasses.replace(
        config.rejection, checkpoint=str(rl), out_dir=str(out / "rejection"), seed=seed)),
        out / "rejection" / "stats.json", [rl], checkpoint=str(rl), seed=seed, **_settings(config.rejection))
    final, s2 = _sft_stage(config.final_sft, rs_data, base, out / "rejection", seed)
    rows.append(evaluate("rejection-sampled SFT", final, config, s1 + s2))
    if config.stop_after == "rejection":
        return finish()
    policy, s = all_scenario_stage(config, final)
    rows.append(evaluate("all-scenario RL", policy, config, s))
    general = [general_row("rejection-sampled SFT", final, config), general_row("all-scenario RL", policy, config)]
    if config.stop_after == "all_scenario":
        return finish(general)
    rows += _distillation(config, rs_data)
    return finish(general)


def all_scenario_stage(config: PipelineConfig, init: Path) -> tuple[Path, float]:
    """R1 §2.3.4: the reward models' data (written by the world, and `init`'s own replies judged),
    a helpfulness and a safety model from `init`, then GRPO on reasoning and general prompts."""
    out, seed = Path(config.out_dir) / "all_scenario", config.seed
    data, seconds = reuse_or_run(out / "data", lambda: preference_data.run(dataclasses.replace(
        config.preference_data, checkpoint=str(init), out_dir=str(out / "data"), seed=seed)),
        out / "data" / preference_data.STATS_FILE, [init], checkpoint=str(init), seed=seed,
        **_settings(config.preference_data))
    models = []
    for name, file in (("helpful_rm", preference_data.HELPFUL_FILE), ("safety_rm", preference_data.SAFETY_FILE)):
        settings, rm_out = getattr(config, name), out / name
        model, s = reuse_or_run(rm_out / "model", lambda: reward_model.run(dataclasses.replace(
            settings, data=str(data / file), init=str(init), out_dir=str(rm_out), seed=seed)),
            rm_out / "model" / "r1lab_config.json", [data / file, init], data=str(data / file), init=str(init),
            seed=seed, **_settings(settings))
        models.append(model)
        seconds += s
    rl_settings = dataclasses.replace(config.all_scenario, helpful_rm=str(models[0]), safety_rm=str(models[1]))
    policy, s = _rl_stage(rl_settings, init, out, seed, tuple(models))
    return policy, seconds + s


def _distillation(config: PipelineConfig, rs_data: Path) -> list[StageRow]:
    """R1 §2.4 and §4.1 (Table 6): a smaller dense student fine-tuned on the rejection-sampled set
    (the paper's students are fine-tuned on the same ~800k samples, SFT only), against the same
    student trained by R1-Zero's RL alone from its base."""
    out, seed = Path(config.out_dir), config.seed
    student, s = _student_base(config)
    rows = [evaluate("student base", student, config, s)]
    zero, s = _rl_stage(config.student_zero, student, out / "student_zero", seed)
    rows.append(evaluate("student R1-Zero (RL only)", zero, config, s))
    distilled, s = _sft_stage(config.distill_sft, rs_data, student, out / "distill", seed)
    rows.append(evaluate("distilled student (SFT on the RS set)", distilled, config, s))
    return rows


def _student_base(config: PipelineConfig) -> tuple[Path, float]:
    """The shipped student base if it was pretrained with these settings and seed (and none was
    pretrained in this run directory, nor started there), else the student pretrained here."""
    out, seed = Path(config.out_dir) / "student", config.seed
    try:
        shipped = json.loads((SHIPPED_STUDENT / "r1lab_config.json").read_text())
    except (OSError, ValueError):
        shipped = None
    # precision aside: bf16 is the default only where the hardware has it (runtime.default_bf16), and the
    # shipped base, pretrained in bf16, is what these settings give on such a machine
    aside = {"bf16": None}
    if (not config.pretrain and shipped is not None and shipped.get("seed") == seed
            and {**_settings(config.student), **aside} == {**_without_run_fields(shipped), **aside}
            and not (out / "base").exists() and training.latest_checkpoint(out / "checkpoints") is None):
        print(f"using the shipped student base {SHIPPED_STUDENT} (pass --pretrain to train it here)")
        return SHIPPED_STUDENT, 0.0
    return reuse_or_run(out / "base", lambda: _drop_resume_checkpoints(out, pretrain.run(dataclasses.replace(
        config.student, out_dir=str(out), seed=seed, resume=_should_resume(out, False)))),
        out / "base" / "r1lab_config.json", [], out / "checkpoints", seed=seed, **_settings(config.student))


# a stage's fields the pipeline sets per run (passed to reuse_or_run by name), or that leave its result as it is
_NOT_SETTINGS = ("init", "data", "zero_checkpoint", "checkpoint", "out_dir", "out", "seed", "resume", "device",
                 "helpful_rm", "safety_rm", "threads", "save_every", "keep_checkpoints", "log_every", "log_samples_every",
                 "expert_parallel")


def _settings(stage: object) -> dict[str, object]:
    """A stage's settings as its saved config holds them (through JSON: tuples as lists): a finished
    stage, or an interrupted one's checkpoints, of other settings (more steps, another lr) is
    refused by reuse_or_run, not taken for this configuration's."""
    return _without_run_fields(json.loads(json.dumps(asdict(stage), default=str)))


def _without_run_fields(saved: dict[str, object]) -> dict[str, object]:
    """A saved stage config less the fields in `_NOT_SETTINGS`."""
    return {k: v for k, v in saved.items() if k not in _NOT_SETTINGS}


def _write_results(rows: list[StageRow], config: PipelineConfig, general: list[GeneralRow] | None = None) -> None:
    general = general or []
    out = Path(config.out_dir)
    table = markdown_table(rows, config.eval_samples) + (general_table(general, config.eval_samples) if general else "")
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    if general:
        (out / "results_general.json").write_text(json.dumps([asdict(r) for r in general], indent=1) + "\n")
    print("\n" + table)
    print(f"run directory: {out}  (results.md; per stage: metrics.jsonl, curves.png, data.jsonl + stats, checkpoints)")
