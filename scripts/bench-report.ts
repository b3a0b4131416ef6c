// `npm run bench`: runs every `bench:*` script of package.json one after another (never two at
// once: each one measures the machine), takes the last JSON line each prints, and writes
// docs/benchmarks.md — the machine, every figure with its target and the reference it is compared
// with (bench/targets.ts) — so that the numbers a reader sees come from one command.
//
//   npm run bench                                   every benchmark, then docs/benchmarks.md
//   npm run bench -- --only kernel --out /tmp/b.md  some of them, the report elsewhere
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem, type } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { BENCHMARKS, type Benchmark, type Figure, type Target } from "../bench/targets.js";

export interface Machine {
  cpu: string;
  cores: number;
  ramGiB: number;
  node: string;
  os: string;
  /** ISO date-time (UTC) of the run. */
  date: string;
}

/** What one `npm run bench:<name>` gave. */
export type BenchOutcome =
  | { name: string; status: "ok"; figures: Record<string, unknown>; seconds: number }
  | { name: string; status: "failed"; reason: string; seconds: number }
  | { name: string; status: "absent" }
  | { name: string; status: "skipped" };

/** The last line of `output` that is a JSON object (benchmarks print tables before it). */
export function lastJsonLine(output: string): Record<string, unknown> | undefined {
  const lines = output.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (!line.startsWith("{")) continue;
    try {
      const value: unknown = JSON.parse(line);
      if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // A line that only looks like JSON: keep looking.
    }
  }
  return undefined;
}

/** The bench:* scripts of package.json: the known ones in bench/targets.ts order, then any others. */
export function benchScripts(scripts: Record<string, string>, known: readonly Benchmark[] = BENCHMARKS): string[] {
  const names = Object.keys(scripts)
    .filter((script) => script.startsWith("bench:"))
    .map((script) => script.slice("bench:".length));
  const order = known.map((benchmark) => benchmark.name);
  return [...order.filter((name) => names.includes(name)), ...names.filter((name) => !order.includes(name)).sort()];
}

/** The number as the benchmark printed it, with thousands separated: `1,432.7`. */
function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const [whole, fraction] = String(value).split(".") as [string, string | undefined];
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return fraction === undefined ? grouped : `${grouped}.${fraction}`;
}

function formatValue(value: unknown, unit: string): string {
  if (value === undefined || value === null) return "—";
  const text = typeof value === "number" ? formatNumber(value) : typeof value === "string" ? value : JSON.stringify(value);
  return unit ? `${text} ${unit}` : text;
}

function describeTarget(target: Target | undefined, unit: string): string {
  if (!target) return "";
  if ("figure" in target) return `${target.op} \`${target.figure}\` (${target.text})`;
  return `${target.op} ${formatValue(target.value, unit)}`;
}

/** Whether the figure meets its target: undefined when there is no target or no value to judge. */
export function meetsTarget(figure: Figure, figures: Record<string, unknown>): boolean | undefined {
  const { target } = figure;
  const value = figures[figure.key];
  if (!target || typeof value !== "number") return undefined;
  const bound = "figure" in target ? figures[target.figure] : target.value;
  if (typeof bound !== "number") return undefined;
  switch (target.op) {
    case ">=":
      return value >= bound;
    case ">":
      return value > bound;
    case "<=":
      return value <= bound;
    case "<":
      return value < bound;
  }
}

const verdict = (met: boolean | undefined): string => (met === undefined ? "" : met ? "met" : "**missed**");

/** docs/benchmarks.md from the machine and each benchmark's outcome. Pure: same input, same text. */
export function renderReport(machine: Machine, outcomes: readonly BenchOutcome[], known: readonly Benchmark[] = BENCHMARKS): string {
  const lines: string[] = [
    "# Benchmarks",
    "",
    "<!-- Written by `npm run bench` (scripts/bench-report.ts); targets and references live in bench/targets.ts. Do not edit by hand. -->",
    "",
    "Every figure below comes from one command, `npm run bench`, which runs each `npm run bench:<name>` in turn on an",
    "otherwise idle machine and keeps the last JSON line each prints. Run one benchmark alone with `npm run bench:<name>`;",
    "the targets are the ones the project's issues set.",
    "",
    "## Machine",
    "",
    "| | |",
    "| --- | --- |",
    `| CPU | ${machine.cpu} |`,
    `| cores | ${machine.cores} |`,
    `| RAM | ${formatNumber(machine.ramGiB)} GiB |`,
    `| Node.js | ${machine.node} |`,
    `| OS | ${machine.os} |`,
    `| date | ${machine.date} |`,
    "",
    "## Targets at a glance",
    "",
    "| benchmark | figure | value | target | | compared with |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  const byName = new Map(outcomes.map((outcome) => [outcome.name, outcome]));
  for (const benchmark of known) {
    const outcome = byName.get(benchmark.name);
    for (const figure of benchmark.figures.filter((f) => f.target !== undefined)) {
      const figures = outcome?.status === "ok" ? outcome.figures : {};
      const value = outcome?.status === "ok" ? formatValue(figures[figure.key], figure.unit) : statusText(outcome);
      lines.push(`| ${benchmark.name} | ${figure.label} | ${value} | ${describeTarget(figure.target, figure.unit)} | ${verdict(meetsTarget(figure, figures))} | ${figure.reference ?? ""} |`);
    }
  }

  const sections = [...known, ...outcomes.filter((outcome) => !known.some((b) => b.name === outcome.name)).map((outcome): Benchmark => ({ name: outcome.name, title: outcome.name, issue: 0, about: "", figures: [] }))];
  for (const benchmark of sections) {
    const outcome = byName.get(benchmark.name);
    lines.push("", `## ${benchmark.title}: \`npm run bench:${benchmark.name}\``, "");
    if (benchmark.issue > 0) lines.push(`${benchmark.about} (issue ${benchmark.issue})`, "");
    else if (benchmark.about) lines.push(benchmark.about, "");
    if (outcome?.status !== "ok") {
      const status = statusText(outcome);
      lines.push(`${status.charAt(0).toUpperCase()}${status.slice(1)}.`);
      continue;
    }
    lines.push(`Ran in ${formatNumber(Math.round(outcome.seconds))} s.`, "", "| figure | value | target | | compared with |", "| --- | --- | --- | --- | --- |");
    for (const figure of benchmark.figures) {
      lines.push(`| ${figure.label} | ${formatValue(outcome.figures[figure.key], figure.unit)} | ${describeTarget(figure.target, figure.unit)} | ${verdict(meetsTarget(figure, outcome.figures))} | ${figure.reference ?? ""} |`);
    }
    // Figures a benchmark prints that the table does not know yet still reach the reader.
    for (const [key, value] of Object.entries(outcome.figures)) {
      if (!benchmark.figures.some((figure) => figure.key === key)) lines.push(`| \`${key}\` | ${formatValue(value, "")} | | | |`);
    }
  }
  return lines.join("\n") + "\n";
}

function statusText(outcome: BenchOutcome | undefined): string {
  if (outcome === undefined || outcome.status === "absent") return "not in this checkout (no `bench:` script)";
  if (outcome.status === "skipped") return "not run this time";
  if (outcome.status === "failed") return `failed: ${outcome.reason}`;
  return "ran";
}

export function describeMachine(now: Date = new Date()): Machine {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model.trim() ?? "unknown",
    cores: cpu.length,
    ramGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${type()} ${release()}`,
    date: now.toISOString().replace(/\.\d+Z$/, "Z"),
  };
}

/** Runs `npm run --silent bench:<name>`, echoing its output, and keeps its last JSON line. */
function runBenchmark(name: string, cwd: string): Promise<BenchOutcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn("npm", ["run", "--silent", `bench:${name}`], { cwd, stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
      process.stdout.write(chunk);
    });
    child.on("error", (error) => resolve({ name, status: "failed", reason: error.message, seconds: (Date.now() - started) / 1000 }));
    child.on("close", (code, signal) => {
      const seconds = (Date.now() - started) / 1000;
      const figures = lastJsonLine(output);
      if (code !== 0) resolve({ name, status: "failed", reason: signal ? `killed by ${signal}` : `exit code ${code}`, seconds });
      else if (!figures) resolve({ name, status: "failed", reason: "no JSON line in its output", seconds });
      else resolve({ name, status: "ok", figures, seconds });
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: "string" }, out: { type: "string" } } });
  const root = join(dirname(fileURLToPath(import.meta.url)), "..");
  const scripts = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
  const available = benchScripts(scripts);
  const only = values.only?.split(",").map((name) => name.trim());
  const unknown = (only ?? []).filter((name) => !available.includes(name));
  if (unknown.length > 0) throw new Error(`no bench script for: ${unknown.join(", ")} (have: ${available.join(", ")})`);
  const machine = describeMachine();
  const outcomes: BenchOutcome[] = [];
  for (const name of available) {
    if (only && !only.includes(name)) {
      outcomes.push({ name, status: "skipped" });
      continue;
    }
    console.log(`\n=== npm run bench:${name}`);
    const outcome = await runBenchmark(name, root);
    console.log(`=== bench:${name}: ${outcome.status}`);
    outcomes.push(outcome);
  }
  for (const benchmark of BENCHMARKS) if (!available.includes(benchmark.name)) outcomes.push({ name: benchmark.name, status: "absent" });
  const out = values.out ?? join(root, "docs", "benchmarks.md");
  writeFileSync(out, renderReport(machine, outcomes));
  console.log(`\nwrote ${out}`);
  if (outcomes.some((outcome) => outcome.status === "failed")) process.exitCode = 1;
}

// Run as a script, not when a test imports the functions above.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
