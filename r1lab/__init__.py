"""r1lab: the DeepSeek-R1 training recipe, end to end.

Stages live in `r1lab.stages`, the DeepSeek-V3 model in `r1lab.model`, rule-based rewards in
`r1lab.rewards`, and the built-in miniature reasoning world in `r1lab.world`.
"""

__version__ = "0.1.0"
