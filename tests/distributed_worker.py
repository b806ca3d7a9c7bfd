"""One GRPO update on a fixed batch, in one process or as one of `torchrun`'s (tests/test_parallel.py).

    python tests/distributed_worker.py OUT AGGREGATION [DROP]     # the whole batch in one process
    torchrun --nproc_per_node 2 tests/distributed_worker.py ...   # each process its share of the groups

`--expert-parallel` (anywhere) shards the routed experts by expert instead (r1lab/expert_parallel.py).

DROP (dynamic sampling): "odd" gives prompts 1 and 3 equal rewards, so that rank 1 of two keeps no
group; "last" gives prompt 3 equal rewards and trains in 3 minibatches, so that rank 1's rows (one
group) leave one of its minibatches empty. One process then trains on the same global minibatches
as two (`two_process_pieces`), so that their updates compare. "masked" drops prompt 3's group and
truncates both completions of prompt 1, so that rank 1's rows are all masked (overlong filtering)
while rank 0's are not.

Writes OUT/weights.pt (the updated policy, whole) and OUT/report.json (the update's statistics, and
checks that need the sharded model: the engine's copy and a reference reset hold the policy's weights).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from r1lab import parallel
from r1lab.engine import Completion
from r1lab.model import Transformer, preset
from r1lab.rewards import RubricResult
from r1lab.stages import grpo
from r1lab.stages.rollout import Rollout, build_batch

PROMPTS, G = 4, 2


def rollout(groups: list[int], equal: tuple[int, ...] = (), cut: tuple[int, ...] = ()) -> Rollout:
    """The completions of prompts `groups`: lengths 2-7, one cut by the length limit per odd prompt
    (every one of prompts `cut`); prompts `equal` get the same reward for every completion (a group
    dynamic sampling drops)."""
    prompts, comps, rewards = [], [], []
    for j, p in enumerate(groups):
        prompts.append([1, 5 + p, 7 + p][:2 + p % 2])
        for g in range(G):
            n = 2 + (p * G + g) % 6
            ids = [(3 + 5 * p + 7 * g + 3 * t) % 60 + 3 for t in range(n)]
            logp = [-4.16 + 0.05 * ((t + p + g) % 4 - 1.5) for t in range(n)]  # near the model's: ratios near 1
            comps.append(Completion(prompt_index=j, token_ids=ids, logprobs=logp, text="",
                                    finish_reason="length" if (g == 0 and p % 2) or p in cut else "stop"))
            rewards.append(1.0 if p in equal else float((p + g) % 3))
    return Rollout(prompts=prompts, completions=comps, examples=[None] * len(comps),
                   rewards=RubricResult(total=rewards, per_term={}), group_size=G)


def two_process_pieces() -> Callable[..., Iterator[torch.Tensor]]:
    """`grpo.minibatch_rows` for one process holding the kept groups 0, 1, 2 ("last"), giving the
    global minibatches of two: rank 0 holds groups 0 and 2 (rows 0, 1, 4, 5 here), rank 1 group 1
    (rows 2, 3); each splits its own rows with its own copy of the step's shuffle generator."""
    ranks = [torch.tensor([0, 1, 4, 5]), torch.tensor([2, 3])]
    generators: list[torch.Generator] = []

    def pieces(n: int, minibatches: int, generator: torch.Generator, keep_empty: bool = False) -> Iterator[torch.Tensor]:
        if not generators:  # both ranks start from the step's seed
            generators.extend(torch.Generator().set_state(generator.get_state()) for _ in ranks)
        split = [rows[torch.randperm(len(rows), generator=g)].tensor_split(minibatches)
                 for rows, g in zip(ranks, generators)]
        return (torch.cat(parts) for parts in zip(*split))

    return pieces


def main(out: Path, aggregation: str, drop: str = "", expert_parallel: bool = False) -> None:
    world = parallel.init("cpu")
    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=64)).train()  # MTP kept: a unit RL never runs
    ref = Transformer(preset("tiny").replace(vocab_size=64)).eval()  # another draw: a KL term that matters
    model, ref = (parallel.parallelize(m, world, expert_parallel=expert_parallel) for m in (model, ref))
    config = grpo.GRPOConfig(group_size=G, minibatches=3 if drop == "last" else 1, ppo_epochs=2, kl_coef=0.05, lr=1.0,
                             clip_eps_low=0.1, clip_eps_high=0.1, loss_aggregation=aggregation, mask_truncated=True,
                             max_new_tokens=8, dynamic_sampling=bool(drop))
    roll = rollout(parallel.shard(list(range(PROMPTS)), world), equal={"": (), "odd": (1, 3)}.get(drop, (3,)),
                   cut=(1,) if drop == "masked" else ())
    rewards = torch.tensor(roll.rewards.total).view(-1, G)
    advantages = (rewards - rewards.mean(1, keepdim=True)).flatten()
    batch = build_batch(roll, advantages, pad_id=0, drop_equal_groups=config.dynamic_sampling, mask_truncated=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)  # Adam would magnify rounding-level gradients
    if drop == "last" and not world.distributed:
        grpo.minibatch_rows = two_process_pieces()
    stats = grpo.policy_update(model, ref, optimizer, batch, config, step=0, world=world)
    every = parallel.gather(stats, world)  # each process's statistics (rank 0 reports its own as `stats`)
    whole = parallel.unsharded(model, world)
    sampler = parallel.sampling_copy(model, world)  # what the engine would sample from next
    ref.load_state_dict(model.state_dict())  # a reference reset, shards onto shards
    ref_whole = parallel.unsharded(ref, world)
    if world.main:
        weights = whole.state_dict()
        report = {"world": world.size, "stats": stats, "every": every, "rows": int(batch.tokens.shape[0]),
                  "sampler_is_policy": all(torch.equal(v, weights[k]) for k, v in sampler.state_dict().items()),
                  "reset_is_policy": all(torch.equal(v, weights[k]) for k, v in ref_whole.state_dict().items()),
                  "experts": type(model.model.layers[1].mlp.experts).__name__}
        out.mkdir(parents=True, exist_ok=True)
        torch.save(weights, out / "weights.pt")
        (out / "report.json").write_text(json.dumps(report))
    parallel.barrier(world)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--expert-parallel"]
    main(Path(args[0]), *args[1:], expert_parallel="--expert-parallel" in sys.argv)
    parallel.close()  # as the command line ends a run that succeeded: no abort at exit
    parallel.end_process(0)
