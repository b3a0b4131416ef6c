// node --import tsx bench/sync-engine.ts — CPU of the sync engine alone (client-api/sync), in
// process, without HTTP: what each /sync costs beyond parsing, authenticating and writing it.
//
//   empty: `timeout=0` at the current token (the filter resolved as the route does) -> CPU per sync
//   woken: 4 members of a room long-poll at their current token; an event is committed the way
//          the room writer does (position allocated, change recorded, recent events appended,
//          position released, room notified) and every long-poll returns it -> CPU per woken sync
//
// Set up on a real homeserver (SQLite in a temporary directory); the measured engine is a second
// one over the same storage, so nothing else runs meanwhile. Each figure is the best of ROUNDS
// rounds of SYNC_ENGINE_N syncs (default 3 x 4,000). Not part of `npm run bench`: a tool for work
// on the sync engine. Prints one JSON line.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { startHomeserver } from "../src/app/homeserver.js";
import type { SyncRequest } from "../src/client-api/sync/build-response.js";
import { createSyncEngine, type SyncClient } from "../src/client-api/sync/engine.js";
import { SyncFilterCache } from "../src/client-api/sync/filter.js";
import { nativeEd25519 } from "../src/core/ed25519.js";
import type { JsonObject } from "../src/core/json.js";
import { MembershipIndex } from "../src/rooms/membership-index.js";
import { parseSyncToken } from "../src/rooms/tokens.js";
import { StreamTracker } from "../src/storage/stream-tracker.js";

const N = Number(process.env.SYNC_ENGINE_N ?? 4_000);
const ROUNDS = 3;
const FILTER = JSON.stringify({ room: { timeline: { limit: 50 } }, presence: { types: [] } });

const dir = mkdtempSync(join(tmpdir(), "bobbin-sync-engine-"));
const homeserver = await startHomeserver({
  serverName: "localhost",
  database: { engine: "sqlite", path: join(dir, "homeserver.db") },
  signingKey: { keyId: "ed25519:bench", signer: nativeEd25519.signerFromSeed(randomBytes(32)) },
  listeners: [{ host: "127.0.0.1", port: 0 }],
  registration: { enabled: true, allowGuests: false },
  rateLimits: {},
  maxRequestBytes: 1024 * 1024,
  logger: pino({ level: "silent" }),
});
try {
  const api = async (method: string, path: string, token?: string, body?: unknown): Promise<JsonObject> => {
    const headers: Record<string, string> = { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) };
    const response = await fetch(`${homeserver.urls[0]}/_matrix/client/v3${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return (await response.json()) as JsonObject;
  };
  const users: Array<{ userId: string; deviceId: string; token: string }> = [];
  for (let i = 0; i < 5; i++) {
    const { session } = await api("POST", "/register", undefined, { username: `member${i}`, password: "bench password" });
    const registered = await api("POST", "/register", undefined, { username: `member${i}`, password: "bench password", auth: { type: "m.login.dummy", session } });
    users.push({ userId: String(registered.user_id), deviceId: String(registered.device_id), token: String(registered.access_token) });
  }
  const [sender, ...listeners] = users as [(typeof users)[0], ...typeof users];
  const roomId = String((await api("POST", "/createRoom", sender.token, { preset: "public_chat" })).room_id);
  for (const user of listeners) await api("POST", `/join/${encodeURIComponent(roomId)}`, user.token, {});
  for (let i = 0; i < 5; i++) await api("PUT", `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/seed${i}`, sender.token, { msgtype: "m.text", body: "seed" });

  const { storage } = homeserver;
  const streams = new StreamTracker(await storage.maxStreamPos());
  const engine = createSyncEngine({ storage, streams, memberships: new MembershipIndex(storage), logger: pino({ level: "silent" }), now: Date.now });
  // The recent events the room writer would have cached.
  const seed = (await storage.events.getRoomEvents(roomId, { direction: "backward", limit: 10 })).reverse();
  for (const event of seed) engine.recentEvents.append(event);
  const template = seed[seed.length - 1]!;
  let roomSeq = template.roomSeq;
  let committed = 0;
  const commit = (): void => {
    const streamPos = streams.allocate();
    engine.notifier.recordChange("room_events", [roomId], streamPos);
    roomSeq += 1;
    committed += 1;
    engine.recentEvents.append({ ...template, eventId: `$bench${committed}`, roomSeq, streamPos, pdu: { ...template.pdu, content: { msgtype: "m.text", body: `bench ${committed}` } } });
    streams.release(streamPos);
    engine.notifier.notifyRoom(roomId, streamPos);
  };

  // What the route does per request besides HTTP: resolve the filter, build the request.
  const filters = new SyncFilterCache(storage.filters);
  const client: SyncClient = { gone: () => false, onGone: () => undefined };
  const syncOnce = async (user: { userId: string; deviceId: string }, since: string | undefined, timeoutMs: number): Promise<JsonObject> => {
    const request: SyncRequest = { userId: user.userId, deviceId: user.deviceId, filter: await filters.resolve(user.userId, FILTER), fullState: false };
    const token = since === undefined ? undefined : parseSyncToken(since);
    if (token) request.since = token;
    return engine.sync(request, timeoutMs, client);
  };
  const cpuMs = (): number => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  };
  const nextTick = () => new Promise((resolve) => setImmediate(resolve));

  const empty: number[] = [];
  const woken: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const since = String((await syncOnce(sender, undefined, 0)).next_batch);
    for (let i = 0; i < 500; i++) await syncOnce(sender, since, 0);
    let start = cpuMs();
    for (let i = 0; i < N; i++) await syncOnce(sender, since, 0);
    empty.push((cpuMs() - start) / N);

    let stopping = false;
    let waiting = 0;
    let answered = 0;
    let allAnswered: () => void = () => undefined;
    const loops = listeners.map(async (user) => {
      let next = String((await syncOnce(user, undefined, 0)).next_batch);
      while (!stopping) {
        waiting += 1;
        const body = await syncOnce(user, next, 30_000);
        waiting -= 1;
        next = String(body.next_batch);
        if (++answered === listeners.length) allAnswered();
      }
    });
    const cycle = async (): Promise<void> => {
      // Every long-poll waiting (its microtasks settled) before the event commits.
      while (waiting < listeners.length) await nextTick();
      await nextTick();
      answered = 0;
      const done = new Promise<void>((resolve) => (allAnswered = resolve));
      commit();
      await done;
    };
    const cycles = Math.round(N / listeners.length);
    for (let i = 0; i < 200; i++) await cycle();
    start = cpuMs();
    for (let i = 0; i < cycles; i++) await cycle();
    woken.push((cpuMs() - start) / (cycles * listeners.length));
    stopping = true;
    await cycle();
    await Promise.all(loops);
  }
  engine.close();
  const best = (figures: number[]): number => Math.round(Math.min(...figures) * 10_000) / 10;
  console.log(JSON.stringify({ empty_sync_us: best(empty), woken_sync_us: best(woken), rounds: ROUNDS, syncs_per_round: N }));
} finally {
  await homeserver.close();
  rmSync(dir, { recursive: true, force: true });
}
