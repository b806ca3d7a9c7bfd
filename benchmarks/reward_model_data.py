"""All-scenario RL with reward models trained on world-written data alone, against the demo's data
(written + the SFT'd model's own replies judged by the world). No ratio: it prints what each gives.

For each variant: preference data (`preference_data.run`), the helpfulness and safety reward models
(`reward_model.run`) and all-scenario RL (`all_scenario.run`), all with the demo's settings
(`PipelineConfig`'s) but `n_sampled`, then both models judged on held-out general prompts
(`evaluate_general`, the demo's k and seed) and on the held-out reasoning problems (pass@1). The
reward models' held-out accuracy comes from their own `eval.json`. Ends with one JSON line.

    .venv/bin/python benchmarks/reward_model_data.py --init runs/demo/rejection/model --out runs/rm_data
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from r1lab.pipeline import PipelineConfig, evaluate
from r1lab.stages import all_scenario, preference_data, reward_model


def variant(name: str, n_sampled: int, init: Path, out: Path, demo: PipelineConfig) -> dict[str, object]:
    t0, out = time.perf_counter(), out / name
    data = preference_data.run(dataclasses.replace(demo.preference_data, checkpoint=str(init), out_dir=str(out / "data"),
                                                   n_sampled=n_sampled, seed=demo.seed))
    models, accuracy = [], {}
    for rm_name, file in (("helpful_rm", preference_data.HELPFUL_FILE), ("safety_rm", preference_data.SAFETY_FILE)):
        model = reward_model.run(dataclasses.replace(getattr(demo, rm_name), data=str(data / file), init=str(init),
                                                     out_dir=str(out / rm_name), seed=demo.seed))
        models.append(model)
        accuracy[rm_name] = json.loads((out / rm_name / "eval.json").read_text())
    policy = all_scenario.run(dataclasses.replace(demo.all_scenario, init=str(init), out_dir=str(out / "rl"),
                                                  helpful_rm=str(models[0]), safety_rm=str(models[1]), seed=demo.seed))
    general = all_scenario.evaluate_general(policy, n_prompts=demo.eval_problems, k=demo.eval_samples, seed=demo.seed + 1)
    config = dataclasses.replace(demo, out_dir=str(out))
    row = evaluate(f"all-scenario RL ({name})", policy, config, 0.0)
    return {"n_sampled": n_sampled, "reward_models": accuracy, "general": dataclasses.asdict(general),
            "pass_at_1": row.pass_at_1, "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", required=True, help="the SFT'd model (the demo's runs/demo/rejection/model)")
    parser.add_argument("--out", default="runs/rm_data", help="run directory")
    args = parser.parse_args()
    demo, init, out = PipelineConfig(), Path(args.init), Path(args.out)
    before = all_scenario.evaluate_general(init, n_prompts=demo.eval_problems, k=demo.eval_samples, seed=demo.seed + 1)
    result = {"benchmark": "reward_model_data", "init": str(init), "before": dataclasses.asdict(before),
              "written_only": variant("written_only", 0, init, out, demo),
              "written_and_sampled": variant("written_and_sampled", demo.preference_data.n_sampled, init, out, demo)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
