"""Bench results: the JSON file, the PNG plot and the rich table."""

from __future__ import annotations

import contextlib
import json
import os
import platform
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fraudstream.bench.procmon import MACHINE


def machine() -> dict:
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            "",
        )
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(mem / 2**30, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _floor(results: dict) -> dict:
    """The Kafka-alone pass-through's results (empty when the run had ``--no-floor``)."""
    return results.get("floor") or {}


def write_json(results: dict, path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    ax = axes[0]
    for r in results.get("throughput", []):
        tl = r.get("timeline") or []
        if tl:
            ax.plot(
                [t for t, _ in tl],
                [c for _, c in tl],
                label=f"W={r['workers']}: {r['throughput_tx_s']:,.0f} tx/s",
            )
    lt = results.get("live_throughput")
    if lt and lt.get("timeline"):
        ax.plot(
            [t for t, _ in lt["timeline"]],
            [c for _, c in lt["timeline"]],
            linestyle="--",
            label=f"live producer, W={lt['workers']}: {lt['throughput_tx_s']:,.0f} tx/s",
        )
    fl = _floor(results).get("throughput")
    if fl and fl.get("timeline"):
        ax.plot(
            [t for t, _ in fl["timeline"]],
            [c for _, c in fl["timeline"]],
            linestyle=":",
            color="black",
            label=f"Kafka alone (no detector): {fl['throughput_tx_s']:,.0f} tx/s",
        )
    nv = results.get("naive")
    if nv and nv.get("throughput_tx_s"):
        xs = [0, nv["seconds"]]
        ax.plot(xs, [0, nv["processed"]], color="grey", label=f"naive: {nv['throughput_tx_s']:,.0f} tx/s")
    ax.set(
        title="decisions committed on output (read_committed)",
        xlabel="s since detectors started",
        ylabel="decisions",
    )
    ax.legend(fontsize=8)

    ax = axes[1]
    lat = [r for r in results.get("latency", []) if "p50_ms" in r]
    if lat:
        xs = [r["offered_tx_s"] for r in lat]
        for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
            ax.plot(xs, [r[key] for r in lat], marker="o", label=key.removesuffix("_ms"))
        floor = [r for r in _floor(results).get("latency", []) if "p50_ms" in r]
        for key in ("p50_ms", "p99_ms"):
            if floor:
                ax.plot([r["offered_tx_s"] for r in floor], [r[key] for r in floor], marker="x",
                        linestyle=":", color="black", label=f"Kafka alone {key.removesuffix('_ms')}")
        for r in lat:
            if not r.get("kept_up"):
                ax.annotate("behind", (r["offered_tx_s"], r["p99_ms"]), fontsize=8, color="red")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set(title="end-to-end latency (decision received - tx_datetime)", xlabel="offered tx/s", ylabel="ms")
    if ax.get_legend_handles_labels()[0]:  # no latency phase run: no legend
        ax.legend(fontsize=8)

    ax = axes[2]
    phases = _phases(results)
    comps = sorted({c for _, res in phases for c in res} - {MACHINE})
    bottom = [0.0] * len(phases)
    for c in comps:
        vals = [res.get(c, {}).get("cpu_mean_pct", 0.0) for _, res in phases]
        ax.bar(range(len(phases)), vals, bottom=bottom, label=c)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    total = [res.get(MACHINE, {}).get("cpu_mean_pct") for _, res in phases]
    if any(v is not None for v in total):
        ax.plot(
            range(len(phases)),
            [v or 0.0 for v in total],
            "k_",
            markersize=30,
            mew=2,
            label="machine total (incl. other users)",
        )
    ax.set_xticks(range(len(phases)), [p for p, _ in phases], rotation=30, ha="right", fontsize=8)
    ax.set(title="mean CPU per component (100 = one core)", ylabel="% of a core")
    ax.legend(fontsize=7)
    fig.suptitle(
        f"fraudstream bench {results.get('date', '')} - {results.get('machine', {}).get('nproc')} "
        f"CPUs, {results.get('machine', {}).get('memory_gb')} GB"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _phases(results: dict) -> list[tuple[str, dict]]:
    out = [(f"throughput W={r['workers']}", r.get("resources", {})) for r in results.get("throughput", [])]
    if results.get("naive"):
        out.append(("naive", results["naive"].get("resources", {})))
    if results.get("live_throughput"):
        out.append(("live producer", results["live_throughput"].get("resources", {})))
    out += [
        (f"latency {r['offered_tx_s']:,.0f}/s", r.get("resources", {})) for r in results.get("latency", [])
    ]
    floor = _floor(results)
    if floor.get("throughput"):
        out.append(("Kafka alone, preloaded", floor["throughput"].get("resources", {})))
    out += [
        (f"Kafka alone {r['offered_tx_s']:,.0f}/s", r.get("resources", {})) for r in floor.get("latency", [])
    ]
    return out


def print_tables(results: dict, console: Console) -> None:
    m = results.get("machine", {})
    console.print(
        f"[bold]fraudstream bench[/] {results.get('date')}  machine: {m.get('nproc')} CPUs "
        f"({m.get('cpu')}), {m.get('memory_gb')} GB RAM\ncommand: {results.get('command')}"
    )
    t = Table(
        "experiment",
        "workers",
        "tx/s (steady)",
        "decisions",
        "PostgreSQL rows",
        "notes",
        title="throughput (exactly-once on)",
    )
    for r in results.get("throughput", []):
        t.add_row(
            "preloaded",
            str(r["workers"]),
            f"{r['throughput_tx_s']:,.0f}",
            f"{r['decisions']:,}",
            f"{r['postgres_rows']:,}",
            (f"over the whole {r.get('measured_s')} s (one commit after the warm-up); "
             if r.get("whole_phase") else f"over {r.get('measured_s')} s after warm-up; ")
            + f"preload {r['preloaded']:,} at {r['preload_rate_tx_s']:,} tx/s; first decision "
            f"{r.get('first_decision_s')} s; dead letters {r.get('dead_letters', 0)}; "
            f"exact count {'ok' if r['exactly_once_count_ok'] else 'NO'}",
        )
    lt = results.get("live_throughput")
    if lt:
        t.add_row(
            "live producer",
            str(lt["workers"]),
            f"{lt['throughput_tx_s']:,.0f}",
            f"{lt['decisions']:,}",
            "",
            f"offered {lt['offered_tx_s']:,.0f}, producer achieved {lt['producer_achieved_tx_s']:,}; "
            f"over {lt.get('measured_s')} s after warm-up",
        )
    fl = _floor(results).get("throughput")
    if fl:
        t.add_row(
            "Kafka alone (no detector)",
            "1",
            f"{fl['throughput_tx_s']:,.0f}",
            f"{fl['decisions']:,}",
            "",
            "the same preload consumed and a decision-sized message produced per transaction in "
            f"Kafka transactions with the offsets: the ceiling; over {fl.get('measured_s')} s",
        )
    nv = results.get("naive")
    if nv:
        t.add_row(
            "naive baseline",
            "1",
            f"{nv['throughput_tx_s']:,.1f}",
            f"{nv['processed']:,}",
            f"{nv['suspicious_rows']:,}",
            f"fraudstream W=1 / naive = {nv.get('ratio_fraudstream_over_naive')}x",
        )
    console.print(t)
    if results.get("latency"):
        t = Table(
            "pipeline",
            "offered tx/s",
            "producer tx/s",
            "decided tx/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "kept up",
            title="latency: decision received - tx_datetime",
        )
        rows = [("detector", r) for r in results["latency"]]
        rows += [("Kafka alone", r) for r in _floor(results).get("latency", [])]
        for what, r in rows:
            t.add_row(
                what,
                f"{r['offered_tx_s']:,.0f}",
                f"{r['producer_achieved_tx_s']:,}",
                f"{r['decided_tx_s']:,.0f}",
                *(str(r.get(k, "-")) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
                "yes" if r["kept_up"] else f"no (drain {r['backlog_drain_s']} s)",
            )
        console.print(t)
    t = Table(
        "phase",
        "component",
        "CPU mean %",
        "CPU max %",
        "RSS max MB",
        "PSS max MB",
        title="resources (/proc samples, 100% = one core)",
    )
    for phase, res in _phases(results):
        for comp, v in res.items():
            t.add_row(
                phase,
                comp,
                f"{v['cpu_mean_pct']:.0f}",
                f"{v['cpu_max_pct']:.0f}",
                f"{v['rss_max_mb']:,.0f}" if v["rss_max_mb"] else "-",
                f"{v['pss_max_mb']:,.0f}" if v["pss_max_mb"] else "-",
            )
    console.print(t)
