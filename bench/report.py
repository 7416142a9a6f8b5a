"""Turning readings into figures: CPU per operation, round trips per operation, ratios, the
targets of the issue, the summary table and the latency plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

CPU_PIECES = ("api", "emulator", "sink", "postgres", "rabbitmq", "loadgen", "bare")


def cpu_per_op(cpu: dict[str, dict[str, float]], ops: float) -> dict[str, float]:
    """CPU milliseconds each piece spent per successful operation during the window."""
    start, end = cpu.get("start"), cpu.get("end")
    if not start or not end or ops <= 0:
        return {}
    return {
        piece: round((end[piece] - start[piece]) * 1000 / ops, 3)
        for piece in CPU_PIECES
        if piece in start and piece in end and end[piece] - start[piece] > 0
    }


def foreign_share(cpu: dict[str, dict[str, float]]) -> float | None:
    """Share of the machine's CPU used during the window by processes that are not this run's
    (another test run on the same machine, say): busy CPU minus every piece counted above.
    RabbitMQ is one server for everyone, so its share is counted as this run's."""
    start, end = cpu.get("start"), cpu.get("end")
    if not start or not end:
        return None
    total = end["machine_total"] - start["machine_total"]
    ours = sum(end[p] - start[p] for p in CPU_PIECES if p in start and p in end)
    busy = end["machine_busy"] - start["machine_busy"]
    return round(max(0.0, busy - ours) / total, 3) if total > 0 else None


def machine_busy(cpu: dict[str, dict[str, float]]) -> float | None:
    """Share of the whole machine's CPU (all cores) that was busy during the window."""
    start, end = cpu.get("start"), cpu.get("end")
    if not start or not end:
        return None
    total = end["machine_total"] - start["machine_total"]
    return round((end["machine_busy"] - start["machine_busy"]) / total, 3) if total > 0 else None


def _delta(after: dict[str, Any], before: dict[str, Any], key: str) -> float:
    return float(after.get(key, 0)) - float(before.get(key, 0))


def round_trips(before: dict[str, Any], after: dict[str, Any], ops: int) -> dict[str, float]:
    """Emulator requests, database transactions and statements, publishes: per successful
    operation over a whole phase (warm-up included, so a thread's first login shows)."""
    if ops <= 0:
        return {}
    figures = {
        "odoo_requests": _delta(after, before, "emulator_requests") / ops,
    }
    methods_after = after.get("emulator_by_service_method", {})
    methods_before = before.get("emulator_by_service_method", {})
    for method in methods_after:
        figures[f"odoo_{method}"] = _delta(methods_after, methods_before, method) / ops
    api_after, api_before = after.get("api"), before.get("api")
    if api_after is not None and api_before is not None and api_after != api_before:
        for key in ("transactions", "statements", "publishes"):
            figures[f"db_{key}" if key != "publishes" else key] = (
                _delta(api_after, api_before, key) / ops
            )
        # CPU milliseconds of the API's event-loop thread and of the whole API, per operation
        figures["api_loop_cpu_ms"] = _delta(api_after, api_before, "loop_thread_cpu_s") * 1000 / ops
        figures["api_cpu_ms"] = _delta(api_after, api_before, "process_cpu_s") * 1000 / ops
    return {key: round(value, 3) for key, value in figures.items()}


def per_operation(
    ok: int,
    emulator_before: dict[str, Any],
    emulator_after: dict[str, Any],
    api: dict[str, int],
    published_on_tap: int,
) -> dict[str, Any]:
    """Counts of the sequential round-trip phase, per operation."""
    if ok <= 0:
        return {"operations": 0}
    methods = {
        method: (count - emulator_before["by_service_method"].get(method, 0)) / ok
        for method, count in emulator_after["by_service_method"].items()
        if count - emulator_before["by_service_method"].get(method, 0)
    }
    return {
        "operations": ok,
        "odoo_requests": (emulator_after["requests"] - emulator_before["requests"]) / ok,
        "odoo_by_service_method": methods,
        "db_transactions": api.get("transactions", 0) / ok,
        "db_statements": api.get("statements", 0) / ok,
        "publishes": api.get("publishes", 0) / ok,
        "publishes_seen_on_tap": published_on_tap / ok,
        "odoo_calls_by_the_api": {
            key.removeprefix("odoo_"): value / ok
            for key, value in api.items()
            if key.startswith("odoo_")
        },
    }


def one_line(name: str, entry: dict[str, Any]) -> str:
    offered = f" offered {entry['offered_rps']}/s" if "offered_rps" in entry else ""
    cpu = entry.get("cpu_ms_per_op", {})
    cpu_text = " ".join(f"{k}={v:.2f}" for k, v in cpu.items())

    def ms(key: str) -> str:
        return "      -" if entry.get(key) is None else f"{entry[key]:7.2f}"

    return (
        f"{name:<28}{offered} {entry['throughput_rps']:8.1f}/s  p50 {ms('p50_ms')}  "
        f"p95 {ms('p95_ms')}  p99 {ms('p99_ms')} ms  errors "
        f"{entry['error_count']}  busy {entry['machine_busy']}"
        f" (others {entry.get('foreign_share')})"
        f"  cpu ms/op: {cpu_text}"
    )


# -- ratios and targets --------------------------------------------------------------------------


def _get(phases: dict[str, Any], name: str, key: str) -> float | None:
    entry = phases.get(name)
    if entry is None:
        return None
    value = entry.get(key)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def round_names(phases: dict[str, Any], base: str) -> list[str]:
    """``base`` and its later rounds (``base_r2``, ``base_r3``...) that ran."""
    names = [base] if base in phases else []
    number = 2
    while f"{base}_r{number}" in phases:
        names.append(f"{base}_r{number}")
        number += 1
    return names


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def median_of_rounds(phases: dict[str, Any], base: str, key: str) -> float:
    return _median([phases[name][key] for name in round_names(phases, base)])


def ratios(phases: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, entry in phases.items():
        if not name.startswith("bare_submit_"):
            continue
        service = name.removeprefix("bare_")
        if service not in phases:
            continue
        bare_thr, svc_thr = entry["throughput_rps"], phases[service]["throughput_rps"]
        if None in (
            entry["p50_ms"],
            entry["p99_ms"],
            phases[service]["p50_ms"],
            phases[service]["p99_ms"],
        ):
            continue
        out[service] = {
            "throughput_service_over_bare": round(svc_thr / bare_thr, 3) if bare_thr else None,
            "p50_service_minus_bare_ms": round(phases[service]["p50_ms"] - entry["p50_ms"], 2),
            "p50_service_over_bare": round(phases[service]["p50_ms"] / entry["p50_ms"], 3),
            "p99_service_over_bare": round(phases[service]["p99_ms"] / entry["p99_ms"], 3),
        }
    for clients in (1, 32):
        bare, direct = (
            phases.get(f"bare_submit_c{clients}"),
            phases.get(f"direct_submit_c{clients}"),
        )
        via_http = phases.get(f"submit_c{clients}")
        if bare and direct and via_http:
            out[f"direct_submit_c{clients}"] = {
                "throughput_direct_over_bare": round(
                    direct["throughput_rps"] / bare["throughput_rps"], 3
                ),
                "p50_direct_minus_bare_ms": round(direct["p50_ms"] - bare["p50_ms"], 2),
                "throughput_service_over_direct": round(
                    via_http["throughput_rps"] / direct["throughput_rps"], 3
                ),
                "p50_service_minus_direct_ms": round(via_http["p50_ms"] - direct["p50_ms"], 2),
            }
    # a callback with its result event published, against the same callback with events off
    for clients in (1, 32):
        on, off = phases.get(f"callback_c{clients}"), phases.get(f"callback_c{clients}_events_off")
        if on and off and on["p50_ms"] is not None and off["p50_ms"] is not None:
            out[f"callback_c{clients}_result_events"] = {
                "throughput_on_over_off": (
                    round(on["throughput_rps"] / off["throughput_rps"], 3)
                    if off["throughput_rps"]
                    else None
                ),
                "p50_on_minus_off_ms": round(on["p50_ms"] - off["p50_ms"], 2),
            }
    # the key pairs ran in several rounds: the medians over the rounds are what the targets use
    for clients in (1, 32):
        pairs = [out[name] for name in round_names(phases, f"submit_c{clients}") if name in out]
        if pairs:
            out[f"submit_c{clients}_median_of_{len(pairs)}_rounds"] = {
                key: round(_median([pair[key] for pair in pairs]), 3)
                for key in pairs[0]
                if all(pair[key] is not None for pair in pairs)
            }
    floor = phases.get("healthz_c1")
    if floor:
        out["http_floor_p50_ms"] = floor["p50_ms"]
    slow1 = _get(phases, "submit_odoo30ms_c1", "throughput_rps")
    slow32 = _get(phases, "submit_odoo30ms_c32", "throughput_rps")
    if slow1 and slow32:
        out["odoo30ms_c32_over_c1"] = round(slow32 / slow1, 2)
    bare1 = _get(phases, "bare_submit_odoo30ms_c1", "throughput_rps")
    bare32 = _get(phases, "bare_submit_odoo30ms_c32", "throughput_rps")
    if bare1 and bare32:
        out["bare_odoo30ms_c32_over_c1"] = round(bare32 / bare1, 2)
    submit32 = None
    if "submit_c32" in phases:
        submit32 = median_of_rounds(phases, "submit_c32", "throughput_rps")
    callbacks32 = _get(phases, "callback_c32", "throughput_rps")
    if submit32 and callbacks32:
        out["callback_c32_over_submit_c32"] = round(callbacks32 / submit32, 2)
    paced = phases.get("callback_open_3x")
    if paced and submit32:
        out["callback_open_achieved_over_submit_c32"] = round(paced["throughput_rps"] / submit32, 2)
        out["callback_open_achieved_over_offered"] = round(
            paced["throughput_rps"] / paced["offered_rps"], 3
        )
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []

    def check(name: str, value: Any, met: bool | None, target: str) -> None:
        checks.append({"target": name, "wanted": target, "value": value, "met": met})

    trips = results.get("round_trips")
    if trips:
        submit, selection = trips["submit"], trips["selection"]
        check(
            "submit round trips",
            _trips(submit),
            submit["odoo_requests"] == 1
            and submit["publishes"] == 1
            and submit["publishes_seen_on_tap"] == 1
            and submit["db_transactions"] <= 2,
            "1 Odoo request, 1 publish, <= 2 transactions",
        )
        check(
            "selection round trips",
            _trips(selection),
            selection["odoo_requests"] == 1
            and selection["publishes"] == 1
            and selection["db_transactions"] <= 2,
            "1 Odoo request, 1 publish, <= 2 transactions",
        )
        for name in ("callback_samples_ready", "callback_final_ready"):
            entry = trips[name]
            check(
                f"{name} round trips",
                _trips(entry),
                # the change, then the relay publishing its result event (docs/decisions.md)
                entry["odoo_requests"] == 0 and entry["db_transactions"] == 2,
                "0 Odoo requests (2 transactions: the change, the result event's relay)",
            )
        failure = trips["callback_platform_failure"]
        check(
            "platform-failure callback round trips",
            _trips(failure),
            failure["odoo_requests"] == 1,
            "1 Odoo request (the refund)",
        )
    phases, ratio = results.get("phases", {}), results.get("ratios", {})
    key1 = next((k for k in ratio if k.startswith("submit_c1_median")), None)
    if key1:
        gap = ratio[key1]["p50_service_minus_bare_ms"]
        rounds = [ratio[n]["p50_service_minus_bare_ms"] for n in round_names(phases, "submit_c1")]
        check(
            "p50 at 1 client, service - bare (median of rounds)",
            f"{gap} ms (rounds: {rounds})",
            gap <= 3.0,
            "<= 3 ms",
        )
    key32 = next((k for k in ratio if k.startswith("submit_c32_median")), None)
    if key32:
        share = ratio[key32]["throughput_service_over_bare"]
        rounds = [
            ratio[n]["throughput_service_over_bare"] for n in round_names(phases, "submit_c32")
        ]
        check(
            "throughput at 32 clients, service / bare (median of rounds)",
            f"{share} (rounds: {rounds})",
            share is not None and share >= 0.6,
            ">= 0.6",
        )
    if "odoo30ms_c32_over_c1" in ratio:
        scale = ratio["odoo30ms_c32_over_c1"]
        check("30 ms Odoo: 32 clients / 1 client", scale, scale >= 20, ">= 20")
    if "callback_c32_over_submit_c32" in ratio:
        multiple = ratio["callback_c32_over_submit_c32"]
        check("callbacks / submits, 32 clients each", multiple, multiple >= 3, ">= 3")
    paced = phases.get("callback_open_3x")
    if paced:
        sustained = paced["throughput_rps"] / paced["offered_rps"]
        check(
            "callbacks sustain 3x the submit throughput (open model)",
            f"{paced['throughput_rps']}/s of {paced['offered_rps']}/s offered, "
            f"{paced['error_count']} errors, p99 {paced['p99_ms']} ms",
            sustained >= 0.97 and paced["error_count"] == 0,
            ">= 97% of the offered rate, no errors",
        )
    for name, entry in phases.items():
        if entry["error_count"]:
            check(f"no errors in {name}", entry["errors"], False, "0 errors")
    memory = results.get("memory")
    if memory and memory.get("growth") is not None:
        check(
            "RSS growth from 10,000 to 50,000 requests",
            f"{memory['growth'] * 100:.1f}%",
            memory["growth"] < 0.10,
            "< 10%",
        )
    return checks


def _trips(entry: dict[str, Any]) -> str:
    return (
        f"odoo {entry['odoo_requests']:g}, publishes {entry['publishes']:g}, "
        f"transactions {entry['db_transactions']:g}, statements {entry['db_statements']:g}"
    )


# -- the table -----------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    lines = [
        "| phase | model | clients / offered | throughput (/s) | p50 (ms) | p95 (ms) | p99 (ms) "
        "| errors | machine busy (others) | CPU ms per op: api / emulator / postgres / rabbitmq / "
        "loadgen / bare |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in results.get("phases", {}).items():
        load = entry.get("clients", entry.get("offered_rps"))
        cpu = entry.get("cpu_ms_per_op", {})
        cpu_text = " / ".join(
            f"{cpu[p]:.2f}" if p in cpu else "-"
            for p in ("api", "emulator", "postgres", "rabbitmq", "loadgen", "bare")
        )
        busy, others = entry.get("machine_busy"), entry.get("foreign_share")
        busy_text = "-" if busy is None else f"{busy * 100:.0f}%"
        if others is not None:
            busy_text += f" ({others * 100:.0f}%)"
        lines.append(
            f"| {name} | {entry.get('model')} | {load} | {entry['throughput_rps']} | "
            f"{entry['p50_ms']} | {entry['p95_ms']} | {entry['p99_ms']} | {entry['error_count']} | "
            f"{busy_text} | {cpu_text} |"
        )
    lines.append("")
    lines.append("| target | wanted | measured | met |")
    lines.append("|---|---|---|---|")
    for item in results.get("targets", []):
        met = {True: "yes", False: "**no**", None: "-"}[item["met"]]
        lines.append(f"| {item['target']} | {item['wanted']} | {item['value']} | {met} |")
    ratio = results.get("ratios", {})
    if ratio:
        lines.append("")
        lines.append("ratios: " + ", ".join(f"{k} = {v}" for k, v in ratio.items()))
    return "\n".join(lines)


# -- the plot ------------------------------------------------------------------------------------

PANELS = (
    ("Submit latency, 1 client", ("healthz_c1", "bare_submit_c1", "direct_submit_c1", "submit_c1")),
    (
        "Submit latency, 32 clients",
        (
            "bare_submit_c32",
            "direct_submit_c32",
            "submit_c32",
            "bare_submit_c64",
            "submit_c64",
            "submit_open_50pct",
            "submit_open_70pct",
            "submit_open_90pct",
        ),
    ),
    ("Callback latency", ("callback_c1", "callback_c32", "callback_open_3x")),
    (
        "Submit latency, 30 ms Odoo latency",
        (
            "bare_submit_odoo30ms_c1",
            "submit_odoo30ms_c1",
            "bare_submit_odoo30ms_c32",
            "submit_odoo30ms_c8",
            "submit_odoo30ms_c32",
            "submit_odoo30ms_c64",
        ),
    ),
)


def plot(latencies: dict[str, list[float]], results: dict[str, Any], path: Path) -> Path | None:
    """Latency distributions (CDFs, log scale) of the main phases; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = 3 if results.get("memory") else 2
    figure, axes = plt.subplots(rows, 2, figsize=(14, 5 * rows))
    for axis in axes.flat[len(PANELS) :]:
        axis.set_axis_off()
    for axis, (title, names) in zip(axes.flat, PANELS, strict=False):
        for name in names:
            values = latencies.get(name)
            if not values:
                continue
            ordered = sorted(values)
            ys = [(i + 1) / len(ordered) * 100 for i in range(len(ordered))]
            thr = results["phases"][name]["throughput_rps"]
            style = "--" if name.startswith("bare") else (":" if name.startswith("direct") else "-")
            axis.plot(ordered, ys, style, label=f"{name} ({thr:.0f}/s)")
        axis.set_title(title)
        if not axis.lines:
            axis.set_axis_off()
            continue
        axis.set_xscale("log")
        axis.set_xlabel("latency (ms, log scale)")
        axis.set_ylabel("percentile")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    memory = results.get("memory")
    if memory and memory.get("samples"):
        axis = axes.flat[-1]
        axis.set_axis_on()
        counts = [s["requests"] for s in memory["samples"]]
        rss = [s["rss_mib"] for s in memory["samples"]]
        axis.plot(counts, rss, "o-", color="black", label="API worker RSS (MiB)")
        axis.set_xlabel("requests served (submits and their callbacks)")
        axis.set_ylabel("RSS (MiB)")
        axis.set_title(
            f"Memory: {memory['rss_mib_at_10k']} MiB at 10k -> "
            f"{memory['rss_mib_at_end']} MiB at {memory['requests']}"
        )
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    mode = results["meta"]["mode"]
    figure.suptitle(
        f"CreativeFlow orchestrator benchmark ({mode}, {results['meta']['started_at']})"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
