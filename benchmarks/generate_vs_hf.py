"""Sampling throughput: r1lab's engine against transformers' `model.generate`, same weights.

The r1lab checkpoint is loaded by transformers; both sample 64 sequences x 128 new tokens
(temperature 1.0, top-p 0.95, no early stop) from the same prompts, in one process, the two
alternating for `--rounds` rounds (a shared machine's speed drifts over minutes); each side's time
is its median over the rounds. Ends with one JSON line; `ratio` is r1lab's tokens/s over
transformers'.

    .venv/bin/python benchmarks/generate_vs_hf.py [--preset tiny] [--device cpu|cuda] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM

from r1lab.engine import Engine, SamplingParams
from r1lab.model import Transformer, preset, save_pretrained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sequences", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--bf16", action="store_true", help="run both in bfloat16 weights")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per side, alternating")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    config = preset(args.preset).replace(num_nextn_predict_layers=0)
    ours = Transformer(config)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(ours, tmp)
        theirs = AutoModelForCausalLM.from_pretrained(tmp, dtype=dtype).to(args.device).eval()
    ours = ours.to(args.device, dtype).eval()
    prompts = torch.randint(2, config.vocab_size, (args.sequences, args.prompt_len))
    work = args.sequences * args.new_tokens

    engine = Engine(ours)
    params = SamplingParams(max_new_tokens=args.new_tokens, temperature=1.0, top_p=0.95, seed=0)
    engine.generate(prompts[:2].tolist(), SamplingParams(max_new_tokens=4))  # warm-up
    x = prompts.to(args.device)
    gen_kwargs = dict(do_sample=True, temperature=1.0, top_p=0.95, top_k=0, max_new_tokens=args.new_tokens,
                      min_new_tokens=args.new_tokens, pad_token_id=0, eos_token_id=None,
                      attention_mask=torch.ones_like(x))
    with torch.no_grad():
        theirs.generate(x[:2], **{**gen_kwargs, "max_new_tokens": 4, "min_new_tokens": 4,
                                  "attention_mask": torch.ones_like(x[:2])})

    def time_r1lab() -> float:
        start = time.perf_counter()
        out = engine.generate(prompts.tolist(), params)
        elapsed = time.perf_counter() - start
        assert sum(len(c.token_ids) for g in out for c in g) == work
        return elapsed

    def time_hf() -> float:
        with torch.no_grad():
            start = time.perf_counter()
            seqs = theirs.generate(x, **gen_kwargs)
            elapsed = time.perf_counter() - start
        assert seqs.shape == (args.sequences, args.prompt_len + args.new_tokens)
        return elapsed

    rounds = [(time_r1lab(), time_hf()) for _ in range(args.rounds)]
    t_ours, t_hf = statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)

    result = {"benchmark": "generate_vs_hf", "preset": args.preset, "device": args.device,
              "dtype": str(dtype).removeprefix("torch."), "threads": args.threads, "sequences": args.sequences,
              "new_tokens": args.new_tokens, "rounds": args.rounds,
              "r1lab_tok_s": round(work / t_ours, 1), "hf_tok_s": round(work / t_hf, 1),
              "r1lab_s": round(t_ours, 3), "hf_s": round(t_hf, 3), "ratio": round(t_hf / t_ours, 3)}
    print(f"r1lab {result['r1lab_tok_s']} tok/s, transformers {result['hf_tok_s']} tok/s", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
