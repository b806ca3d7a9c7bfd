"""Rule-based rewards (R1 §2.2.2): answer accuracy, format, code run against tests, language.

The contract, shared by every reward function here:

    reward(completion: str, example) -> float

`completion` is the model's text after the prompt; `example` is the task record the rule needs
(a world problem, a benchmark `Problem`, a `CodeTask`). A reward **never raises on model text**:
malformed text scores 0, and the reason goes to the debug log. Rewards that are expensive per
call (code execution, math-verify) also offer a batch form over many completions.

`Rubric` combines named reward functions with weights and reports each one's mean separately.
"""

from r1lab.rewards.format import format_reward, lenient_format_reward, r1_format_reward, strict_format_reward
from r1lab.rewards.rubric import RewardConfigError, RewardFn, RewardTerm, Rubric, RubricResult, ScenarioRubric

__all__ = ["RewardConfigError", "RewardFn", "RewardTerm", "Rubric", "RubricResult", "ScenarioRubric", "format_reward",
           "strict_format_reward", "lenient_format_reward", "r1_format_reward"]
