"""The benchmark's results: one table (printed, and written into docs/benchmarks.md), a
chart beside it, and the targets of issue 13 checked."""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
CHART = DOCS.with_name("benchmarks.png")
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
HARNESS_BEGIN, HARNESS_END = "<!-- bench:harness:begin -->", "<!-- bench:harness:end -->"


@dataclass
class Target:
    """``value`` compared with ``limit``: at least it (``at_least``) or at most it."""

    label: str
    value: float
    limit: float
    at_least: bool

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    @property
    def score(self) -> float:
        """Above 1 when met: how far past the limit (for the chart)."""
        if self.at_least:
            return self.value / self.limit if self.limit else 0.0
        return self.limit / self.value if self.value else float("inf")

    def describe(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {_number(self.limit)}"


@dataclass
class Row:
    figure: str
    ours: str = ""
    sdk: str = ""
    redis: str = ""
    compared: str = ""
    target: Target | None = None
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    # Named figures other sections may add (label, value, detail), e.g. the harness's.
    extra: list[tuple[str, str, str]] = field(default_factory=list)

    def row(self, figure: str, **cells: object) -> Row:
        made = Row(figure, **cells)  # type: ignore[arg-type]
        self.rows.append(made)
        status = "" if made.target is None else ("met" if made.target.met else "MISSED")
        print(f"  {figure:<52} ours {made.ours:>14}  sdk {made.sdk:>14}  redis {made.redis:>12}"
              f"  {made.compared:>10} {status}", flush=True)
        return made

    def add(self, name: str, value: str, detail: str = "") -> None:
        self.extra.append((name, value, detail))
        print(f"  {name:<52} {value:>14}  {detail}", flush=True)

    @property
    def targets(self) -> list[Target]:
        return [row.target for row in self.rows if row.target is not None]

    @property
    def missed(self) -> list[Target]:
        return [target for target in self.targets if not target.met]

    def markdown(self) -> str:
        lines = [
            "| figure | localmesh, our client | localmesh, real SDK | Redis | compared | target | |",
            "|---|---:|---:|---:|---:|---|---|",
        ] if self.rows else []
        for row in self.rows:
            target = "" if row.target is None else row.target.describe()
            status = "" if row.target is None else ("met" if row.target.met else "**missed**")
            lines.append(f"| {row.figure} | {row.ours} | {row.sdk} | {row.redis} | {row.compared}"
                         f" | {target} | {status} |")
        notes = [f"- {row.figure}: {row.note}" for row in self.rows if row.note]
        if self.extra:
            lines += ([""] if lines else []) + ["| measurement | result | detail |", "|---|---:|---|"]
            lines += [f"| {name} | {value} | {detail} |" for name, value, detail in self.extra]
        return "\n".join(lines + ([""] + notes if notes else []))


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def write_chart(report: Report, path: Path = CHART) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = report.targets
    figure, axis = plt.subplots(figsize=(11, 0.45 * len(targets) + 1.6))
    labels = [target.label for target in targets]
    scores = [min(target.score, 5.0) for target in targets]
    colours = ["#3a923a" if target.met else "#c0392b" for target in targets]
    axis.barh(labels, scores, color=colours)
    axis.axvline(1.0, color="black", linewidth=1)
    axis.invert_yaxis()
    axis.set_xlabel("measured ÷ target (≥ 1: met; capped at 5)")
    axis.set_title("localmesh against issue 13's targets (Redis measured in the same run)", fontsize=10)
    for index, target in enumerate(targets):
        axis.text(min(target.score, 5.0) + 0.03, index, f"{_number(target.value)} ({target.describe()})",
                  va="center", fontsize=8)
    axis.set_xlim(0, 6.6)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    print(f"wrote {path}")


def update_docs(report: Report, header: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the text between ``begin`` and ``end`` in docs/benchmarks.md; the rest of the
    page (and other sections' blocks) stays as it is."""
    text = DOCS.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{DOCS} has no {begin} ... {end} block to replace")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    DOCS.write_text(f"{head}{begin}\n{header}\n\n{report.markdown()}\n{end}{tail}")
    print(f"wrote the results into {DOCS}")
