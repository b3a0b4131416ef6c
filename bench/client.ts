// npm run bench:client — Client-Server API load on loopback against a started server (issue
// "Homeserver"): 50 users in 10 rooms (5 each) send messages while each holds a long-polling
// /sync open. The server runs as its own process (the built `bobbin start`), so its RSS is its own.
//
//   idle:       everyone registered, joined and long-polling; RSS after a short settle
//   throughput: every user sends back to back for THROUGHPUT_S seconds -> sends/s, send latency
//   delivery:   an open loop of DELIVERY_RATE sends/s -> time from send until each other member's
//               sync returns the message (p99 over all deliveries)
//
// Prints a table per engine, then one JSON line per engine: PostgreSQL first (when reachable),
// SQLite last.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import pg from "pg";

const USERS = 50;
const ROOMS = 10;
const THROUGHPUT_S = Number(process.env.BENCH_THROUGHPUT_S ?? 10);
const DELIVERY_S = Number(process.env.BENCH_DELIVERY_S ?? 10);
const DELIVERY_RATE = Number(process.env.BENCH_DELIVERY_RATE ?? 200);

// The load generator talks plain node:http through a keep-alive agent without a socket limit, so
// the 50 long-polls and the senders each keep their own socket. fetch (undici) cost it 1.26 ms of
// CPU per send with its syncs, which on this 2-core machine would take most of a core at 1,000
// sends/s: the generator itself would set the ceiling instead of the server.

interface User {
  userId: string;
  token: string;
  roomId: string;
}

interface Result {
  engine: "sqlite" | "postgres";
  sends_per_s: number;
  p50_send_ms: number;
  p99_send_ms: number;
  p99_delivery_ms: number;
  idle_rss_mb: number;
  load_rss_mb: number;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

/**
 * CPU time (user + system) a process has used, in ms, from /proc (clock ticks of 10 ms). On a
 * machine shared with other jobs, server CPU per send is steadier than sends per second.
 */
export function cpuMs(pid: number): number {
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export const percentile = (sorted: number[], p: number): number =>
  sorted.length === 0 ? NaN : Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! * 10) / 10;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The node flags Bobbin runs with, defined once: on the `#!` line of bin/bobbin.js (which `npm
 * start` and the `bobbin` command run), so the server measured here starts as users start it.
 */
export function serverNodeFlags(): string[] {
  const shebang = readFileSync(new URL("../bin/bobbin.js", import.meta.url), "utf8").split("\n", 1)[0] ?? "";
  const flags = /^#!\/usr\/bin\/env -S node((?: \S+)*)\s*$/.exec(shebang)?.[1];
  if (flags === undefined) throw new Error(`bin/bobbin.js starts with ${JSON.stringify(shebang)}, not "#!/usr/bin/env -S node [flags]"`);
  return flags.split(" ").filter(Boolean);
}

/** Starts the built server; `options` let bench/federation.ts name it `localhost:<port>` and add config lines. */
export async function startServer(dir: string, port: number, database: string, options: { serverName?: string; extraConfig?: string[] } = {}): Promise<ChildProcess> {
  const config = join(dir, "bobbin.yaml");
  writeFileSync(
    config,
    [
      `server_name: ${options.serverName ?? "bench.localhost"}`,
      "listeners:",
      `  - { host: 127.0.0.1, port: ${port} }`,
      `data_dir: ${dir}`,
      database,
      "registration: { enabled: true, allow_guests: false }",
      "log_level: warn",
      "rate_limits:",
      "  login: { per_second: 100000, burst: 100000 }",
      "  register: { per_second: 100000, burst: 100000 }",
      "  message: { per_second: 100000, burst: 100000 }",
      // 50 users on one loopback address send ~1,500 messages/s and sync after each: far above the
      // per-address default, which is meant for one client address, not for a load generator.
      "  per_user: { per_second: 100000, burst: 100000 }",
      "  per_ip: { per_second: 100000, burst: 100000 }",
      "  per_origin: { per_second: 100000, burst: 100000 }",
      ...(options.extraConfig ?? []),
      "",
    ].join("\n"),
  );
  // BENCH_SERVER_NODE_ARGS: extra node flags for the server, after Bobbin's own (a later V8 flag
  // wins), e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", or "--max-semi-space-size=16" (node's default).
  const nodeArgs = [...serverNodeFlags(), ...(process.env.BENCH_SERVER_NODE_ARGS ?? "").split(" ").filter(Boolean)];
  // BENCH_DIST: another build to measure (an A/B against a copy of an older dist/; the directory
  // must resolve the same node_modules, e.g. through a symlink beside it).
  const entry = join(process.env.BENCH_DIST ?? "dist", "main.js");
  const child = spawn(process.execPath, [...nodeArgs, entry, "start", "--config", config], { stdio: ["ignore", "inherit", "inherit"] });
  for (let i = 0; i < 200; i++) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/_matrix/client/versions`);
      if (response.ok) return child;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    await sleep(100);
  }
  child.kill("SIGKILL");
  throw new Error("server did not start");
}

/** One JSON request on loopback through `agent`; the body of any status is parsed as JSON. */
function jsonRequest(agent: Agent, port: number, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string | number> = token ? { authorization: `Bearer ${token}` } : {};
  if (payload !== undefined) Object.assign(headers, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
        } catch (error) {
          reject(error);
        }
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(payload);
  });
}

async function runEngine(engine: "sqlite" | "postgres", postgresUrl?: string): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), "bobbin-bench-"));
  const port = await freePort();
  const schema = `bench_${process.pid}_${Date.now()}`;
  const database = engine === "sqlite" ? "database: { engine: sqlite }" : `database: { engine: postgres, url: "${postgresUrl}", schema: ${schema} }`;
  const child = await startServer(dir, port, database);
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  let stopping = false;

  async function api(method: string, path: string, token?: string, body?: unknown): Promise<any> {
    // `any`: the bench reads a few fields of arbitrary Matrix responses.
    const { status, json } = await jsonRequest(agent, port, method, `/_matrix/client/v3${path}`, token, body);
    if (status < 200 || status > 299) throw new Error(`${method} ${path}: ${status} ${JSON.stringify(json)}`);
    return json;
  }

  try {
    // Setup: users, rooms (public, 5 members each).
    const users: User[] = [];
    for (let i = 0; i < USERS; i++) {
      const username = `user${i}`;
      const password = "bench password";
      let session: string | undefined;
      const first = await jsonRequest(agent, port, "POST", "/_matrix/client/v3/register", undefined, { username, password });
      session = (first.json as { session?: string }).session;
      const registered = await api("POST", "/register", undefined, { username, password, auth: { type: "m.login.dummy", session } });
      users.push({ userId: registered.user_id, token: registered.access_token, roomId: "" });
    }
    const roomIds: string[] = [];
    for (let r = 0; r < ROOMS; r++) {
      const created = await api("POST", "/createRoom", users[r]!.token, { preset: "public_chat", name: `bench ${r}` });
      roomIds.push(created.room_id);
    }
    for (let i = 0; i < USERS; i++) {
      const roomId = roomIds[i % ROOMS]!;
      users[i]!.roomId = roomId;
      if (i >= ROOMS) await api("POST", `/join/${encodeURIComponent(roomId)}`, users[i]!.token, {});
    }

    // Every user long-polls; deliveries are timed against the send's start.
    const sentAt = new Map<string, number>();
    const deliveries: number[] = [];
    let measuringDelivery = false;
    let syncResponses = 0;
    const filter = encodeURIComponent(JSON.stringify({ room: { timeline: { limit: 50 } }, presence: { types: [] } }));
    // A sync failing while we measure fails the benchmark; once `stopping`, failures are the shutdown.
    let loopError: unknown;
    users.forEach(async (user) => {
      try {
        let since = (await api("GET", `/sync?filter=${filter}&timeout=0`, user.token)).next_batch as string;
        while (!stopping) {
          const body = await api("GET", `/sync?filter=${filter}&timeout=30000&since=${encodeURIComponent(since)}`, user.token);
          const now = performance.now();
          syncResponses++;
          since = body.next_batch;
          for (const room of Object.values<any>(body.rooms?.join ?? {})) {
            for (const event of room.timeline?.events ?? []) {
              const id = event.content?.bench_id;
              if (measuringDelivery && typeof id === "string" && event.sender !== user.userId && sentAt.has(id)) deliveries.push(now - sentAt.get(id)!);
            }
          }
        }
      } catch (error) {
        if (!stopping) loopError ??= error;
      }
    });
    await sleep(2000);
    const idleRss = rssMb(child.pid!);

    // Throughput: closed loop, every user sends back to back.
    let peakRss = idleRss;
    const rssSampler = setInterval(() => (peakRss = Math.max(peakRss, rssMb(child.pid!))), 250);
    const sendLatencies: number[] = [];
    let txn = 0;
    const send = async (user: User, content: Record<string, unknown>): Promise<number> => {
      const started = performance.now();
      await api("PUT", `/rooms/${encodeURIComponent(user.roomId)}/send/m.room.message/t${txn++}`, user.token, content);
      return performance.now() - started;
    };
    const throughputEnd = performance.now() + THROUGHPUT_S * 1000;
    const throughputStart = performance.now();
    const cpuStart = cpuMs(child.pid!);
    const clientCpuStart = process.cpuUsage();
    const syncsStart = syncResponses;
    await Promise.all(
      users.map(async (user) => {
        while (performance.now() < throughputEnd) sendLatencies.push(await send(user, { msgtype: "m.text", body: "load" }));
      }),
    );
    const sendsPerS = sendLatencies.length / ((performance.now() - throughputStart) / 1000);
    const cpuPerSend = (cpuMs(child.pid!) - cpuStart) / sendLatencies.length;
    const clientCpu = process.cpuUsage(clientCpuStart);
    const clientCpuPerSend = (clientCpu.user + clientCpu.system) / 1000 / sendLatencies.length;
    const syncsPerSend = (syncResponses - syncsStart) / sendLatencies.length;
    console.log(
      `${engine}: server CPU ${cpuPerSend.toFixed(2)} ms per send while sending, load generator ${clientCpuPerSend.toFixed(2)} ms (${sendLatencies.length} sends, ${syncsPerSend.toFixed(2)} sync responses per send)`,
    );
    await sleep(1000);

    // Delivery: an open loop at DELIVERY_RATE sends/s.
    measuringDelivery = true;
    const inFlight: Promise<number>[] = [];
    const total = DELIVERY_RATE * DELIVERY_S;
    const startedAt = performance.now();
    for (let i = 0; i < total; i++) {
      const due = startedAt + (i * 1000) / DELIVERY_RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const id = `d${i}`;
      sentAt.set(id, performance.now());
      inFlight.push(send(users[i % USERS]!, { msgtype: "m.text", body: "delivery", bench_id: id }));
    }
    await Promise.all(inFlight);
    const expected = total * (USERS / ROOMS - 1);
    for (let i = 0; i < 100 && deliveries.length < expected; i++) await sleep(50);
    clearInterval(rssSampler);
    if (deliveries.length < expected) console.warn(`${engine}: only ${deliveries.length} of ${expected} deliveries arrived`);

    if (loopError !== undefined) throw loopError;
    const sortedSends = [...sendLatencies].sort((a, b) => a - b);
    const sortedDeliveries = [...deliveries].sort((a, b) => a - b);
    stopping = true;
    return {
      engine,
      sends_per_s: Math.round(sendsPerS),
      p50_send_ms: percentile(sortedSends, 50),
      p99_send_ms: percentile(sortedSends, 99),
      p99_delivery_ms: percentile(sortedDeliveries, 99),
      idle_rss_mb: idleRss,
      load_rss_mb: peakRss,
    };
  } finally {
    stopping = true;
    agent.destroy();
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
    rmSync(dir, { recursive: true, force: true });
    if (engine === "postgres" && postgresUrl) {
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      // Writes the run's dirty buffers now rather than during whatever is measured next.
      await client.query("CHECKPOINT").catch((error: Error) => console.warn(`PostgreSQL CHECKPOINT after the run: ${error.message}`));
      await client.end();
    }
  }
}

async function reachablePostgres(): Promise<string | undefined> {
  const url = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test";
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on("error", () => {});
  try {
    await client.connect();
    return url;
  } catch {
    console.warn(`PostgreSQL not reachable at ${url}: PostgreSQL run skipped`);
    return undefined;
  } finally {
    await client.end().catch(() => {});
  }
}

async function main(): Promise<void> {
  const postgresUrl = process.env.BENCH_ENGINES === "sqlite" ? undefined : await reachablePostgres();
  // SQLite, the embedded default and the figure the targets are for, runs first: after a run the
  // PostgreSQL server goes on writing back and vacuuming for a while (the run's schema is
  // dropped), on the same two cores. The lines are still printed PostgreSQL first, SQLite last.
  const sqlite = await runEngine("sqlite");
  const results: Result[] = postgresUrl ? [await runEngine("postgres", postgresUrl), sqlite] : [sqlite];
  console.log(`users: ${USERS}, rooms: ${ROOMS}, throughput ${THROUGHPUT_S}s closed loop, delivery ${DELIVERY_S}s at ${DELIVERY_RATE}/s, node ${process.version}`);
  console.table(Object.fromEntries(results.map(({ engine, ...figures }) => [engine, figures])));
  for (const result of results) console.log(JSON.stringify(result));
}

// Only when run as the script: bench/federation.ts imports the helpers above.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
