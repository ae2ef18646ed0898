"""Turn merged results into rows with verdicts, a terminal table, RESULTS.md and a PNG chart."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Row", "build_rows", "chart", "markdown_table", "text_table"]

# LiteLLM 1.110.2 on a 2-core machine, from DESIGN §3: used only when LiteLLM was not run.
REFERENCE_LITELLM = {"memory_hit_us": 700.0, "concurrent_rate": 1300.0}


@dataclasses.dataclass
class Row:
    wid: str
    label: str
    kind: str  # "time" (µs, lower is better), "rate" (calls/s), "count", "bytes", "flag"
    ours: Any = None  # summary dict, or a number
    floor: Any = None
    floor_label: str = ""
    litellm: Any = None
    target: str = ""
    verdict: str | None = None  # "PASS", "MISS" or None (no target)
    chart: bool = True
    caveat: str = ""  # what makes the number not what its label says


def _median(x: Any, kind: str) -> float | None:
    if x is None:
        return None
    if isinstance(x, dict):
        if kind == "time":
            return x.get("median_us")
        if kind == "rate":
            return x.get("median")
        return x.get("value")
    return float(x)


def _spread(x: Any, kind: str) -> float | None:
    """p95 for times; the worst round for rates."""
    if not isinstance(x, dict):
        return None
    if kind == "time":
        return x.get("p95_us")
    if kind == "rate":
        return x.get("worst")
    return None


def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "time":
        if value < 1000:
            return f"{value:.1f} µs" if value < 100 else f"{value:.0f} µs"
        if value < 1_000_000:
            return f"{value / 1000:.2f} ms"
        return f"{value / 1e6:.2f} s"
    if kind == "rate":
        return f"{value:,.0f}/s"
    if kind == "bytes":
        return f"{value:,.0f} B"
    if kind == "count":
        return f"{value:g}"
    if kind == "flag":
        return "yes" if value else "no"
    return str(value)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def build_rows(w: dict[str, dict[str, Any]], litellm_ran: bool) -> list[Row]:
    """The table's rows, each with its target and verdict (from medians)."""
    rows: list[Row] = []

    def get(wid: str, who: str) -> Any:
        return w.get(wid, {}).get(who)

    def add(
        wid: str,
        label: str,
        kind: str,
        floor_label: str = "",
        verdict: Callable[[Row], tuple[str, str | None]] | None = None,
        chart: bool = True,
    ) -> None:
        row = Row(
            wid,
            label,
            kind,
            ours=get(wid, "llmstash"),
            floor=get(wid, "floor"),
            floor_label=floor_label,
            litellm=get(wid, "litellm"),
            chart=chart,
        )
        if verdict is not None and row.ours is not None:
            row.target, row.verdict = verdict(row)
        rows.append(row)

    def m(row: Row, who: str) -> float | None:
        return _median(getattr(row, who), row.kind)

    def vs_floor(limit: float) -> Callable[[Row], tuple[str, str | None]]:
        def judge(row: Row) -> tuple[str, str | None]:
            r = _ratio(m(row, "ours"), m(row, "floor"))
            if r is None:
                return f"≤ {limit:g}× floor", None
            return f"≤ {limit:g}× floor", "PASS" if r <= limit else "MISS"

        return judge

    def absolute(limit: float, text: str, lower: bool = True) -> Callable[[Row], tuple[str, str]]:
        def judge(row: Row) -> tuple[str, str]:
            v = m(row, "ours")
            ok = v is not None and (v <= limit if lower else v >= limit)
            return text, "PASS" if ok else "MISS"

        return judge

    def hit_vs_litellm(row: Row) -> tuple[str, str]:
        lit = m(row, "litellm")
        ref = "" if lit is not None else " (LiteLLM not run: DESIGN's 700 µs)"
        lit = lit if lit is not None else REFERENCE_LITELLM["memory_hit_us"]
        limit = lit / 30
        v = m(row, "ours")
        ok = v is not None and v <= limit
        return f"≤ 1/30 LiteLLM = {fmt(limit, 'time')}{ref}", "PASS" if ok else "MISS"

    def rate_vs_litellm(row: Row) -> tuple[str, str]:
        lit = m(row, "litellm")
        ref = "" if lit is not None else " (LiteLLM not run: DESIGN's 1,300/s)"
        lit = lit if lit is not None else REFERENCE_LITELLM["concurrent_rate"]
        limit = lit * 20
        v = m(row, "ours")
        ok = v is not None and v >= limit
        return f"≥ 20× LiteLLM = {fmt(limit, 'rate')}{ref}", "PASS" if ok else "MISS"

    def hit_raised(row: Row) -> tuple[str, str]:
        # DESIGN §3's raised target (2.5× the bare floor) and the first one (1/30 LiteLLM).
        text, first = hit_vs_litellm(row)
        r = _ratio(m(row, "ours"), m(row, "floor"))
        ok = first == "PASS" and r is not None and r <= 2.5
        return f"≤ 2.5× floor and {text}", "PASS" if ok else "MISS"

    def redis_raised(row: Row) -> tuple[str, str | None]:
        raw = _median(w.get(row.wid, {}).get("raw_resp_floor"), row.kind)
        r = _ratio(m(row, "ours"), raw)
        if r is None:
            return "≤ 1.5× raw-RESP GET + decode", None
        row.caveat = f"{r:.2f}× the raw-RESP GET ({fmt(raw, 'time')})"
        return "≤ 1.5× raw-RESP GET + decode", "PASS" if r <= 1.5 else "MISS"

    bare_hit = "bare dict hit (canonical key + sha256 + get + decode)"
    add("memory_hit", "cache hit, in memory (acompletion)", "time", bare_hit, hit_raised)
    add(
        "redis_hit",
        "cache hit that reads Redis",
        "time",
        "bare redis.asyncio GET + decode",
        redis_raised,
    )
    post = "bare httpx POST + decode"
    add("miss_off", "miss, cache off (caching=False)", "time", post, vs_floor(1.15))
    add("miss_on", "miss, cache on (new question per call)", "time", post, vs_floor(1.15))
    add(
        "concurrent_memory",
        "2,000 concurrent hits, in memory",
        "rate",
        "2,000 gathered bare dict hits",
        rate_vs_litellm,
    )

    def all_hits(row: Row) -> tuple[str, str]:
        hits = w.get(row.wid, {}).get("hits_in_last_round")
        calls = w.get(row.wid, {}).get("calls", 2000)
        if hits is not None and hits < calls:
            row.caveat = f"llmstash: {hits:,} of {calls:,} were hits"
        ok = hits is not None and hits >= calls
        return "no DESIGN figure; sanity: every call a hit", "PASS" if ok else "MISS"

    add(
        "concurrent_redis",
        "2,000 concurrent hits, Redis",
        "rate",
        "2,000 gathered bare GET + decode (pool of 100)",
        all_hits,
    )
    add(
        "disk_hit",
        "cache hit, disk (SQLite, acompletion)",
        "time",
        bare_hit,
        verdict=absolute(150, "≤ 150 µs p50"),
    )
    add(
        "concurrent_disk",
        "2,000 concurrent hits, disk",
        "rate",
        verdict=absolute(5000, "≥ 5,000/s", lower=False),
    )
    add(
        "decode_compressed",
        "decode of a chat entry, compressed (floor: the same entry plain)",
        "time",
        "the same entry, not compressed",
    )
    add(
        "redis_bytes",
        "Redis bytes per cached chat answer (~1.3 KB JSON)",
        "bytes",
        "the provider's JSON",
        vs_floor(0.6),
        chart=False,
    )
    for wid, label in (
        ("stats_memory_hit", "stats on: cache hit, in memory"),
        ("stats_redis_hit", "stats on: cache hit that reads Redis"),
        ("stats_embed_hit", "stats on: 16-input embedding hit, in memory"),
    ):
        add(wid, label, "time", "the same hit with stats=False", vs_floor(1.05), chart=False)
    add(
        "embed_hit",
        "16-input embedding hit, in memory (1,536 dims)",
        "time",
        verdict=absolute(200, "≤ 200 µs"),
    )
    add("embed_hit_lists", "  … and every vector read with .tolist()", "time")
    add(
        "embed_partial",
        "16-input embedding, 8 cached + 8 sent",
        "time",
        "bare POST of the 8 inputs + decode",
    )
    add(
        "callbacks_caller",
        "3 callbacks × 50 ms sleep: caller waits (hit)",
        "time",
        "the same hit without callbacks, after the same 50 ms pause",
        verdict=absolute(1000, "≈ 0 (≤ 1 ms)"),
    )
    add(
        "callbacks_done",
        "3 callbacks × 50 ms sleep: all done after start",
        "time",
        verdict=absolute(75_000, "≈ 50 ms (≤ 75 ms), not 150"),
    )
    for backend in ("memory", "redis"):
        add(
            f"cold_{backend}",
            f"100 identical cold calls at once ({backend}): requests",
            "count",
            verdict=absolute(1, "1 request"),
            chart=False,
        )
    add(
        "memory_per_entry",
        "memory per cached response (10,000 × ~1.3 KB)",
        "bytes",
        verdict=absolute(1536, "≤ 1.5 KiB (1,536 B)"),
        chart=False,
    )
    add("import", "import llmstash (fresh process)", "time", "import httpx, anyio", vs_floor(1.2))
    add(
        "first_hit",
        "fresh process: import + Cache(type='redis') + first hit",
        "time",
        "import httpx, anyio + raw-RESP GET + json",
        vs_floor(1.3),
    )
    add(
        "import_lazy",
        "redis not imported by `import llmstash`",
        "flag",
        verdict=absolute(1, "lazy", lower=False),
        chart=False,
    )
    reads = w.get("redis_hit", {}).get("litellm_redis_reads_per_hit")
    if litellm_ran and reads is not None and reads < 0.95:
        for row in rows:
            if row.wid in ("redis_hit", "concurrent_redis") and row.litellm is not None:
                note = f"LiteLLM read Redis {reads:.2f}× per hit (in-process copy)"
                row.caveat = f"{row.caveat}; {note}" if row.caveat else note
    if not litellm_ran:
        for row in rows:
            row.litellm = None
    return [r for r in rows if r.ours is not None or r.litellm is not None]


def _cells(row: Row) -> list[str]:
    k = row.kind
    ours, floor, lit = (_median(x, k) for x in (row.ours, row.floor, row.litellm))
    x_floor = _ratio(ours, floor)
    if k == "rate":
        x_lit = _ratio(ours, lit)  # how many times LiteLLM's rate
    else:
        x_lit = _ratio(lit, ours)  # how many times faster (or smaller) than LiteLLM
    return [
        row.label,
        fmt(ours, k),
        fmt(_spread(row.ours, k), k),
        fmt(floor, k),
        "—" if x_floor is None else f"{x_floor:.2f}×",
        fmt(lit, k),
        fmt(_spread(row.litellm, k), k),
        "—" if x_lit is None else f"{x_lit:,.1f}×",
        row.target or "—",
        row.verdict or "—",
    ]


HEADERS = [
    "workload",
    "llmstash median",
    "p95 / worst",
    "floor median",
    "× floor",
    "LiteLLM median",
    "LiteLLM p95 / worst",
    "LiteLLM ÷ llmstash",
    "target (DESIGN §3)",
    "verdict",
]


def text_table(rows: list[Row]) -> str:
    table = [HEADERS] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    widths[0] = min(widths[0], 56)
    out = []
    for j, line in enumerate(table):
        cells = [line[0][: widths[0]].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:-2], widths[1:-2], strict=True)]
        cells += [line[-2].ljust(widths[-2]), line[-1]]
        out.append("  ".join(cells))
        if j == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)


def markdown_table(rows: list[Row]) -> str:
    out = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join(["---"] + ["--:"] * 7 + ["---"] * 2) + "|",
    ]
    for row in rows:
        cells = _cells(row)
        cells[0] = cells[0].replace("  …", "…")
        if row.caveat:
            cells[0] += f" ⚠ {row.caveat}"
        if row.verdict:
            cells[-1] = f"**{row.verdict}**"
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    floors = [f"- *{r.label}*: {r.floor_label}" for r in rows if r.floor_label]
    return "\n".join(out) + "\n\nFloors:\n\n" + "\n".join(floors)


def chart(rows: list[Row], path: Path, title: str) -> None:
    """Grouped horizontal bars, time per call on a log scale (rates become 1/rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def per_call_us(x: Any, kind: str) -> float | None:
        v = _median(x, kind)
        if v is None or v <= 0:
            return None
        return 1e6 / v if kind == "rate" else v

    shown = [r for r in rows if r.chart and r.kind in ("time", "rate")]
    series = [
        ("llmstash", "ours", "#2b7bba"),
        ("LiteLLM", "litellm", "#d95f02"),
        ("floor", "floor", "#9e9e9e"),
    ]
    fig, ax = plt.subplots(figsize=(11, 0.62 * len(shown) + 1.6))
    height = 0.26
    for s, (name, attr, color) in enumerate(series):
        ys, xs = [], []
        for i, row in enumerate(shown):
            v = per_call_us(getattr(row, attr), row.kind)
            if v is not None:
                ys.append(i + (s - 1) * height)
                xs.append(v)
        if xs:
            ax.barh(ys, xs, height=height, color=color, label=name)
            for y, x in zip(ys, xs, strict=True):
                ax.text(x * 1.08, y, fmt(x, "time"), va="center", fontsize=7)
    labels = [
        r.label.strip(" …")
        + (" (µs per call)" if r.kind == "rate" else "")
        + (f"\n[{r.caveat}]" if r.caveat else "")
        for r in shown
    ]
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median time per call, µs (log scale; shorter is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", which="major", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    left, right = ax.get_xlim()
    ax.set_xlim(left, right * 8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
