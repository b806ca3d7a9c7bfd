"""All-scenario RL with reward models trained on world-written data alone, against the demo's data
(written + the SFT'd model's own replies judged by the world). No ratio: it prints what each gives.

For each variant: the demo's all-scenario stage (`pipeline.all_scenario_stage`: preference data, the
helpfulness and safety reward models, all-scenario RL), with the demo's settings but `n_sampled`,
then the policy judged on held-out general prompts and on the held-out reasoning problems (pass@1),
as the demo judges it (`pipeline.general_row`, `pipeline.evaluate`). The
reward models' held-out accuracy comes from their own `eval.json`. Ends with one JSON line.

    .venv/bin/python benchmarks/reward_model_data.py --init runs/demo/rejection/model --out runs/rm_data
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from r1lab.pipeline import PipelineConfig, all_scenario_stage, evaluate, general_row


def variant(name: str, n_sampled: int, init: Path, out: Path, demo: PipelineConfig) -> dict[str, object]:
    """The demo's all-scenario stage (`pipeline.all_scenario_stage`) with `n_sampled` judged prompts, in `out/name`."""
    t0 = time.perf_counter()
    config = dataclasses.replace(demo, out_dir=str(out / name), preference_data=dataclasses.replace(
        demo.preference_data, n_sampled=n_sampled))
    policy, _ = all_scenario_stage(config, init)
    accuracy = {rm: json.loads((out / name / "all_scenario" / rm / "eval.json").read_text())
                for rm in ("helpful_rm", "safety_rm")}
    general = general_row(name, policy, config)
    row = evaluate(f"all-scenario RL ({name})", policy, config, 0.0)
    return {"n_sampled": n_sampled, "reward_models": accuracy, "general": _figures(general),
            "pass_at_1": row.pass_at_1, "seconds": round(time.perf_counter() - t0, 1)}


def _figures(row: object) -> dict[str, object]:
    """A GeneralRow's figures, as the recorded lines hold them (no stage name)."""
    return {k: v for k, v in dataclasses.asdict(row).items() if k != "stage"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", required=True, help="the SFT'd model (the demo's runs/demo/rejection/model)")
    parser.add_argument("--out", default="runs/rm_data", help="run directory")
    args = parser.parse_args()
    demo, init, out = PipelineConfig(), Path(args.init), Path(args.out)
    before = general_row("before", init, dataclasses.replace(demo, out_dir=str(out)))
    result = {"benchmark": "reward_model_data", "init": str(init),
              "before": _figures(before),
              "written_only": variant("written_only", 0, init, out, demo),
              "written_and_sampled": variant("written_and_sampled", demo.preference_data.n_sampled, init, out, demo)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
