// A participant creating its replica from a hub's send_join answer (LM draft "Room Membership";
// src/rooms/room-federation.ts applyJoin). The answer is big enough that its signatures are
// verified on two threads (verify-pool.ts); a state event with any signature that does not verify
// is left out wherever it sits in the answer, one with altered content is kept redacted, and the
// replica holds everything else. Real SQLite; the room is built with the kernel's own builders.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import type { SyncNotifier } from "../../src/client-api/contracts.js";
import { encodeBase64 } from "../../src/core/base64.js";
import type { Pdu, RoomEvent } from "../../src/core/events.js";
import type { JsonObject } from "../../src/core/json.js";
import { acceptLpdu, buildLpdu, type RoomLog } from "../../src/room-dag/index.js";
import { MembershipIndex } from "../../src/rooms/membership-index.js";
import { RecentEvents } from "../../src/rooms/recent-events.js";
import { createRoomFederation, type RoomFederation } from "../../src/rooms/room-federation.js";
import { RoomWriter } from "../../src/rooms/room-writer.js";
import { createVerifyPool } from "../../src/rooms/verify-pool.js";
import { openStorage } from "../../src/storage/index.js";
import type { Storage } from "../../src/storage/ports.js";
import { StreamTracker } from "../../src/storage/stream-tracker.js";
import { draft, hub, hubRoom, keys, overTheWire, participant, ROOM, rules, server } from "../unit/room-dag/builders.js";

/** Members who joined through LPDUs: each state event carries two signatures. */
const MEMBERS = 1_200;
const dir = mkdtempSync(join(tmpdir(), "bobbin-join-"));
const pool = createVerifyPool();
let storage: Storage;
let federation: RoomFederation;

beforeAll(async () => {
  storage = await openStorage({ engine: "sqlite", path: join(dir, "replica.db") });
  const logger = pino({ level: "silent" });
  // Nobody syncs here: every notification is a no-op.
  const silent = new Proxy({}, { get: () => () => {} }) as SyncNotifier;
  const me = server("replica.example");
  const writer = new RoomWriter({ serverName: me.serverName, signingKey: me.key, storage, streams: new StreamTracker(await storage.maxStreamPos()), logger, now: Date.now, notifier: silent, memberships: new MembershipIndex(storage), recentEvents: new RecentEvents() });
  federation = createRoomFederation({ serverName: me.serverName, signingKey: me.key, storage, writer, logger, now: Date.now, notifyPlaced: () => {}, verifyPool: pool });
});
afterAll(async () => {
  await pool.close();
  await storage?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The hub's room with MEMBERS participant users joined, then the joiner's join (last). */
function bigRoom(): { log: RoomLog; join: RoomEvent } {
  const log = hubRoom();
  for (let i = 0; i <= MEMBERS; i++) {
    const user = i === MEMBERS ? "@joiner:participant.example" : `@m${i}:participant.example`;
    const lpdu = buildLpdu(draft("m.room.member", user, { membership: "join", displayname: `member ${i}` }, user), hub.serverName, participant, rules);
    const outcome = acceptLpdu(lpdu, { rules, keys, tip: log, hub, roomId: ROOM });
    if (outcome.action !== "accept") throw new Error(JSON.stringify(outcome));
    log.append(outcome.event);
  }
  return { log, join: log.lastEvent! };
}

const flipped = (signature: string): string => {
  const bytes = Buffer.from(signature, "base64");
  bytes[5] = (bytes[5] as number) ^ 1;
  return encodeBase64(bytes);
};

describe("applyJoin over a big send_join answer", () => {
  it("leaves out state events whose signatures do not verify, keeps altered ones redacted, keeps the rest", async () => {
    const { log, join } = bigRoom();
    const state: JsonObject[] = [];
    for (let i = 0; i < log.length - 1; i++) state.push(overTheWire(log.at(i)!.pdu) as unknown as JsonObject);
    const memberAt = (n: number): JsonObject => state.find((pdu) => pdu.state_key === `@m${n}:participant.example`)!;
    const signaturesOf = (pdu: JsonObject, server: string) => (pdu.signatures as Record<string, Record<string, string>>)[server]!;
    // Early in the answer (verified by the worker): the hub's signature broken.
    const badHub = memberAt(3);
    signaturesOf(badHub, hub.serverName)["ed25519:1"] = flipped(signaturesOf(badHub, hub.serverName)["ed25519:1"]!);
    // Late in the answer (verified on the calling thread): the participant's LPDU signature broken.
    const badLpdu = memberAt(MEMBERS - 2);
    signaturesOf(badLpdu, participant.serverName)["ed25519:1"] = flipped(signaturesOf(badLpdu, participant.serverName)["ed25519:1"]!);
    // In between: content altered after signing (signatures cover the redacted form, the hash does not hold).
    const altered = memberAt(600);
    altered.content = { membership: "join", displayname: "not what was sent" };

    const placed = await federation.applyJoin(ROOM, rules.id, hub.serverName, state, overTheWire(join.pdu), keys);

    expect(placed[placed.length - 1]?.event.eventId).toBe(join.eventId);
    const current = new Map((await storage.events.getCurrentState(ROOM)).map((e) => [e.pdu.state_key, e.pdu]));
    expect(current.get("@joiner:participant.example")?.content.membership).toBe("join");
    expect(current.has("@m3:participant.example")).toBe(false);
    expect(current.has(`@m${MEMBERS - 2}:participant.example`)).toBe(false);
    const redacted = current.get("@m600:participant.example") as Pdu;
    expect(redacted.content).toEqual({ membership: "join" });
    // Every other member is there, with the content the hub stored.
    for (const n of [0, 4, 599, 601, MEMBERS - 3, MEMBERS - 1]) {
      expect(current.get(`@m${n}:participant.example`)?.content).toEqual({ membership: "join", displayname: `member ${n}` });
    }
    // The answer's state less the two dropped, plus the joiner's join.
    expect((await storage.events.getCurrentState(ROOM)).length).toBe(state.length - 2 + 1);
  });
});
