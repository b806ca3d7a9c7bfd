"""One GRPO update on a fixed batch, in one process or as one of `torchrun`'s (tests/test_parallel.py).

    python tests/distributed_worker.py OUT AGGREGATION [DROP]     # the whole batch in one process
    torchrun --nproc_per_node 2 tests/distributed_worker.py ...   # each process its share of the groups

DROP (dynamic sampling): "odd" gives prompts 1 and 3 equal rewards, so that rank 1 of two keeps no
group; "last" gives prompt 3 equal rewards and trains in 3 minibatches, so that rank 1's rows (one
group) leave one of its minibatches empty.

Writes OUT/weights.pt (the updated policy, whole) and OUT/report.json (the update's statistics, and
checks that need the sharded model: the engine's copy and a reference reset hold the policy's weights).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from r1lab import parallel
from r1lab.engine import Completion
from r1lab.model import Transformer, preset
from r1lab.rewards import RubricResult
from r1lab.stages import grpo
from r1lab.stages.rollout import Rollout, build_batch

PROMPTS, G = 4, 2


def rollout(groups: list[int], equal: tuple[int, ...] = ()) -> Rollout:
    """The completions of prompts `groups`: lengths 2-7, one cut by the length limit per prompt;
    prompts `equal` get the same reward for every completion (a group dynamic sampling drops)."""
    prompts, comps, rewards = [], [], []
    for j, p in enumerate(groups):
        prompts.append([1, 5 + p, 7 + p][:2 + p % 2])
        for g in range(G):
            n = 2 + (p * G + g) % 6
            ids = [(3 + 5 * p + 7 * g + 3 * t) % 60 + 3 for t in range(n)]
            logp = [-4.16 + 0.05 * ((t + p + g) % 4 - 1.5) for t in range(n)]  # near the model's: ratios near 1
            comps.append(Completion(prompt_index=j, token_ids=ids, logprobs=logp, text="",
                                    finish_reason="length" if g == 0 and p % 2 else "stop"))
            rewards.append(1.0 if p in equal else float((p + g) % 3))
    return Rollout(prompts=prompts, completions=comps, examples=[None] * len(comps),
                   rewards=RubricResult(total=rewards, per_term={}), group_size=G)


def main(out: Path, aggregation: str, drop: str = "") -> None:
    world = parallel.init("cpu")
    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=64)).train()  # MTP kept: a unit RL never runs
    ref = Transformer(preset("tiny").replace(vocab_size=64)).eval()  # another draw: a KL term that matters
    model, ref = parallel.parallelize(model, world), parallel.parallelize(ref, world)
    config = grpo.GRPOConfig(group_size=G, minibatches=3 if drop == "last" else 1, ppo_epochs=2, kl_coef=0.05, lr=1.0,
                             clip_eps_low=0.1, clip_eps_high=0.1, loss_aggregation=aggregation, mask_truncated=True,
                             max_new_tokens=8, dynamic_sampling=bool(drop))
    roll = rollout(parallel.shard(list(range(PROMPTS)), world), equal={"": (), "odd": (1, 3), "last": (3,)}[drop])
    rewards = torch.tensor(roll.rewards.total).view(-1, G)
    advantages = (rewards - rewards.mean(1, keepdim=True)).flatten()
    batch = build_batch(roll, advantages, pad_id=0, drop_equal_groups=config.dynamic_sampling, mask_truncated=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)  # Adam would magnify rounding-level gradients
    stats = grpo.policy_update(model, ref, optimizer, batch, config, step=0, world=world)
    whole = parallel.unsharded(model, world)
    sampler = parallel.sampling_copy(model, world)  # what the engine would sample from next
    ref.load_state_dict(model.state_dict())  # a reference reset, shards onto shards
    ref_whole = parallel.unsharded(ref, world)
    if world.main:
        weights = whole.state_dict()
        report = {"world": world.size, "stats": stats, "rows": int(batch.tokens.shape[0]),
                  "sampler_is_policy": all(torch.equal(v, weights[k]) for k, v in sampler.state_dict().items()),
                  "reset_is_policy": all(torch.equal(v, weights[k]) for k, v in ref_whole.state_dict().items())}
        out.mkdir(parents=True, exist_ok=True)
        torch.save(weights, out / "weights.pt")
        (out / "report.json").write_text(json.dumps(report))
    parallel.barrier(world)


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:])
