// The benchmark report (scripts/bench-report.ts) on recorded benchmark output: the last JSON line
// of each run is found among the tables printed before it, every figure is shown with its target
// and reference from bench/targets.ts, targets are judged (also against another figure of the
// run), and benchmarks that failed or do not exist yet say so instead of showing numbers.
import { BENCHMARKS } from "../../bench/targets.js";
import { benchScripts, lastJsonLine, meetsTarget, renderReport, type BenchOutcome, type Machine } from "../../scripts/bench-report.js";

// What the benchmarks printed (trimmed): a table, then the JSON line(s).
const KERNEL_OUTPUT = [
  "┌──────────────────────┬──────────┐",
  "│ (index)              │ events/s │",
  "│ crypto ceiling       │ 11880    │",
  "└──────────────────────┴──────────┘",
  '{"crypto_ceiling_eps":11880,"hub_complete_eps":7841,"participant_check_eps":6120,"ratio":0.66,"backend":"native","noble_hub_complete_eps":1010}',
  "",
].join("\n");
const CLIENT_OUTPUT = [
  "engine    sends/s  p99 delivery",
  '{"engine":"postgres","sends_per_s":1210.4,"p50_send_ms":20.1,"p99_send_ms":61.3,"p99_delivery_ms":38.2,"idle_rss_mb":97.2,"load_rss_mb":160.5}',
  '{"engine":"sqlite","sends_per_s":1432.7,"p50_send_ms":17.6,"p99_send_ms":55,"p99_delivery_ms":31.9,"idle_rss_mb":95.1,"load_rss_mb":151.3}',
  "",
].join("\n");
const FEDERATION_OUTPUT =
  "hub ingest 2455 events/s\n" +
  '{"hub_ingest_eps":2455,"p50_lpdu_echo_ms":140,"p99_lpdu_echo_ms":310,"fanout_destinations":415,"fanout_events":4500,"fanout_drain_s":21.4,"join_state_events":10684,"join_s":3.1,"join_response_mb":9.8,"join_peak_rss_mb":312,"verify_workers":2}\n';
const MLS_OUTPUT = '{"validate_commit_ms_100":2.4,"validate_commit_ms_1000":19.5,"client_commit_ms_100":1.9,"commits_per_s":310,"claims_per_s":4200}\n';

const machine: Machine = { cpu: "AMD EPYC 7B13", cores: 2, ramGiB: 7.8, node: "v20.19.0", os: "Linux 6.8.0", date: "2026-11-29T13:00:00Z" };

function ok(name: string, output: string, seconds = 42): BenchOutcome {
  const figures = lastJsonLine(output);
  if (!figures) throw new Error(`no JSON line in the ${name} sample`);
  return { name, status: "ok", figures, seconds };
}

describe("lastJsonLine", () => {
  it("takes the last JSON object line, past tables and earlier JSON lines", () => {
    expect(lastJsonLine(KERNEL_OUTPUT)).toMatchObject({ ratio: 0.66, backend: "native" });
    expect(lastJsonLine(CLIENT_OUTPUT)).toMatchObject({ engine: "sqlite", sends_per_s: 1432.7 });
    expect(lastJsonLine('{"a":1}\n{not json\n[1,2]\n')).toEqual({ a: 1 });
    expect(lastJsonLine("no figures\n")).toBeUndefined();
  });
});

describe("benchScripts", () => {
  it("lists bench:* scripts in the table's order, unknown ones after, and nothing else", () => {
    const scripts = { test: "jest", bench: "tsx scripts/bench-report.ts", "bench:zeta": "x", "bench:federation": "x", "bench:kernel": "x", "bench:client": "x", build: "tsc" };
    expect(benchScripts(scripts)).toEqual(["kernel", "client", "federation", "zeta"]);
  });
});

describe("meetsTarget", () => {
  const figure = (key: string) => BENCHMARKS.flatMap((b) => b.figures).find((f) => f.key === key)!;
  it("judges fixed targets and targets relative to another figure", () => {
    expect(meetsTarget(figure("ratio"), { ratio: 0.6 })).toBe(true);
    expect(meetsTarget(figure("ratio"), { ratio: 0.59 })).toBe(false);
    expect(meetsTarget(figure("p99_delivery_ms"), { p99_delivery_ms: 50 })).toBe(false);
    expect(meetsTarget(figure("validate_commit_ms_100"), { validate_commit_ms_100: 1, client_commit_ms_100: 2 })).toBe(true);
    expect(meetsTarget(figure("validate_commit_ms_100"), { validate_commit_ms_100: 2.4, client_commit_ms_100: 1.9 })).toBe(false);
    expect(meetsTarget(figure("validate_commit_ms_100"), { validate_commit_ms_100: 2.4 })).toBeUndefined();
    expect(meetsTarget(figure("p50_send_ms"), { p50_send_ms: 1 })).toBeUndefined();
  });
});

describe("renderReport", () => {
  const report = renderReport(machine, [
    ok("kernel", KERNEL_OUTPUT, 61.2),
    ok("client", CLIENT_OUTPUT),
    ok("federation", FEDERATION_OUTPUT),
    ok("mls", MLS_OUTPUT),
    { name: "appservice", status: "failed", reason: "exit code 1", seconds: 3 },
    { name: "extra", status: "ok", figures: { things_per_s: 12.345 }, seconds: 1 },
  ]);
  const row = (text: string, label: string): string | undefined => text.split("\n").find((line) => line.startsWith(`| ${label} |`));

  it("describes the machine", () => {
    for (const cell of ["| CPU | AMD EPYC 7B13 |", "| cores | 2 |", "| RAM | 7.8 GiB |", "| Node.js | v20.19.0 |", "| date | 2026-11-29T13:00:00Z |"]) expect(report).toContain(cell);
  });

  it("shows every figure of the last JSON line with its target, verdict and reference", () => {
    const kernel = report.slice(report.indexOf("## Event kernel"), report.indexOf("## Client-Server API"));
    expect(kernel).toContain("`npm run bench:kernel`");
    expect(kernel).toContain("Ran in 61 s.");
    expect(row(kernel, "hub completion / crypto ceiling")).toBe("| hub completion / crypto ceiling | 0.66 | >= 0.6 | met | the crypto ceiling above |");
    expect(row(kernel, "crypto ceiling")).toBe("| crypto ceiling | 11,880 events/s |  |  | one Ed25519 verify + one sign per event, the native backend (OpenSSL verifies, libsodium signs) |");
    const client = report.slice(report.indexOf("## Client-Server API"), report.indexOf("## Federation"));
    // The last line is SQLite's: its figures are the ones judged.
    expect(row(client, "database")).toContain("| sqlite |");
    expect(row(client, "sends")).toBe("| sends | 1,432.7 sends/s | >= 1,500 sends/s | **missed** |  |");
    expect(row(client, "delivery p99 at 200 sends/s")).toBe("| delivery p99 at 200 sends/s | 31.9 ms | < 50 ms | met |  |");
    const federation = report.slice(report.indexOf("## Federation"), report.indexOf("## MLS overlay"));
    expect(row(federation, "fan-out drain")).toBe("| fan-out drain | 21.4 s | < 60 s | met | Synapse: about 2 hours (synapse issue 10257) |");
    expect(row(federation, "join: joining server's peak RSS")).toBe("| join: joining server's peak RSS | 312 MB | < 400 MB | met | Synapse: about 1.2 GB |");
    // A figure the table does not know yet is still shown.
    expect(row(federation, "`verify_workers`")).toBe("| `verify_workers` | 2 | | | |");
    const mls = report.slice(report.indexOf("## MLS overlay"), report.indexOf("## Application services"));
    expect(row(mls, "hub validates a commit, 100 devices")).toContain("| < `client_commit_ms_100` (well below the client's commit cost) | **missed** |");
  });

  it("gathers every target in one table, and says which benchmarks did not give numbers", () => {
    const glance = report.slice(report.indexOf("## Targets at a glance"), report.indexOf("## Event kernel"));
    expect(glance.split("\n").filter((line) => line.startsWith("| ") && !line.startsWith("| benchmark") && !line.startsWith("| ---"))).toHaveLength(
      BENCHMARKS.flatMap((b) => b.figures).filter((f) => f.target).length,
    );
    expect(glance).toContain("| federation | hub ingest | 2,455 events/s | >= 2,000 events/s | met |  |");
    const appservice = report.slice(report.indexOf("## Application services"));
    expect(appservice).toContain("Failed: exit code 1.");
    expect(report).toContain("## extra: `npm run bench:extra`");
    expect(report).toContain("| `things_per_s` | 12.345 | | | |");
  });

  it("says a benchmark that has no script is not in this checkout, and one left out was not run", () => {
    const partial = renderReport(machine, [ok("kernel", KERNEL_OUTPUT), { name: "client", status: "skipped" }]);
    expect(partial).toContain("| client | sends | not run this time | >= 1,500 sends/s |  |  |");
    expect(partial.slice(partial.indexOf("## MLS overlay"))).toContain("Not in this checkout (no `bench:` script).");
    // Same input, same text: the report can be checked in and diffed.
    expect(renderReport(machine, [ok("kernel", KERNEL_OUTPUT)])).toBe(renderReport(machine, [ok("kernel", KERNEL_OUTPUT)]));
  });
});
