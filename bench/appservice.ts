// npm run bench:appservice — delivery to an application service (issue "Application Service API").
// The server is the built `bobbin start` in its own process on SQLite, with one registration file
// (`app_service_config_files`); the bridge is a bare HTTP server in this process that acknowledges
// every transaction at once and notes when each event arrived.
//
//   throughput: SENDERS users send back to back for THROUGHPUT_S seconds in ROOMS rooms the bridge's
//               bot has joined -> events/s delivered to the bridge (first send to last arrival)
//   latency:    an open loop of RATE sends/s for LATENCY_S seconds -> time from the start of each
//               send until the bridge has the event (p99)
//   backlog:    the bridge answers 503 while BACKLOG messages are sent (the pusher backs off with the
//               first transaction in flight); then it acknowledges again and pings Bobbin, as bridges
//               do when they start -> seconds until the bridge has all of them
//
// Sizes: BENCH_AS_THROUGHPUT_S, BENCH_AS_LATENCY_S, BENCH_AS_RATE, BENCH_AS_BACKLOG. The last line is one JSON object.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, percentile, sleep, startServer } from "./client.js";

const SENDERS = 20;
const ROOMS = 10;
const THROUGHPUT_S = Number(process.env.BENCH_AS_THROUGHPUT_S ?? 10);
const LATENCY_S = Number(process.env.BENCH_AS_LATENCY_S ?? 10);
const RATE = Number(process.env.BENCH_AS_RATE ?? 200);
const BACKLOG = Number(process.env.BENCH_AS_BACKLOG ?? 10_000);

interface Bridge {
  /** Event body -> arrival time (ms, performance.now). */
  arrivals: Map<string, number>;
  up: boolean;
  transactions: number;
  close(): Promise<void>;
}

async function startBridge(port: number, hsToken: string): Promise<Bridge> {
  const bridge: Bridge = { arrivals: new Map(), up: true, transactions: 0, close: async () => {} };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (req.headers.authorization !== `Bearer ${hsToken}`) {
        res.writeHead(403).end('{"errcode":"M_FORBIDDEN"}');
        return;
      }
      if (!bridge.up) {
        res.writeHead(503).end("{}");
        return;
      }
      if (req.method === "PUT" && req.url?.startsWith("/_matrix/app/v1/transactions/")) {
        const at = performance.now();
        bridge.transactions += 1;
        const { events } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { events: Array<{ type: string; content: { body?: string } }> };
        for (const event of events) if (event.type === "m.room.message" && typeof event.content.body === "string" && !bridge.arrivals.has(event.content.body)) bridge.arrivals.set(event.content.body, at);
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  bridge.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return bridge;
}

async function call(base: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(base + path, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function register(base: string, localpart: string): Promise<string> {
  const body = { username: localpart, password: "bench password 1234", auth: { type: "m.login.dummy" } };
  const first = await fetch(`${base}/_matrix/client/v3/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: localpart }) });
  const session = ((await first.json()) as { session?: string }).session;
  const done = await fetch(`${base}/_matrix/client/v3/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, auth: { ...body.auth, session } }) });
  const json = (await done.json()) as { access_token?: string };
  if (!json.access_token) throw new Error(`register ${localpart}: ${JSON.stringify(json)}`);
  return json.access_token;
}

async function waitUntil(what: string, probe: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!probe()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bobbin-bench-as-"));
  const [port, bridgePort] = [await freePort(), await freePort()];
  const asToken = randomBytes(16).toString("hex");
  const hsToken = randomBytes(16).toString("hex");
  const registration = join(dir, "bridge.yaml");
  writeFileSync(
    registration,
    [
      "id: bench",
      `url: http://127.0.0.1:${bridgePort}`,
      `as_token: ${asToken}`,
      `hs_token: ${hsToken}`,
      "sender_localpart: _bench_bot",
      "namespaces:",
      "  users: [{ exclusive: true, regex: '@_bench_.*' }]",
      "",
    ].join("\n"),
  );
  const bridge = await startBridge(bridgePort, hsToken);
  const child = await startServer(dir, port, "database: { engine: sqlite }", { extraConfig: [`app_service_config_files: [${registration}]`] });
  const base = `http://127.0.0.1:${port}`;
  try {
    const tokens = await Promise.all(Array.from({ length: SENDERS }, (_, i) => register(base, `sender${i}`)));
    // ROOMS rooms, the senders spread over them (each room is one writer: one room would measure its lock).
    const roomIds: string[] = [];
    for (let r = 0; r < ROOMS; r++) {
      const created = await call(base, tokens[r]!, "POST", "/_matrix/client/v3/createRoom", { preset: "public_chat" });
      roomIds.push(created.body.room_id);
      // The bridge's bot joins: every event of the room is now the bridge's.
      const joined = await call(base, asToken, "POST", `/_matrix/client/v3/join/${encodeURIComponent(created.body.room_id)}`, {});
      if (joined.status !== 200) throw new Error(`bot join: ${JSON.stringify(joined.body)}`);
    }
    for (let i = ROOMS; i < SENDERS; i++) await call(base, tokens[i]!, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomIds[i % ROOMS]!)}`, {});
    let counter = 0;
    const send = (token: string, body: string) => {
      const roomId = roomIds[tokens.indexOf(token) % ROOMS]!;
      return call(base, token, "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t${counter++}`, { msgtype: "m.text", body });
    };

    // Throughput.
    const sentAt = new Map<string, number>();
    const throughputStart = performance.now();
    const throughputEnd = throughputStart + THROUGHPUT_S * 1000;
    await Promise.all(
      tokens.map(async (token, i) => {
        for (let n = 0; performance.now() < throughputEnd; n++) {
          const body = `tp ${i} ${n}`;
          sentAt.set(body, performance.now());
          await send(token, body);
        }
      }),
    );
    const throughputBodies = [...sentAt.keys()];
    await waitUntil("throughput delivery", () => throughputBodies.every((b) => bridge.arrivals.has(b)), 120_000);
    const lastArrival = Math.max(...throughputBodies.map((b) => bridge.arrivals.get(b)!));
    const eventsPerS = throughputBodies.length / ((lastArrival - throughputStart) / 1000);

    // Latency: an open loop at RATE sends/s.
    const latencyBodies: string[] = [];
    const latencyStarts = new Map<string, number>();
    const inFlight: Array<Promise<unknown>> = [];
    const loopStart = performance.now();
    for (let n = 0; n < RATE * LATENCY_S; n++) {
      const due = loopStart + (n * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const body = `lat ${n}`;
      latencyBodies.push(body);
      latencyStarts.set(body, performance.now());
      inFlight.push(send(tokens[n % SENDERS]!, body));
    }
    await Promise.all(inFlight);
    await waitUntil("latency delivery", () => latencyBodies.every((b) => bridge.arrivals.has(b)), 120_000);
    const latencies = latencyBodies.map((b) => bridge.arrivals.get(b)! - latencyStarts.get(b)!).sort((x, y) => x - y);

    // Backlog: the bridge is down while BACKLOG messages are sent, then comes back and pings.
    bridge.up = false;
    const backlogBodies = Array.from({ length: BACKLOG }, (_, n) => `bl ${n}`);
    let next = 0;
    await Promise.all(
      tokens.map(async (token) => {
        for (let n = next++; n < BACKLOG; n = next++) await send(token, backlogBodies[n]!);
      }),
    );
    await sleep(200);
    const transactionsBefore = bridge.transactions;
    bridge.up = true;
    const drainStart = performance.now();
    const ping = await call(base, asToken, "POST", "/_matrix/client/v1/appservice/bench/ping", { transaction_id: "bench" });
    if (ping.status !== 200) throw new Error(`ping: ${JSON.stringify(ping.body)}`);
    await waitUntil("backlog drain", () => backlogBodies.every((b) => bridge.arrivals.has(b)), 600_000);
    const drainS = (Math.max(...backlogBodies.map((b) => bridge.arrivals.get(b)!)) - drainStart) / 1000;
    const drainTransactions = bridge.transactions - transactionsBefore;

    const result = {
      events_per_s_to_bridge: Math.round(eventsPerS),
      p99_event_to_bridge_ms: Math.round(percentile(latencies, 99) * 10) / 10,
      backlog_drain_s_10000: Math.round(drainS * 100) / 100,
    };
    console.log("phase        measure");
    console.log(`throughput   ${throughputBodies.length} events from ${SENDERS} senders in ${THROUGHPUT_S} s: ${result.events_per_s_to_bridge} events/s reached the bridge`);
    console.log(`latency      ${latencyBodies.length} sends at ${RATE}/s: p50 ${Math.round(percentile(latencies, 50))} ms, p99 ${result.p99_event_to_bridge_ms} ms from send to bridge`);
    console.log(`backlog      ${BACKLOG} events queued while the bridge was down: drained in ${result.backlog_drain_s_10000} s (${drainTransactions} transactions)`);
    console.log(JSON.stringify(result));
  } finally {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
    await bridge.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
