// The room writer's pipelined appends (room-writer.ts "Pipelining") on real storage, SQLite and
// PostgreSQL: a room's events are placed while earlier ones commit, commit in room order, and a
// failed transaction takes every event placed after it down with it, leaving no hole.
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import { DEFAULT_ROOM_VERSION } from "../../src/core/room-versions.js";
import type { SyncNotifier } from "../../src/client-api/contracts.js";
import { planRoomCreation } from "../../src/rooms/create-room.js";
import { MembershipIndex } from "../../src/rooms/membership-index.js";
import { RecentEvents } from "../../src/rooms/recent-events.js";
import { EarlierAppendFailed, RoomWriter, type PlacedEvent, type RoomHead } from "../../src/rooms/room-writer.js";
import { openStorage, type DatabaseSettings } from "../../src/storage/index.js";
import type { Storage } from "../../src/storage/ports.js";
import { StreamTracker } from "../../src/storage/stream-tracker.js";
import { dropPostgresSchema, postgresUrl } from "../support/postgres.js";

const ALICE = "@alice:test";

interface Fixture {
  storage: Storage;
  streams: StreamTracker;
  writer: RoomWriter;
  recent: RecentEvents;
  roomId: string;
  close(): Promise<void>;
}

/** Records what the writer tells syncs; SyncNotifier is the writer's outbound contract. */
function recordingNotifier(): SyncNotifier {
  return { notifyUsers() {}, notifyRoom() {}, recordChange() {}, oneTimeKeysChanged() {} };
}

async function fixture(engine: "sqlite" | "postgres", url?: string): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), "bobbin-pipeline-"));
  const schema = `pipeline_${randomBytes(6).toString("hex")}`;
  const settings: DatabaseSettings = engine === "sqlite" ? { engine, path: join(dir, "db.sqlite") } : { engine, url: url as string, schema };
  const storage = await openStorage(settings);
  const streams = new StreamTracker(await storage.maxStreamPos());
  const recent = new RecentEvents();
  const writer = new RoomWriter({
    serverName: "test",
    signingKey: { keyId: "ed25519:t", signer: nativeEd25519.signerFromSeed(randomBytes(32)) },
    storage,
    streams,
    logger: pino({ level: "silent" }),
    now: () => Date.now(),
    notifier: recordingNotifier(),
    memberships: new MembershipIndex(storage),
    recentEvents: recent,
  });
  const roomId = writer.newRoomId();
  const plan = planRoomCreation(
    { preset: "public_chat", visibility: "private", invite: [], initialState: [], creationContent: {}, isDirect: false },
    { creator: ALICE, roomVersion: DEFAULT_ROOM_VERSION, creatorProfile: {}, inviteeProfiles: new Map() },
  );
  await writer.createRoom(
    { roomId, roomVersion: DEFAULT_ROOM_VERSION, creator: ALICE, isPublic: false, createdTs: Date.now() },
    plan.createContent,
    plan.events.map((e) => ({ ...e, sender: ALICE })),
    async () => {},
  );
  return {
    storage,
    streams,
    writer,
    recent,
    roomId,
    async close() {
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
      if (engine === "postgres") await dropPostgresSchema(url as string, schema);
    },
  };
}

/** Places one message holding the room's lock only until it is queued, like a client send. */
async function sendPipelined(f: Fixture, body: string, persistExtra?: () => Promise<void>): Promise<{ committed: Promise<PlacedEvent[]> }> {
  return f.writer.withRoom(f.roomId, async () => {
    const head = (await f.writer.head(f.roomId)) as RoomHead;
    return f.writer.appendPipelined(head, [{ type: "m.room.message", content: { msgtype: "m.text", body }, sender: ALICE }], persistExtra && (() => persistExtra()));
  });
}

/** The room's stored log, oldest first. */
async function storedLog(f: Fixture) {
  return f.storage.events.getRoomEvents(f.roomId, { direction: "forward", limit: 1000 });
}

const engines: Array<["sqlite" | "postgres", () => Promise<string | undefined>]> = [
  ["sqlite", async () => "sqlite"],
  ["postgres", postgresUrl],
];

describe.each(engines)("pipelined appends on %s", (engine, available) => {
  let url: string | undefined;
  let f: Fixture | undefined;
  beforeAll(async () => {
    url = await available();
  });
  afterEach(async () => {
    await f?.close();
    f = undefined;
  });

  test("a room's events are placed while earlier ones commit, and are stored in room order", async () => {
    if (url === undefined) return;
    f = await fixture(engine, url);
    const before = (await storedLog(f)).length;
    const sends = [];
    // Every send is placed (the lock released) before the first commit settled.
    let committedBeforeLastPlaced = 0;
    let committedCount = 0;
    for (let i = 0; i < 20; i++) {
      const { committed } = await sendPipelined(f, `m${i}`);
      committedBeforeLastPlaced = committedCount;
      void committed.then(() => committedCount++);
      sends.push(committed);
    }
    expect(committedBeforeLastPlaced).toBeLessThan(19);
    const placed = (await Promise.all(sends)).map((p) => p[0] as PlacedEvent);

    const log = await storedLog(f);
    expect(log.map((e) => e.roomSeq)).toEqual(log.map((_, i) => i));
    const messages = log.slice(before);
    expect(messages.map((e) => e.pdu.content.body)).toEqual(placed.map((_, i) => `m${i}`));
    expect(messages.map((e) => e.eventId)).toEqual(placed.map((p) => p.event.eventId));
    // A linear log: each event's prev_events is the one before it; stream order follows it.
    for (let i = 1; i < log.length; i++) {
      expect((log[i] as (typeof log)[number]).pdu.prev_events).toEqual([(log[i - 1] as (typeof log)[number]).eventId]);
      expect((log[i] as (typeof log)[number]).streamPos).toBeGreaterThan((log[i - 1] as (typeof log)[number]).streamPos);
    }
    expect(f.streams.visible).toBe((log.at(-1) as (typeof log)[number]).streamPos);
  });

  test("a failed transaction fails every event placed after it, leaves no hole, and the head is reloaded", async () => {
    if (url === undefined) return;
    f = await fixture(engine, url);
    const headBefore = (await f.writer.head(f.roomId)) as RoomHead;
    const seqBefore = headBefore.lastSeq;
    const ok1 = await sendPipelined(f, "ok1");
    const ok2 = await sendPipelined(f, "ok2");
    const failing = await sendPipelined(f, "fails", async () => {
      throw new Error("disk full (test)");
    });
    const after1 = await sendPipelined(f, "after1");
    const after2 = await sendPipelined(f, "after2");
    const [ok1Placed] = await ok1.committed;
    const [ok2Placed] = await ok2.committed;
    await expect(failing.committed).rejects.toThrow("disk full (test)");
    await expect(after1.committed).rejects.toBeInstanceOf(EarlierAppendFailed);
    await expect(after2.committed).rejects.toBeInstanceOf(EarlierAppendFailed);

    // Nothing after the failure was stored: the log ends at ok2, with no gap.
    const log = await storedLog(f);
    expect(log.map((e) => e.roomSeq)).toEqual(log.map((_, i) => i));
    expect((log.at(-1) as (typeof log)[number]).eventId).toBe(ok2Placed?.event.eventId);
    expect(log.map((e) => e.pdu.content.body).filter(Boolean)).toEqual(["ok1", "ok2"]);
    expect(ok1Placed?.roomSeq).toBe(seqBefore + 1);
    // Syncs are not held back by positions of events that never committed.
    expect(f.streams.visible).toBeGreaterThanOrEqual((log.at(-1) as (typeof log)[number]).streamPos);
    expect(f.recent.after(f.roomId, 0).events.map((e) => e.pdu.content.body).filter(Boolean)).toEqual(["ok2", "ok1"]);

    // The head was dropped and is read back from storage: the next event follows ok2.
    const reloaded = (await f.writer.head(f.roomId)) as RoomHead;
    expect(reloaded).not.toBe(headBefore);
    expect(reloaded.lastSeq).toBe(ok2Placed?.roomSeq);
    const [next] = await (await sendPipelined(f, "next")).committed;
    expect(next?.roomSeq).toBe((ok2Placed?.roomSeq as number) + 1);
    expect(next?.event.pdu.prev_events).toEqual([ok2Placed?.event.eventId]);
    expect((await storedLog(f)).map((e) => e.pdu.content.body).filter(Boolean)).toEqual(["ok1", "ok2", "next"]);
  });

  test("the head's state is shared by messages, replaced by a state event, and left as it was by a refused append", async () => {
    if (url === undefined) return;
    f = await fixture(engine, url);
    const fx = f;
    const head = (await fx.writer.head(fx.roomId)) as RoomHead;
    const initial = head.state;
    const topic = (text: string, sender = ALICE) => ({ type: "m.room.topic", stateKey: "", content: { topic: text }, sender });
    const append = (requests: Array<ReturnType<typeof topic> | { type: string; content: Record<string, string>; sender: string }>) =>
      fx.writer.withRoom(fx.roomId, () => fx.writer.appendLocked(head, requests));

    await append([{ type: "m.room.message", content: { msgtype: "m.text", body: "hi" }, sender: ALICE }]);
    expect(head.state).toBe(initial);

    // The first topic is allowed, the second (a sender not in the room) is refused: the whole
    // append is refused, and the head keeps its state untouched.
    await expect(append([topic("first"), topic("intruder", "@mallory:test")])).rejects.toThrow();
    expect(head.state).toBe(initial);
    expect(head.state.has("m.room.topic\u0000")).toBe(false);

    await append([topic("second")]);
    expect(head.state).not.toBe(initial);
    expect(head.state.get("m.room.topic\u0000")?.pdu.content.topic).toBe("second");
    // The map the head had before is a snapshot: the new topic went into a copy.
    expect(initial.has("m.room.topic\u0000")).toBe(false);
  });

  test("an append placed while the chain fails is refused, not appended over the hole", async () => {
    if (url === undefined) return;
    f = await fixture(engine, url);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // The failing transaction waits for the gate, so the next send is placed before it fails.
    const failing = await sendPipelined(f, "fails", async () => {
      await gate;
      throw new Error("constraint (test)");
    });
    const later = await sendPipelined(f, "later");
    release();
    await expect(failing.committed).rejects.toThrow("constraint (test)");
    await expect(later.committed).rejects.toBeInstanceOf(EarlierAppendFailed);
    const log = await storedLog(f);
    expect(log.map((e) => e.pdu.content.body).filter(Boolean)).toEqual([]);
    expect(log.map((e) => e.roomSeq)).toEqual(log.map((_, i) => i));
  });
});
