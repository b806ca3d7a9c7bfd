"""`python -m r1lab ...`, and what torchrun runs: `torchrun --standalone --nproc_per_node 2 -m r1lab sft ...`."""

from r1lab.cli import main

raise SystemExit(main())
