"""The live cascade benchmark's questions: checkable answers, four domains, a fixed split.

Two sources, both the project's own (Apache-2.0, as the project):

* the shipped tasks (`orchestrator/localmodels/datasets/tasks/`): 40 legal and 40 medical
  four-option multiple-choice questions and 40 "what does this Python print" questions,
  written for Spillway (see that directory's README);
* questions generated here from templates with a seeded RNG, their answers computed: arithmetic
  and word problems (general), dose and rate calculations (medical), fee, deposit and deadline
  calculations (legal), and short Python snippets whose printed output is computed by running
  them (code). Nothing comes from a public benchmark.

Every question asks for the bare answer (a number, a letter, the output), so answers are short
and graded exactly (`grade`). `split` shuffles with a fixed seed and cuts a calibration part
and a test part, stratified by domain.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

TASKS = Path(__file__).resolve().parents[1] / "orchestrator" / "localmodels" / "datasets" / "tasks"
DOMAINS = ("legal", "medical", "code", "general")
NUMBER_HINT = "Answer with the number only."
LETTER_HINT = "Answer with the letter only."


@dataclass(frozen=True)
class Question:
    qid: str
    domain: str  # the domain it was written for (the router may route it elsewhere)
    kind: str  # number | letter | output
    text: str  # what is sent as the user message
    answer: str
    source: str  # shipped | generated


Template = Callable[[random.Random], tuple[str, int]]


def _general(rng: random.Random) -> tuple[str, int]:
    a, b, c = rng.randint(12, 99), rng.randint(3, 19), rng.randint(2, 9)
    choices: list[tuple[str, int]] = [
        (f"What is {a * 7} + {b * 13}?", a * 7 + b * 13),
        (f"What is {a} × {b}?", a * b),
        (f"What is {a * 11} - {b * 6}?", a * 11 - b * 6),
        (
            f"Tom has {a} marbles and buys {c} bags of {b} marbles each. How many marbles "
            "does he have now?",
            a + b * c,
        ),
        (f"A car travels at {a} km per hour for {c} hours. How many km does it travel?", a * c),
        (f"A box holds {b} eggs. How many eggs are in {a} boxes?", a * b),
        (f"What is {a} × {b} + {c}?", a * b + c),
        (f"Anna reads {b} pages a day. How many pages does she read in {c} weeks?", b * 7 * c),
    ]
    return rng.choice(choices)


def _medical(rng: random.Random) -> tuple[str, int]:
    w, d, n = rng.randint(40, 110), rng.randint(2, 15), rng.randint(2, 4)
    m, beats, hours = rng.choice([250, 500, 100, 200]), rng.randint(15, 30), rng.randint(2, 12)
    rate = rng.choice([50, 75, 100, 125, 150])
    choices: list[tuple[str, int]] = [
        (
            f"A patient weighs {w} kg. The prescribed dose is {d} mg per kg of body weight. "
            "How many mg is one dose?",
            w * d,
        ),
        (
            f"A patient takes {n} tablets of {m} mg each per day. How many mg does the patient "
            "take per day?",
            n * m,
        ),
        (
            f"A nurse counts {beats} heartbeats in 15 seconds. What is the patient's heart "
            "rate in beats per minute?",
            beats * 4,
        ),
        (
            f"An IV infusion runs at {rate} mL per hour for {hours} hours. How many mL of "
            "fluid does the patient receive?",
            rate * hours,
        ),
        (
            f"A child weighing {w // 3} kg is prescribed {d} mg/kg of a drug twice a day. "
            "How many mg does the child receive per day?",
            (w // 3) * d * 2,
        ),
    ]
    return rng.choice(choices)


def _legal(rng: random.Random) -> tuple[str, int]:
    award = rng.randint(2, 90) * 1000
    pct = rng.choice([10, 20, 25, 30, 40])
    rent, months, years = rng.randint(6, 30) * 50, rng.randint(2, 3), rng.randint(2, 10)
    year, per_day, days = rng.randint(1995, 2020), rng.randint(2, 20) * 10, rng.randint(3, 30)
    choices: list[tuple[str, int]] = [
        (
            f"A court awards ${award} in damages and the lawyer's contingency fee is {pct}% of "
            "the award. How many dollars is the fee?",
            award * pct // 100,
        ),
        (
            f"A lease sets the monthly rent at ${rent} and the security deposit at {months} "
            "months' rent. How many dollars is the deposit?",
            rent * months,
        ),
        (
            f"The statute of limitations for a claim is {years} years. The claim arose in "
            f"{year}. In which year does the limitation period end?",
            year + years,
        ),
        (
            f"A contract charges a penalty of ${per_day} for each day of late delivery. The "
            f"goods arrive {days} days late. How many dollars is the penalty?",
            per_day * days,
        ),
        (
            f"A tenant owes {months + 1} months of rent at ${rent} a month. How many dollars "
            "does the tenant owe?",
            rent * (months + 1),
        ),
    ]
    return rng.choice(choices)


def _snippet(rng: random.Random) -> str:
    nums = [rng.randint(1, 30) for _ in range(rng.randint(4, 7))]
    word = rng.choice(["spillway", "cascade", "router", "adapter", "ledger", "python", "engine"])
    i, k, n = rng.randint(0, 3), rng.randint(2, 5), rng.randint(3, 7)
    choices = [
        f"nums = {nums}\nprint(nums[{i}] + nums[-1])",
        f"nums = {nums}\nprint(sum(nums[{i}:{i + 2}]))",
        f"s = {word!r}\nprint(s[{i}:{i + k}])",
        f"s = {word!r}\nprint(s[::-1][:{k}])",
        f"total = 0\nfor i in range({n}):\n    total += i * {k}\nprint(total)",
        f"nums = {nums}\nprint(max(nums) - min(nums))",
        f"s = {word!r}\nprint(len(s) * {k})",
        f"x = {nums[0]}\nif x % 2 == 0:\n    x = x // 2\nelse:\n    x = x * 3 + 1\nprint(x)",
        f"nums = {nums}\nprint(len([n for n in nums if n > {nums[1]}]))",
    ]
    return rng.choice(choices)


def _run(code: str) -> str:
    """The output of one generated snippet (generated above, never user input)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {})  # the snippets come from the templates above
    return out.getvalue().strip()


def _generated(domain: str, count: int, rng: random.Random) -> list[Question]:
    questions: list[Question] = []
    seen: set[str] = set()
    while len(questions) < count:
        if domain == "code":
            code = _snippet(rng)
            text = f"What does this Python code print?\n```python\n{code}\n```\n"
            text += "Answer with the output only."
            answer, kind = _run(code), "output"
        else:
            template = {"general": _general, "medical": _medical, "legal": _legal}[domain]
            question, value = template(rng)
            text, answer, kind = f"{question} {NUMBER_HINT}", str(value), "number"
        if text in seen:
            continue
        seen.add(text)
        qid = f"{domain}-g{len(questions):03d}"
        questions.append(Question(qid, domain, kind, text, answer, "generated"))
    return questions


def _shipped(domain: str) -> list[Question]:
    path = TASKS / f"{domain}.jsonl"
    if not path.exists():
        return []
    questions = []
    for number, line in enumerate(path.read_text().splitlines()):
        row = json.loads(line)
        kind = "output" if domain == "code" else "letter"
        text = row["question"] if domain == "code" else f"{row['question']}\n{LETTER_HINT}"
        questions.append(
            Question(f"{domain}-s{number:03d}", domain, kind, text, row["answer"], "shipped")
        )
    return questions


def build_questions(per_domain: int = 150, seed: int = 15) -> list[Question]:
    """`per_domain` questions in each domain: the shipped ones first, generated ones after."""
    rng = random.Random(seed)
    questions: list[Question] = []
    for domain in DOMAINS:
        shipped = _shipped(domain)[:per_domain]
        questions += shipped + _generated(domain, per_domain - len(shipped), rng)
    return questions


def split(
    questions: list[Question], calibration_share: float = 0.4, seed: int = 15
) -> tuple[list[Question], list[Question]]:
    """(calibration, test), stratified by domain; the test part is interleaved by domain so
    `--limit N` takes a mix."""
    rng = random.Random(seed)
    calibration: list[Question] = []
    by_domain: dict[str, list[Question]] = {}
    for domain in DOMAINS:
        group = [q for q in questions if q.domain == domain]
        rng.shuffle(group)
        cut = round(len(group) * calibration_share)
        calibration += group[:cut]
        by_domain[domain] = group[cut:]
    test: list[Question] = []
    for i in range(max(len(g) for g in by_domain.values())):
        test += [g[i] for g in by_domain.values() if i < len(g)]
    return calibration, test


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_LETTER = re.compile(r"\b([A-D])\b")


def extract(kind: str, text: str) -> str:
    """The answer a reply gives: its first number, first option letter, or first line."""
    text = text.strip()
    if kind == "number":
        match = _NUMBER.search(text)
        return match.group(0).replace(",", "").removesuffix(".0") if match else ""
    if kind == "letter":
        match = _LETTER.search(text)
        return match.group(1) if match else ""
    body = text.strip("`").removeprefix("python").removeprefix("text").strip()
    return body.splitlines()[0].strip() if body else ""


def grade(question: Question, reply: str) -> bool:
    """Whether a reply's answer is exactly the question's answer."""
    return extract(question.kind, reply) == question.answer.strip()


def as_dicts(questions: list[Question]) -> list[dict[str, str]]:
    return [asdict(q) for q in questions]
