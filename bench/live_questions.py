"""The live cascade benchmark's questions: checkable answers, four domains, a fixed split.

Two sources, both the project's own (Apache-2.0, as the project):

* the shipped tasks (`orchestrator/localmodels/datasets/tasks/`): 40 legal and 40 medical
  four-option multiple-choice questions and 40 "what does this Python print" questions,
  written for Spillway (see that directory's README);
* short facts with a numeric answer, 12 per domain, written here (`FACTS`);
* questions generated here from templates with a seeded RNG, their answers computed, easy to
  harder: arithmetic and word problems (general), dose and rate calculations (medical), fee,
  deposit and deadline calculations (legal), and short Python snippets whose printed output is
  computed by running them (code). Nothing comes from a public benchmark.

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
    a, b, c = rng.randint(10, 60), rng.randint(3, 12), rng.randint(2, 9)
    x, y = rng.randint(2, 12), rng.randint(2, 12)
    choices: list[tuple[str, int]] = [
        (f"What is {a} + {b * 3}?", a + b * 3),
        (f"What is {a + 40} - {b * 2}?", a + 40 - b * 2),
        (f"What is {x} × {y}?", x * y),
        (f"Tom has {a} apples and eats {c}. How many apples are left?", a - c),
        (f"A box holds {b} eggs. How many eggs are in {c} boxes?", b * c),
        (f"What is {a} × {c}?", a * c),
        (
            f"Tom has {a} marbles and buys {c} bags of {b} marbles each. How many marbles "
            "does he have now?",
            a + b * c,
        ),
        (f"Anna reads {b} pages a day. How many pages does she read in {c} weeks?", b * 7 * c),
    ]
    return rng.choice(choices)


def _medical(rng: random.Random) -> tuple[str, int]:
    w, d, n = rng.randint(40, 90), rng.randint(2, 10), rng.randint(2, 3)
    m, beats, hours = rng.choice([100, 200, 250, 500]), rng.randint(15, 30), rng.randint(2, 8)
    rate = rng.choice([50, 100, 125, 150])
    choices: list[tuple[str, int]] = [
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
            f"A patient weighs {w} kg. The prescribed dose is {d} mg per kg of body weight. "
            "How many mg is one dose?",
            w * d,
        ),
    ]
    return rng.choice(choices)


def _legal(rng: random.Random) -> tuple[str, int]:
    award, pct = rng.randint(2, 90) * 1000, rng.choice([10, 20, 25, 30, 40])
    rent, months, years = rng.randint(6, 30) * 50, rng.randint(2, 3), rng.randint(2, 10)
    year, per_day, days = rng.randint(1995, 2020), rng.randint(1, 5) * 10, rng.randint(2, 10)
    choices: list[tuple[str, int]] = [
        (
            f"The statute of limitations for a claim is {years} years. The claim arose in "
            f"{year}. In which year does the limitation period end?",
            year + years,
        ),
        (
            f"A lease sets the monthly rent at ${rent} and the security deposit at {months} "
            "months' rent. How many dollars is the deposit?",
            rent * months,
        ),
        (
            f"A contract charges a penalty of ${per_day} for each day of late delivery. The "
            f"goods arrive {days} days late. How many dollars is the penalty?",
            per_day * days,
        ),
        (
            f"A court awards ${award} in damages and the lawyer's contingency fee is {pct}% of "
            "the award. How many dollars is the fee?",
            award * pct // 100,
        ),
    ]
    return rng.choice(choices)


def _snippet(rng: random.Random) -> str:
    nums = [rng.randint(1, 30) for _ in range(rng.randint(4, 6))]
    word = rng.choice(["spillway", "cascade", "router", "adapter", "ledger", "python", "engine"])
    i, k, n = rng.randint(0, 3), rng.randint(2, 5), rng.randint(3, 6)
    a, b = rng.randint(2, 20), rng.randint(2, 20)
    choices = [
        f"nums = {nums}\nprint(nums[{i}])",
        f"nums = {nums}\nprint(len(nums))",
        f"s = {word!r}\nprint(s.upper())",
        f"a = {a}\nb = {b}\nprint(a + b)",
        f"nums = {nums}\nprint(nums[{i}] + nums[-1])",
        f"s = {word!r}\nprint(s[{i}:{i + k}])",
        f"total = 0\nfor i in range({n}):\n    total += i\nprint(total)",
        f"nums = {nums}\nprint(max(nums) - min(nums))",
        f"s = {word!r}\nprint(s[::-1][:{k}])",
    ]
    return rng.choice(choices)


# Short facts with one numeric answer, written for this benchmark (the project's own text).
FACTS: dict[str, list[tuple[str, str]]] = {
    "general": [
        ("How many days are in a week?", "7"),
        ("How many minutes are in an hour?", "60"),
        ("How many continents are there on Earth?", "7"),
        ("How many legs does a spider have?", "8"),
        ("How many sides does a hexagon have?", "6"),
        ("How many months are in a year?", "12"),
        ("At what temperature in degrees Celsius does water boil at sea level?", "100"),
        ("How many hours are in a day?", "24"),
        ("How many players are on the field for one soccer team?", "11"),
        ("How many degrees are in a right angle?", "90"),
        ("How many planets are in the Solar System?", "8"),
        ("How many centimetres are in a metre?", "100"),
    ],
    "medical": [
        ("How many chambers does the human heart have?", "4"),
        ("How many bones are in the adult human body?", "206"),
        ("How many pairs of chromosomes do humans normally have?", "23"),
        ("What is normal human body temperature in degrees Celsius, to the nearest degree?", "37"),
        ("How many teeth does a typical adult human have, including wisdom teeth?", "32"),
        ("How many lungs does a human have?", "2"),
        ("How many kidneys does a healthy human usually have?", "2"),
        ("How many milligrams are in one gram?", "1000"),
        ("How many weeks does a full-term human pregnancy last, approximately?", "40"),
        ("How many vertebrae are in the human cervical spine?", "7"),
        ("How many chambers of the heart are called ventricles?", "2"),
        ("How many millilitres are in one litre?", "1000"),
    ],
    "legal": [
        ("How many justices sit on the US Supreme Court?", "9"),
        ("How many amendments make up the US Bill of Rights?", "10"),
        ("How many senators does each US state have?", "2"),
        ("What is the minimum age to be President of the United States?", "35"),
        ("How many years is one term of a US senator?", "6"),
        ("How many years is one term of a member of the US House of Representatives?", "2"),
        ("How many years is one term of the US President?", "4"),
        ("How many jurors sit on a traditional US criminal jury?", "12"),
        ("How many articles does the original US Constitution have?", "7"),
        ("How many members does the US House of Representatives have?", "435"),
        ("What is the voting age in US federal elections?", "18"),
        ("How many US states are there?", "50"),
    ],
    "code": [
        ("How many bits are in a byte?", "8"),
        ("In Python, what is 7 // 2?", "3"),
        ("In Python, what is 2 ** 10?", "1024"),
        ("In Python, what is 17 % 5?", "2"),
        ("In Python, what does len('hello') return?", "5"),
        ("What is the decimal value of the binary number 101?", "5"),
        ("In Python, what is the index of the first element of a list?", "0"),
        ("What is the decimal value of hexadecimal FF?", "255"),
        ("In Python, what does len([1, 2, 3]) return?", "3"),
        ("In Python, what is 10 - 3 * 2?", "4"),
        ("In Python, what does int('42') + 1 return?", "43"),
        ("How many bits are in an IPv4 address?", "32"),
    ],
}


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


def _facts(domain: str) -> list[Question]:
    kind = "number"
    return [
        Question(f"{domain}-f{i:03d}", domain, kind, f"{text} {NUMBER_HINT}", answer, "facts")
        for i, (text, answer) in enumerate(FACTS[domain])
    ]


def build_questions(per_domain: int = 120, seed: int = 15) -> list[Question]:
    """`per_domain` questions in each domain: the shipped tasks, the facts, then generated ones."""
    rng = random.Random(seed)
    questions: list[Question] = []
    for domain in DOMAINS:
        fixed = (_shipped(domain) + _facts(domain))[:per_domain]
        questions += fixed + _generated(domain, per_domain - len(fixed), rng)
    return questions


def split(
    questions: list[Question], calibration_share: float = 0.4, seed: int = 15
) -> tuple[list[Question], list[Question]]:
    """(calibration, test), stratified by domain; both interleaved by domain, so `--limit N`
    takes a mix."""
    rng = random.Random(seed)
    calibration: dict[str, list[Question]] = {}
    test: dict[str, list[Question]] = {}
    for domain in DOMAINS:
        group = [q for q in questions if q.domain == domain]
        rng.shuffle(group)
        cut = round(len(group) * calibration_share)
        calibration[domain], test[domain] = group[:cut], group[cut:]
    return _interleave(calibration), _interleave(test)


def _interleave(groups: dict[str, list[Question]]) -> list[Question]:
    """One question of each domain in turn, so any prefix is a mix."""
    mixed: list[Question] = []
    for i in range(max((len(g) for g in groups.values()), default=0)):
        mixed += [g[i] for g in groups.values() if i < len(g)]
    return mixed


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
