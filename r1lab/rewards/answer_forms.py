"""Normal forms of final answers: the exact fast path of answer checking, and majority voting.

Plain numbers (thousands separators, decimals, LaTeX spacing and markup allowed) compare as exact
fractions in-process; answers that differ only in markup share a normal form (`canonical_answer`,
which majority voting groups by). `fast_verdict` decides what these forms can; the rest goes to
math-verify (`r1lab.rewards.math`), whose input `for_math_verify` prepares alike. Never raises.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal
from fractions import Fraction


_MATH_DELIMITERS = (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_GAP = r"(?:\s|\\[!,;: ])+"  # whitespace and LaTeX spacing
# Spacing between digits is a thousands separator ("10\,080", "1 000 000") only after 1-3 digits
# and before exactly 3; any other gap separates two numbers ("1 2" is not 12) and stays a space.
_THOUSANDS_GAP = re.compile(rf"(?<![\d.])(\d{{1,3}}){_GAP}(?=\d{{3}}(?!\d))")
_DIGIT_GAP = re.compile(rf"(?<=\d){_GAP}(?=\d)")
# LaTeX spacing after a digit's comma before 3 digits ("10,\\!080", MATH's thousands): kept, it became a
# space and math-verify read "10, 080" as the set {10, 80}; it reads "10,080" as 10080
_THOUSANDS_COMMA_SPACING = re.compile(r"(?<=\d),(?:\\[!,;: ]\s*)+(?=\d{3}(?!\d))")
_SPACING = re.compile(r"\\\\|\\(?:[!,;: ]|q?quad(?![a-zA-Z]))")  # `\\` (a matrix's row break) kept whole
# A number set in text or bold (AoPS writes AIME answers as `\textbf{(073)}`) is the number:
# math-verify reads `\text{073}`, `\mathbf{0.5}` or `\text{1,000}` as a word, equal to no number.
_TEXT_NUMBER = re.compile(r"\\(?:text|textbf|textrm|mathbf|mathrm|mbox)\s*+\{([\s()+\-.,]*+\d[\s()+\-.,\d]*+)\}")
# A number and its unit words (3+ letters, as _UNIT_WORDS) set in text together ("\\text{18 hours}") are read
# as "18 \\text{ hours}" is: math-verify read the whole as one word, equal to no number
_TEXT_NUMBER_UNIT = re.compile(r"\\(?:text|textrm|mathrm|mbox)\s*+\{\s*+(-?\d[\d,]*+(?:\.\d++)?)(\s++[A-Za-z]{3}[A-Za-z\s-]*+)\}")
# Markup goes before the gaps are read: removed after them, "$5$ $6$" and "\$1 \$2" read as 56 and 12
_MARKUP = re.compile(r"\\(?:left|right)(?![a-zA-Z])|\\\$|\$")
_REMOVED = re.compile(r"\\[!,;: ]|(?<!\d)\s+|\s+(?!\d)")
# A comma then whitespace lists numbers ("1, 234" is two): no thousands separator is written so
# ("1,\\!234" is one); removed with the whitespace, "1, 234" read as 1234
_LIST_COMMA = re.compile(r",\s")
_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|[+-]?\.\d+")
# Numbers the normal form keeps apart ("3 5"): math-verify adds them up (reads "3 5" as 8)
_NUMBERS = re.compile(rf"(?:{_NUMBER.pattern})(?: (?:{_NUMBER.pattern}))+")
# A plain number then only words ("1,250 dollars", "12 red apples"): GSM8K-style answers with their
# unit. The words must be of 3+ letters and not maths ("5 x", "2 pi", "3 sqrt" stay as they are).
_UNIT_WORDS = re.compile(rf"({_NUMBER.pattern})\s+[A-Za-z]{{3,}}(?:[\s-]+[A-Za-z]+)*\.?")
# Two numbers with words set in text between them ("5 \\text{ hours } 30 \\text{ minutes}"): math-verify
# reads only the first number, so against a plain number it paid "5 hours 30 minutes" as 5
_TEXT_BETWEEN_NUMBERS = re.compile(r"\d\s*\\(?:text|textrm|mathrm|mbox)\s*\{(?=[^{}]*[A-Za-z])[^{}]*+\}\s*[-+]?\d")
_MATH_WORDS = {"sqrt", "inf", "infty", "infinity", "sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "mod"}
# Longer "numbers" are not converted: int() refuses strings of over 4,300 digits (CPython's
# int_max_str_digits) and no gold answer comes near this length.
_MAX_NUMBER_CHARS = 1000
# Words that scale a number rather than name its unit: dropped like a unit, "3 million" equalled 3
# and not 3000000, and "25 percent" equalled 25 but not 0.25 (as "25\\%" does)
_SCALE_WORDS = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12, "dozen": 12}
_TEXT_SCALE_WORD = re.compile(r"\\(?:text|textrm|mathrm|mbox)\s*\{\s*((?:hundred|thousand|million|billion|"
                              r"trillion|dozen)s?|percent)\s*\}")
_EXACT = Context(prec=_MAX_NUMBER_CHARS + 20)
# U+2212, the minus sign of typeset text: models copy it, and as "-" it is the same number
# (unmapped, "−5" and "-5" voted apart and "−1,000" read as the set {−1, 0} in math-verify)
_UNICODE_MINUS = "\u2212"


def canonical_answer(answer: str) -> str:
    r"""A normal form for cheap comparisons and majority voting.

    Removes math delimiters, ``$``/``\$``, ``\left``/``\right``, LaTeX spacing and whitespace
    (between two digits only when it separates thousands: ``"1 2"`` stays two numbers), a
    trailing period, and writes ``\dfrac``/``\tfrac`` as ``\frac`` and the minus sign U+2212 as
    ``-``; a plain number (thousands
    separators allowed, at most 1,000 characters) becomes its exact value, so ``"1,000.0"`` ->
    ``"1000"`` and ``"0.5"`` -> ``"1/2"``; a plain number then ``%``, ``\%`` or "percent" becomes
    its exact value then ``\%`` (``"12.50%"`` -> ``"25/2\%"``). Never raises.

    >>> canonical_answer(r"$\$1,000.50$"), canonical_answer(r"\dfrac{1}{2}"), canonical_answer("025")
    ('2001/2', '\\frac{1}{2}', '25')
    """
    text, value = _normal_form(answer)
    if value is not None:
        return _exact(value)
    percent = _percent_number(answer, text)  # "50%" and "50\%" differ only in markup (they voted apart)
    return text if percent is None else f"{_exact(percent)}\\%"


def _exact(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _normal_form(answer: str) -> tuple[str, Fraction | None]:
    """The normalised text of an answer and, when it is a plain decimal number, its exact value."""
    text = _text_numbers(answer.replace(_UNICODE_MINUS, "-")).strip()
    for left, right in _MATH_DELIMITERS:
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            text = text[len(left):len(text) - len(right)].strip()
    text = text.replace("{,}", ",").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _without_unit_words(_DIGIT_GAP.sub(" ", _THOUSANDS_GAP.sub(r"\1", _MARKUP.sub("", text))))
    listed = _LIST_COMMA.search(text) is not None
    text = _REMOVED.sub("", text).rstrip(".")
    plain = len(text) <= _MAX_NUMBER_CHARS and _NUMBER.fullmatch(text)
    if plain and listed:  # a list, kept apart from the number its digits would make
        return text.replace(",", ", "), None
    return text, Fraction(text.replace(",", "")) if plain else None


def _text_numbers(text: str) -> str:
    """Numbers set in text taken out of it: ``\\text{073}`` -> ``073``, ``\\text{18 hours}`` -> ``18\\text{ hours}``
    (not ``\\text{2 pi}``: a maths word is no unit)."""
    def split(unit: re.Match[str]) -> str:
        return unit[0] if _MATH_WORDS & set(unit[2].lower().split()) else f"{unit[1]}\\text{{{unit[2]}}}"

    return _TEXT_NUMBER_UNIT.sub(split, _TEXT_NUMBER.sub(r"\1", text))


def _without_unit_words(text: str) -> str:
    """The number of "<number> <words>" when no word is maths, else the text unchanged; leading
    scale words multiply it ("3 million" -> "3000000") and "percent" makes it "p\\%"."""
    unit = _UNIT_WORDS.fullmatch(_TEXT_SCALE_WORD.sub(r" \1", text).strip())
    if unit is None or _MATH_WORDS & set(re.findall(r"[A-Za-z]+", text.lower())):
        return text
    words = re.findall(r"[A-Za-z]+", unit.group(0)[len(unit.group(1)):].lower())
    if words[0] == "percent":
        return f"{unit.group(1)}\\%"
    scale = 1
    for word in words:
        if word.removesuffix("s") not in _SCALE_WORDS:  # "3 millions" is no less 3,000,000
            break
        scale *= _SCALE_WORDS[word.removesuffix("s")]
    if scale == 1:
        return unit.group(1)
    # exact: the default context (28 digits) would round a long number
    return format(_EXACT.multiply(Decimal(unit.group(1).replace(",", "")), scale), "f")


def _too_long_number(text: str) -> bool:
    return len(text) > _MAX_NUMBER_CHARS and _NUMBER.fullmatch(text) is not None


def _percent_number(answer: str, text: str) -> Fraction | None:
    """p for an answer whose normal form `text` is "p%" or "p\\%" with p a plain number, else None;
    None for a list ("1, 234%"), whose comma the normal form no longer shows as one."""
    if _LIST_COMMA.search(answer):
        return None
    for sign in ("\\%", "%"):
        if text.endswith(sign):
            return _normal_form(text[:-len(sign)])[1]
    return None


def fast_verdict(pred: str | None, gold: str) -> bool | None:
    """True/False when decidable without math-verify, None when math-verify must decide."""
    if not isinstance(pred, str) or not pred.strip():
        return False
    (pred_text, pred_value), (gold_text, gold_value) = _normal_form(pred), _normal_form(gold)
    if pred_value is not None and gold_value is not None:
        return pred_value == gold_value  # two plain numbers: exact comparison
    # "p%" against a plain number equals p or p/100, as math-verify rules for integers only: it
    # has 25% = 25 but 12.5% != 12.5
    for percent, number in ((_percent_number(pred, pred_text), gold_value), (_percent_number(gold, gold_text), pred_value)):
        if percent is not None and number is not None:
            return number in (percent, percent / 100)
    if pred_text == gold_text:
        return True
    if _too_long_number(pred_text) or _too_long_number(gold_text):
        return False  # equal only as identical text; math-verify's sympy would choke on it too
    if _NUMBERS.fullmatch(pred_text) or _NUMBERS.fullmatch(gold_text):
        return False  # two numbers are not their sum, and equal no one number
    if gold_value is not None and _TEXT_BETWEEN_NUMBERS.search(pred_text):
        return False
    return None


def for_math_verify(text: str) -> str:
    """An answer as math-verify should read it: numbers in ``\\text{}`` and thousands gaps as the
    fast path reads them (``"10\\,080"`` and ``"10,\\!080"`` are 10080), which math-verify would not;
    other LaTeX spacing is a plain space (math-verify read ``"1,250\\,\\text{km}"`` as the set
    {1, 250}); a matrix's row break ``\\\\`` untouched; a number's unit words dropped (it read
    "0.5 dollars" as a product); the last side of an equation written as its value when it is a plain
    number (it read "x = 1,000" as x = {1, 0})."""
    text = _plain_last_side(text.replace(_UNICODE_MINUS, "-"))
    text = _without_unit_words(_THOUSANDS_GAP.sub(r"\1", _text_numbers(text)))
    text = _THOUSANDS_COMMA_SPACING.sub(",", text)
    return _SPACING.sub(lambda m: m.group() if m.group() == "\\\\" else " ", text)


def _plain_last_side(text: str) -> str:
    """`text` with the side after its last ``=`` written as its exact value ("x = 1,000" ->
    "x = 1000"), when that side is a plain number as the fast path reads it; else unchanged."""
    left, equals, right = text.rpartition("=")
    value = _normal_form(right)[1] if equals else None
    return text if value is None else f"{left}= {_exact(value)}"
