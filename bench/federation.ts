// npm run bench:federation — a Bobbin hub under federation load (issue "Federation"). The hub is the
// built `bobbin start` in its own process, on SQLite, with `federation.allow_insecure_http`; the other
// servers are lightweight fakes in this process (bench/fed-servers.ts), except the joining
// participant of the join phase, which is a second real Bobbin. Each phase gets a fresh hub.
//
//   ingest:  one participant sends INGEST message LPDUs to the hub in transactions of 50, one
//            transaction in flight (LM draft "PUT /send/:txnId": wait for the 200 before the next);
//            events/s from the first send to the last echo, and LPDU→echo latency: from sending the
//            transaction holding an LPDU until the hub's completed PDU arrives back through the
//            hub's own `/send` to the participant.
//   fan-out: DESTINATIONS fake servers join one user each (make_join/send_join), then hub-local users
//            send FANOUT_EVENTS messages through the client API; the drain time runs from the first
//            send until every destination has received every message (Synapse took ~2 h for this
//            shape, synapse#10257).
//   join:    a room shaped like Matrix HQ (JOIN_MEMBERS joined, JOIN_STATE state events) on the
//            hub; a second Bobbin joins it through its client API: wall time of that request, its
//            peak RSS (VmHWM), and the size of a send_join answer for the same room.
//
// Sizes come from the environment (BENCH_FED_INGEST, BENCH_FED_DESTINATIONS, BENCH_FED_FANOUT_EVENTS,
// BENCH_FED_JOIN_MEMBERS, BENCH_FED_JOIN_STATE, BENCH_FED_PHASES=ingest,fanout,join);
// BENCH_FED_SMOKE=1 shrinks everything to a run of well under a minute.
// The last line of output is one JSON object.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject } from "../src/core/json.js";
import { freePort, percentile, sleep, startServer } from "./client.js";
import { joinViaHandshake, sendTxn, startFakeServer, startFakeServers, type FakeServer, type ReceivedTxn } from "./fed-servers.js";

const SMOKE = process.env.BENCH_FED_SMOKE === "1";
const sizeOf = (name: string, full: number, smoke: number): number => Number(process.env[name] ?? (SMOKE ? smoke : full));
const INGEST = sizeOf("BENCH_FED_INGEST", 20_000, 1_000);
const TXN_PDUS = 50; // LM draft "PUT /send/:txnId": at most 50 PDUs per transaction
const DESTINATIONS = sizeOf("BENCH_FED_DESTINATIONS", 415, 10);
const FANOUT_EVENTS = sizeOf("BENCH_FED_FANOUT_EVENTS", 4_500, 200);
const FANOUT_SENDERS = sizeOf("BENCH_FED_FANOUT_SENDERS", 4, 4);
const JOIN_CONCURRENCY = sizeOf("BENCH_FED_JOIN_CONCURRENCY", 16, 8);
const JOIN_MEMBERS = sizeOf("BENCH_FED_JOIN_MEMBERS", 6_379, 300);
const JOIN_STATE = sizeOf("BENCH_FED_JOIN_STATE", 10_684, 500);
const JOIN_SERVERS = sizeOf("BENCH_FED_JOIN_SERVERS", 20, 4);
/** A phase fails when nothing it waits for has happened for this long. */
const STALL_MS = sizeOf("BENCH_FED_STALL_MS", 60_000, 20_000);
const PHASES = new Set((process.env.BENCH_FED_PHASES ?? "ingest,fanout,join").split(","));

// ---------------------------------------------------------------------------------------------
// A real Bobbin process and its client API

interface Bobbin {
  serverName: string;
  process: ChildProcess;
  clientBase: string;
  dir: string;
  stop(): Promise<void>;
}

async function startBobbin(label: string): Promise<Bobbin> {
  const dir = mkdtempSync(join(tmpdir(), `bobbin-bench-fed-${label}-`));
  const port = await freePort();
  const serverName = `localhost:${port}`;
  const child = await startServer(dir, port, "database: { engine: sqlite }", {
    serverName,
    extraConfig: ["federation: { allow_insecure_http: true }", "limits: { max_request_bytes: 67108864 }"],
  });
  return {
    serverName,
    process: child,
    clientBase: `http://127.0.0.1:${port}/_matrix/client/v3`,
    dir,
    async stop() {
      child.kill("SIGTERM");
      if (child.exitCode === null) await new Promise((resolve) => child.once("exit", resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Kilobytes of a /proc/<pid>/status field as MB (VmRSS now, VmHWM the peak so far). */
function procMb(pid: number, field: "VmRSS" | "VmHWM"): number {
  const kb = Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

// `any`: the bench reads a few fields of arbitrary Matrix responses.
async function api(server: Bobbin, method: string, path: string, token?: string, body?: unknown): Promise<any> {
  const response = await fetch(server.clientBase + path, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`${server.serverName} ${method} ${path}: ${response.status} ${JSON.stringify(json).slice(0, 500)}`);
  return json;
}

/** Registers a user through open registration (the dummy stage). */
async function register(server: Bobbin, username: string): Promise<{ userId: string; token: string }> {
  const password = "bench password";
  const first = await fetch(`${server.clientBase}/register`, { method: "POST", body: JSON.stringify({ username, password }) });
  const session = ((await first.json()) as { session?: string }).session;
  const registered = await api(server, "POST", "/register", undefined, { username, password, auth: { type: "m.login.dummy", session } });
  return { userId: registered.user_id, token: registered.access_token };
}

async function createPublicRoom(hub: Bobbin, token: string, name: string): Promise<string> {
  return (await api(hub, "POST", "/createRoom", token, { preset: "public_chat", name })).room_id;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Waits until `done()`; throws if `progress()` has not moved for STALL_MS; reports every 30 s. */
async function waitFor(what: string, done: () => boolean, progress: () => number): Promise<void> {
  let last = progress();
  let lastMovedAt = performance.now();
  let reportAt = performance.now() + 30_000;
  while (!done()) {
    await sleep(20);
    const now = progress();
    if (performance.now() > reportAt) {
      console.log(`${what}: ${now} so far`);
      reportAt += 30_000;
    }
    if (now !== last) {
      last = now;
      lastMovedAt = performance.now();
    } else if (performance.now() - lastMovedAt > STALL_MS) {
      throw new Error(`${what}: no progress for ${STALL_MS / 1000}s (at ${now})`);
    }
  }
}

/** Runs `task` over `items`, at most `limit` at a time. */
async function inParallel<T>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        await task(items[index]!, index);
      }
    }),
  );
}

const seconds = (ms: number): number => Math.round(ms / 10) / 100;

/** PDUs of `roomId` in a received transaction. */
function pdusOf(txn: ReceivedTxn, roomId: string): JsonObject[] {
  return txn.pdus.filter((pdu) => pdu.room_id === roomId);
}

/** Throws when a `/send` answer lists failed PDUs: the bench only sends events the hub must accept. */
function requireNoFailures(what: string, json: { failed_pdus?: Record<string, { error?: string }> }): void {
  const failed = Object.entries(json?.failed_pdus ?? {});
  if (failed.length > 0) throw new Error(`${what}: the hub refused ${failed.length} PDUs, e.g. ${failed[0]![0]}: ${failed[0]![1].error}`);
}

// ---------------------------------------------------------------------------------------------
// Phase 1: hub ingest

interface IngestResult {
  hub_ingest_eps: number;
  p50_lpdu_echo_ms: number;
  p99_lpdu_echo_ms: number;
  ingest_hub_peak_rss_mb: number;
}

async function runIngest(): Promise<IngestResult> {
  const hub = await startBobbin("ingest");
  const participant = await startFakeServer();
  try {
    const alice = await register(hub, "alice");
    const roomId = await createPublicRoom(hub, alice.token, "ingest");
    const userId = `@ingest:${participant.serverName}`;
    await joinViaHandshake(participant, hub.serverName, roomId, userId);

    // Every LPDU is built and signed before the clock starts: the bench measures the hub, not the
    // participant's signing. An echo is matched to its LPDU by `hashes.lpdu`, which the hub keeps.
    const txns: Array<{ lpdus: JsonObject[]; hashes: string[] }> = [];
    for (let t = 0; t * TXN_PDUS < INGEST; t++) {
      const lpdus: JsonObject[] = [];
      const hashes: string[] = [];
      for (let i = t * TXN_PDUS; i < Math.min(INGEST, (t + 1) * TXN_PDUS); i++) {
        const lpdu = participant.lpdu(
          { room_id: roomId, type: "m.room.message", sender: userId, content: { msgtype: "m.text", body: `ingest ${i}`, bench_seq: i }, origin_server_ts: Date.now() },
          hub.serverName,
        );
        lpdus.push(lpdu as unknown as JsonObject);
        hashes.push(lpdu.hashes.lpdu.sha256);
      }
      txns.push({ lpdus, hashes });
    }

    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    let lastEchoAt = 0;
    let echoTxns = 0;
    participant.onTxn = (txn) => {
      echoTxns++;
      for (const pdu of pdusOf(txn, roomId)) {
        const hash = (pdu.hashes as { lpdu?: { sha256?: string } } | undefined)?.lpdu?.sha256;
        const sent = hash === undefined ? undefined : sentAt.get(hash);
        if (sent === undefined) continue;
        sentAt.delete(hash!); // a retried transaction's duplicate counts once
        latencies.push(txn.arrivedAt - sent);
        lastEchoAt = txn.arrivedAt;
      }
    };

    const startedAt = performance.now();
    for (const [t, txn] of txns.entries()) {
      const now = performance.now();
      for (const hash of txn.hashes) sentAt.set(hash, now);
      const answer = await sendTxn(participant, hub.serverName, `ingest${t}`, txn.lpdus);
      requireNoFailures(`ingest transaction ${t}`, answer.json);
    }
    const sentAllAt = performance.now();
    await waitFor("ingest echoes", () => latencies.length >= INGEST, () => latencies.length);
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(`ingest: ${INGEST} LPDUs in ${txns.length} transactions sent in ${seconds(sentAllAt - startedAt)}s, last echo after ${seconds(lastEchoAt - startedAt)}s; echoes came in ${echoTxns} transactions`);
    return {
      hub_ingest_eps: Math.round(INGEST / ((lastEchoAt - startedAt) / 1000)),
      p50_lpdu_echo_ms: percentile(sorted, 50),
      p99_lpdu_echo_ms: percentile(sorted, 99),
      ingest_hub_peak_rss_mb: procMb(hub.process.pid!, "VmHWM"),
    };
  } finally {
    // The hub first: a fake closed under it would only produce retry warnings.
    await hub.stop();
    await participant.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Phase 2: fan-out

interface FanoutResult {
  fanout_destinations: number;
  fanout_events: number;
  fanout_drain_s: number;
  fanout_setup_s: number;
  fanout_sends_per_s: number;
  fanout_hub_peak_rss_mb: number;
}

async function runFanout(): Promise<FanoutResult> {
  const hub = await startBobbin("fanout");
  const destinations = await startFakeServers(DESTINATIONS);
  try {
    const senders = [];
    for (let i = 0; i < FANOUT_SENDERS; i++) senders.push(await register(hub, `sender${i}`));
    const roomId = await createPublicRoom(hub, senders[0]!.token, "fan-out");
    for (const sender of senders.slice(1)) await api(hub, "POST", `/join/${encodeURIComponent(roomId)}`, sender.token, {});

    // Setup: every destination joins one user through the handshake, JOIN_CONCURRENCY at a time.
    const setupStartedAt = performance.now();
    await inParallel(destinations, JOIN_CONCURRENCY, async (fake) => {
      await joinViaHandshake(fake, hub.serverName, roomId, `@member:${fake.serverName}`);
    });
    // The joins' own fan-out (each join goes to every server joined before it) drains before the
    // clock starts: a marker message arriving everywhere means every queue before it is empty.
    const markerSeen = new Set<string>();
    const received = destinations.map(() => new Uint8Array(FANOUT_EVENTS));
    const counts = new Int32Array(DESTINATIONS);
    const doneAt = new Float64Array(DESTINATIONS);
    let delivered = 0;
    let complete = 0;
    destinations.forEach((fake, d) => {
      fake.onTxn = (txn) => {
        for (const pdu of pdusOf(txn, roomId)) {
          const content = pdu.content as { bench_marker?: boolean; bench_fanout?: number };
          if (content.bench_marker === true) markerSeen.add(fake.serverName);
          const seq = content.bench_fanout;
          if (typeof seq !== "number" || received[d]![seq] === 1) continue;
          received[d]![seq] = 1;
          delivered++;
          if (++counts[d]! === FANOUT_EVENTS) {
            doneAt[d] = txn.arrivedAt;
            complete++;
          }
        }
      };
    });
    await api(hub, "PUT", `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/marker`, senders[0]!.token, { msgtype: "m.text", body: "marker", bench_marker: true });
    await waitFor("fan-out setup marker", () => markerSeen.size === DESTINATIONS, () => markerSeen.size);
    const setupS = seconds(performance.now() - setupStartedAt);
    console.log(`fan-out: ${DESTINATIONS} destinations joined and drained in ${setupS}s`);

    // Measured: FANOUT_SENDERS hub-local users send FANOUT_EVENTS messages between them.
    let next = 0;
    const txnsBefore = destinations.reduce((sum, fake) => sum + fake.counters.txns, 0);
    const cpuBefore = process.cpuUsage();
    const startedAt = performance.now();
    const ticker = setInterval(() => console.log(`fan-out: ${next} sends started, ${delivered} deliveries after ${seconds(performance.now() - startedAt)}s`), 30_000);
    await Promise.all(
      senders.map(async (sender, s) => {
        while (next < FANOUT_EVENTS) {
          const seq = next++;
          await api(hub, "PUT", `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/f${s}_${seq}`, sender.token, { msgtype: "m.text", body: `fan-out ${seq}`, bench_fanout: seq });
        }
      }),
    );
    const sentAllAt = performance.now();
    await waitFor("fan-out drain", () => complete === DESTINATIONS, () => delivered).finally(() => clearInterval(ticker));
    const drainedAt = Math.max(...doneAt);
    const txns = destinations.reduce((sum, fake) => sum + fake.counters.txns, 0) - txnsBefore;
    const benchCpu = process.cpuUsage(cpuBefore);
    console.log(`fan-out: ${FANOUT_EVENTS} events sent in ${seconds(sentAllAt - startedAt)}s, ${DESTINATIONS * FANOUT_EVENTS} deliveries done after ${seconds(drainedAt - startedAt)}s`);
    console.log(`fan-out: the hub sent ${txns} transactions (${(delivered / txns).toFixed(1)} PDUs each); this bench process (the ${DESTINATIONS} fakes and the senders) used ${seconds((benchCpu.user + benchCpu.system) / 1000)}s of CPU`);
    return {
      fanout_destinations: DESTINATIONS,
      fanout_events: FANOUT_EVENTS,
      fanout_drain_s: seconds(drainedAt - startedAt),
      fanout_setup_s: setupS,
      fanout_sends_per_s: Math.round(FANOUT_EVENTS / ((sentAllAt - startedAt) / 1000)),
      fanout_hub_peak_rss_mb: procMb(hub.process.pid!, "VmHWM"),
    };
  } finally {
    await hub.stop();
    await Promise.all(destinations.map((fake) => fake.close()));
  }
}

// ---------------------------------------------------------------------------------------------
// Phase 3: join a room shaped like Matrix HQ

interface JoinResult {
  join_state_events: number;
  join_s: number;
  join_response_mb: number;
  join_peak_rss_mb: number;
  join_members: number;
  join_build_s: number;
  join_participant_rss_before_mb: number;
}

/**
 * Builds the HQ-shaped room through the hub's real federation path. Registering thousands of local
 * users is slow by design (scrypt), and a send_join per member would hand every joiner the whole
 * growing state (quadratic). So JOIN_SERVERS fake servers each join one user with the handshake
 * while the room is small, and then — being in the room — send the rest of their users' joins as
 * ordinary LPDUs through `/send` (LM draft "Room Membership": a server already participating sends
 * membership events with `/send`), 50 per transaction, one in flight per server. The state beyond
 * the joined members is departed users (a join then a leave each), as in HQ, where most state
 * events past the joined members are old memberships. The last member to join is a probe server
 * whose send_join answer is the room's full state: its size is the answer size reported.
 */
async function buildHqRoom(hub: Bobbin, token: string, servers: FakeServer[], probe: FakeServer): Promise<{ roomId: string; responseBytes: number; stateEvents: number; members: number }> {
  const roomId = await createPublicRoom(hub, token, "HQ-shaped");
  await inParallel(servers, JOIN_CONCURRENCY, async (fake) => {
    await joinViaHandshake(fake, hub.serverName, roomId, `@u0:${fake.serverName}`);
  });
  const initialState = (await api(hub, "GET", `/rooms/${encodeURIComponent(roomId)}/state`, token)).length as number;
  const initialMembers = Object.keys((await api(hub, "GET", `/rooms/${encodeURIComponent(roomId)}/joined_members`, token)).joined).length;
  // The probe's join is the last one; every other joined member and departed user comes from /send.
  const toJoin = JOIN_MEMBERS - initialMembers - 1;
  const departed = JOIN_STATE - initialState - toJoin - 1;
  if (toJoin < 0 || departed < 0) throw new Error(`cannot shape ${JOIN_MEMBERS} members / ${JOIN_STATE} state from ${initialMembers} / ${initialState}`);

  // Each server's LPDUs, in order: its share of joins, then join+leave pairs.
  const perServer: JsonObject[][] = servers.map(() => []);
  const lpduOf = (s: number, localpart: string, membership: "join" | "leave") => {
    const fake = servers[s]!;
    const userId = `@${localpart}:${fake.serverName}`;
    return fake.lpdu({ room_id: roomId, type: "m.room.member", state_key: userId, sender: userId, content: { membership }, origin_server_ts: Date.now() }, hub.serverName) as unknown as JsonObject;
  };
  for (let i = 0; i < toJoin; i++) perServer[i % JOIN_SERVERS]!.push(lpduOf(i % JOIN_SERVERS, `m${i}`, "join"));
  for (let i = 0; i < departed; i++) {
    const s = i % JOIN_SERVERS;
    perServer[s]!.push(lpduOf(s, `gone${i}`, "join"), lpduOf(s, `gone${i}`, "leave"));
  }
  let sent = 0;
  await Promise.all(
    servers.map(async (fake, s) => {
      const lpdus = perServer[s]!;
      for (let t = 0; t * TXN_PDUS < lpdus.length; t++) {
        const batch = lpdus.slice(t * TXN_PDUS, (t + 1) * TXN_PDUS);
        const answer = await sendTxn(fake, hub.serverName, `hq${t}`, batch);
        requireNoFailures(`HQ room transaction ${t} of ${fake.serverName}`, answer.json);
        sent += batch.length;
      }
    }),
  );
  console.log(`join: ${sent} membership LPDUs sent by ${JOIN_SERVERS} servers`);
  const joined = await joinViaHandshake(probe, hub.serverName, roomId, `@probe:${probe.serverName}`);
  const stateEvents = (await api(hub, "GET", `/rooms/${encodeURIComponent(roomId)}/state`, token)).length as number;
  const members = Object.keys((await api(hub, "GET", `/rooms/${encodeURIComponent(roomId)}/joined_members`, token)).joined).length;
  console.log(`join: probe send_join answer: ${joined.json.state?.length} state, ${joined.json.auth_chain?.length} auth chain events, ${(joined.bytes / 1e6).toFixed(1)} MB`);
  return { roomId, responseBytes: joined.bytes, stateEvents, members };
}

async function runJoin(): Promise<JoinResult> {
  const hub = await startBobbin("hq");
  // The fake servers stay up until the participant has joined: it fetches their keys to check the
  // signatures of their members' events.
  const servers = await startFakeServers(JOIN_SERVERS);
  const probe = await startFakeServer();
  let participant: Bobbin | undefined;
  try {
    const admin = await register(hub, "admin");
    const buildStartedAt = performance.now();
    const room = await buildHqRoom(hub, admin.token, servers, probe);
    const buildS = seconds(performance.now() - buildStartedAt);
    console.log(`join: HQ-shaped room built in ${buildS}s: ${room.members} joined members, ${room.stateEvents} state events`);

    participant = await startBobbin("participant");
    const joiner = await register(participant, "joiner");
    const rssBefore = procMb(participant.process.pid!, "VmRSS");
    const startedAt = performance.now();
    const via = encodeURIComponent(hub.serverName);
    await api(participant, "POST", `/join/${encodeURIComponent(room.roomId)}?server_name=${via}&via=${via}`, joiner.token, {});
    const joinMs = performance.now() - startedAt;
    const peakRss = procMb(participant.process.pid!, "VmHWM");
    // The participant really holds the room: it answers with every member.
    const seen = Object.keys((await api(participant, "GET", `/rooms/${encodeURIComponent(room.roomId)}/joined_members`, joiner.token)).joined).length;
    if (seen < room.members) throw new Error(`the participant sees ${seen} joined members, the hub ${room.members}`);
    return {
      join_state_events: room.stateEvents,
      join_s: seconds(joinMs),
      join_response_mb: Math.round((room.responseBytes / 1e6) * 10) / 10,
      join_peak_rss_mb: peakRss,
      join_members: room.members,
      join_build_s: buildS,
      join_participant_rss_before_mb: rssBefore,
    };
  } finally {
    await participant?.stop();
    await hub.stop();
    await Promise.all([...servers, probe].map((fake) => fake.close()));
  }
}

// ---------------------------------------------------------------------------------------------

const results: Record<string, number> = {};
if (PHASES.has("ingest")) Object.assign(results, await runIngest());
if (PHASES.has("fanout")) Object.assign(results, await runFanout());
if (PHASES.has("join")) Object.assign(results, await runJoin());

const targets: Record<string, string> = {
  hub_ingest_eps: "≥ 2000",
  fanout_drain_s: "< 60",
  join_s: "< 5",
  join_peak_rss_mb: "< 400",
};
console.log(`federation bench${SMOKE ? " (smoke sizes)" : ""}: ingest ${INGEST}, destinations ${DESTINATIONS} × ${FANOUT_EVENTS} events, HQ room ${JOIN_MEMBERS} members / ${JOIN_STATE} state; node ${process.version}`);
console.table(Object.fromEntries(Object.entries(results).map(([name, value]) => [name, { value, target: targets[name] ?? "" }])));
const headline = [
  "hub_ingest_eps",
  "p50_lpdu_echo_ms",
  "p99_lpdu_echo_ms",
  "fanout_destinations",
  "fanout_events",
  "fanout_drain_s",
  "join_state_events",
  "join_s",
  "join_response_mb",
  "join_peak_rss_mb",
] as const;
console.log(JSON.stringify(Object.fromEntries(headline.filter((name) => name in results).map((name) => [name, results[name]]))));
