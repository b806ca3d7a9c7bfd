"""One bf16 training step of a tiny policy and a reward model (tests/test_parallel.py), in one
process under autocast (float32 weights) or as one of `torchrun`'s (`parallel.parallelize(...,
bf16=True)`: FSDP2 gathers bf16 weights).

    python tests/precision_worker.py OUT                       # the whole batch, one process
    torchrun --nproc_per_node 2 tests/precision_worker.py OUT  # two rows a process

Writes OUT/report.json (rank 0): the dtype of the weights each module computed with (read as its
forward starts), the dtypes of the parameters and the optimizer state it keeps, the policy's loss
on the whole batch, its gradient (flattened, from the whole model; and the share of its values
that bf16 cannot hold) and the reward model's scores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from r1lab import parallel, runtime
from r1lab.model import Transformer, preset
from r1lab.model.moe import Router
from r1lab.model.reward import RewardModel

ROWS, T = 4, 12


def watch(modules: dict[str, torch.nn.Module]) -> dict[str, str]:
    """name -> the dtype of the module's weight as its (first) forward starts: after FSDP2's own
    pre-forward hook, registered first, gathered it (its post-forward hook frees it again)."""
    seen: dict[str, str] = {}
    for name, module in modules.items():
        def hook(m: torch.nn.Module, args: object, name: str = name) -> None:
            seen.setdefault(name, str(m.weight.dtype))
        module.register_forward_pre_hook(hook)
    return seen


def whole(t: torch.Tensor) -> torch.Tensor:
    """A plain tensor of a tensor or of a sharded DTensor (gathered: every process must call this)."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def main(out: Path) -> None:
    world = parallel.init()
    torch.manual_seed(0)
    policy = Transformer(preset("tiny").replace(vocab_size=64, pad_token_id=0, num_nextn_predict_layers=0))
    rm = RewardModel.from_policy(policy, seed=0)
    ids = torch.randint(3, 64, (ROWS, T), generator=torch.Generator().manual_seed(1))  # (B, T), no padding
    labels = torch.cat([ids[:, 1:], torch.full((ROWS, 1), -100)], dim=1)  # (B, T): the next token
    rows = parallel.shard(list(range(ROWS)), world)
    policy, rm = parallel.parallelize(policy, world, bf16=True), parallel.parallelize(rm, world, bf16=True)
    seen = watch({"attention": policy.model.layers[1].self_attn.o_proj, "head": policy.lm_head,
                  "router": next(m for m in policy.modules() if isinstance(m, Router)), "score": rm.score})
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    with runtime.autocast(True):
        loss = policy.loss(ids[rows], labels[rows]).loss  # a token mean: the processes' rows are equally long
        scores = rm(ids[rows])  # (rows,)
    loss.backward()  # FSDP2 averages the gradients over the processes: the whole batch's mean
    grad = torch.cat([whole(p.grad).flatten() for p in policy.parameters() if p.grad is not None])
    optimizer.step()
    scored = parallel.gather(list(zip(rows, scores.tolist())), world) or []  # (row, score) of every process
    report = {
        "world": world.size, "seen": seen,
        "parameters": sorted({str(p.dtype) for p in policy.parameters()}),
        "optimizer_state": sorted({str(v.dtype) for s in optimizer.state.values() for v in s.values() if v.dim()}),
        "loss": parallel.all_sum([loss.item() * len(rows)], world)[0] / ROWS,
        "grad": grad.tolist(),
        # bf16 gradients averaged in float32 fall between bf16 values; averaged in bf16, none would
        "grad_off_bf16": (grad.bfloat16().float() != grad).float().mean().item(),
        "scores": [score for _, score in sorted(pair for part in scored for pair in part)],  # in row order
    }
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report))
    parallel.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
