"""What the committed course notebooks must contain, read from their JSON (nothing executed).

nbval runs the notebooks; these tests check what a reader gets that running cannot: at least two
exercises per notebook, each with a hidden solution that asserts its claim (so nbval catches a
solution that stops being true); no measured number typed into a Markdown cell, where it would
drift from the outputs on the next run; a clock that reports the notebook's measured run time
instead of a promised one; and committed outputs free of errors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MIN_EXERCISES = 2

# Numbers a Markdown cell may state because nobody measured them here: the paper's
# hyperparameters and reported results, and configuration values the notebooks set in code.
ALLOWED_DECIMALS = {
    # UNIT's objective and optimiser (paper): lambda_1 = lambda_3 = 0.1, Adam betas (0.5, 0.999)
    "0.1",
    "0.5",
    "0.999",
    # the paper's adaptation accuracies (SVHN->MNIST, MNIST->USPS, USPS->MNIST)
    "0.9053",
    "0.9597",
    "0.9358",
    # the paper's map accuracy, and its ablations (no weight sharing, no cycle)
    "0.600",
    "0.569",
    "0.568",
    # the cpu-translate preset's cycle weight (unitlab/adapt/config.py)
    "0.01",
}

# A decimal, a percentage, or a duration: the shapes a measurement takes in prose.
NUMBER = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?)\s?(?:s|sec|seconds?|min|minutes?|hours?)\b"
    r"|(?<![\w.])(\d+(?:\.\d+)?)\s?%"
    r"|(?<![\w.$\\])(\d+\.\d+)(?![\w.])"
)
# Math and code spans are formulas and identifiers, and "Exercise 2.1" a name, not claims.
NOT_PROSE = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|```.*?```|`[^`]*`|Exercise\s+\d+\.\d+", re.DOTALL)


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def source(cell: dict[str, Any]) -> str:
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def tags(cell: dict[str, Any]) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def exercises(cells: list[dict[str, Any]]) -> list[tuple[int, list[dict[str, Any]]]]:
    """Each exercise's opening Markdown cell index, and the cells up to the next exercise."""
    starts = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "markdown"
        and "exercise" in tags(c)
        and source(c).lstrip().startswith("### Exercise")
    ]
    ends = starts[1:] + [len(cells)]
    return [(s, cells[s:e]) for s, e in zip(starts, ends, strict=True)]


def typed_numbers(text: str) -> list[str]:
    """Decimals outside the allowed set, percentages and durations in prose (math, code and
    exercise names removed)."""
    prose = NOT_PROSE.sub(" ", text)
    found = []
    for duration, percent, decimal in NUMBER.findall(prose):
        if duration:
            found.append(f"{duration} (a duration)")
        elif percent:
            found.append(f"{percent}%")
        elif decimal not in ALLOWED_DECIMALS:
            found.append(decimal)
    return found


def test_the_course_is_there() -> None:
    assert len(NOTEBOOKS) >= 9, f"expected the course's notebooks, found {NOTEBOOKS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_exercises_with_hidden_asserting_solutions(path: Path) -> None:
    cells = load(path)["cells"]
    found = exercises(cells)
    assert len(found) >= MIN_EXERCISES, (
        f"{path.name}: {len(found)} exercises (Markdown cells tagged `exercise` that start with "
        f"'### Exercise'); every notebook needs at least {MIN_EXERCISES}"
    )
    for start, block in found:
        title = source(cells[start]).splitlines()[0]
        assert "predict" in source(cells[start]).lower(), f"{path.name}: {title} asks no prediction"
        tasks = [c for c in block[1:] if c["cell_type"] == "code" and "exercise" in tags(c)]
        solutions = [c for c in block if "solution" in tags(c)]
        assert tasks, f"{path.name}: {title} has no code cell tagged `exercise` to run"
        assert solutions, f"{path.name}: {title} has no cell tagged `solution`"
        for cell in solutions:
            assert cell["cell_type"] == "code", f"{path.name}: {title}'s solution is not code"
            hidden = cell.get("metadata", {}).get("jupyter", {})
            assert hidden.get("source_hidden"), f"{path.name}: {title}'s solution is not hidden"
            assert re.search(r"^\s*assert ", source(cell), re.MULTILINE), (
                f"{path.name}: {title}'s solution asserts nothing, so no test checks it"
            )
            assert cell.get("outputs"), f"{path.name}: {title}'s solution has no committed output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_measured_number_is_typed_into_markdown(path: Path) -> None:
    typed = {
        i: numbers
        for i, cell in enumerate(load(path)["cells"])
        if cell["cell_type"] == "markdown" and (numbers := typed_numbers(source(cell)))
    }
    assert not typed, (
        f"{path.name}: Markdown cells state numbers that look measured (cell index: numbers); "
        f"print them from code with course.say, or add a paper/config constant to "
        f"ALLOWED_DECIMALS: {typed}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_run_time_is_measured_and_outputs_hold_no_error(path: Path) -> None:
    code = [c for c in load(path)["cells"] if c["cell_type"] == "code" and source(c).strip()]
    assert "course.NotebookClock()" in source(code[0]), (
        f"{path.name}: the first code cell should start `clock = course.NotebookClock()`"
    )
    last = code[-1]
    assert "clock.report()" in source(last), f"{path.name}: the last cell should report the clock"
    printed = "".join(
        "".join(o.get("text", "")) for o in last.get("outputs", []) if o["output_type"] == "stream"
    )
    assert "This notebook" in printed and "CPU cores" in printed, (
        f"{path.name}: the committed last cell shows no measured run time: {printed!r}"
    )
    for i, cell in enumerate(code):
        errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"{path.name}: committed code cell {i} shows an error: {errors[0]}"


def test_the_number_filter_reads_prose_not_math() -> None:
    assert typed_numbers("accuracy 0.812 after 27.7 s, 40% of pixels") == [
        "0.812",
        "27.7 (a duration)",
        "40%",
    ]
    assert typed_numbers("lambda $0.37$ and `lr=0.0002`, the paper's 0.9053") == []
    assert typed_numbers("### Exercise 4.2 · Shrink D") == []
    assert typed_numbers("step 400 of notebook 07, width 32") == []
