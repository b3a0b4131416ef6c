// A replica without a group record (it joined after earlier commits) and the next commit it
// appends (mls-overlay.ts, group-info-federation.ts). Unit test of MlsOverlay: real storage
// (SQLite), real ts-mls, real MLS data; the one stub is the GroupInfoFetcher, standing for the
// hub's federation answer. A commit made in a look-alike group (same group ID, same epoch, a
// credential naming the same user) is self-consistent, so checked on its own it would be adopted;
// checked against the hub's GroupInfo of that epoch it is refused.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { decodeBase64 } from "../../src/core/base64.js";
import type { Pdu, RoomEvent, RoomStateView } from "../../src/core/events.js";
import type { JsonObject } from "../../src/core/json.js";
import { LINEARIZED_02 } from "../../src/core/room-versions.js";
import { MlsOverlay, type GroupInfoFetcher } from "../../src/mls-overlay/mls-overlay.js";
import { createMlsLoader } from "../../src/mls-overlay/ts-mls-adapter.js";
import { ROOM_ALGORITHM } from "../../src/core/mls-wire.js";
import { openStorage } from "../../src/storage/index.js";
import type { Storage } from "../../src/storage/ports.js";
import type { CiphersuiteImpl } from "ts-mls";
import { commit, createRoomGroup, makeDevice, suite, type Member } from "./mls-builders.js";

const roomId = "!room:hub.example";
const alice = "@alice:hub.example";
const dir = mkdtempSync(join(tmpdir(), "bobbin-mls-replica-"));
let storage: Storage;
let cs: CiphersuiteImpl;
const loader = createMlsLoader();
const logger = pino({ level: "silent" });

/** Current state: an encrypted room Alice has joined. */
const state: RoomStateView = {
  get: (type, stateKey) => {
    const content: JsonObject | undefined =
      type === "m.room.create" && stateKey === "" ? { encryption: { algorithm: ROOM_ALGORITHM } } : type === "m.room.member" && stateKey === alice ? { membership: "join" } : undefined;
    return content ? { eventId: `$${type}`, pdu: { type, state_key: stateKey, content, sender: alice } as unknown as Pdu } : undefined;
  },
};
const commitEvent = (eventId: string, content: JsonObject): RoomEvent => ({ eventId, pdu: { type: "m.mls.commit", content, sender: alice, room_id: roomId } as unknown as Pdu });

/** A group of the room taken to epoch 2 by two empty commits; the next commit (epoch 2 -> 3) too. */
async function groupAtEpochTwo(): Promise<{ groupInfoOfEpoch2: string; next: JsonObject }> {
  let member: Member = await createRoomGroup(cs, roomId, await makeDevice(cs, alice, "ALICEDEV"));
  let groupInfoOfEpoch2 = "";
  for (let i = 0; i < 2; i++) {
    const step = await commit(cs, member, []);
    member = { ...member, state: step.newState };
    groupInfoOfEpoch2 = step.content.public_group_state as string;
  }
  return { groupInfoOfEpoch2, next: (await commit(cs, member, [])).content };
}

let real: Awaited<ReturnType<typeof groupAtEpochTwo>>;
let lookAlike: Awaited<ReturnType<typeof groupAtEpochTwo>>;

beforeAll(async () => {
  cs = await suite();
  storage = await openStorage({ engine: "sqlite", path: join(dir, "replica.db") });
  await storage.events.createRoom({ roomId, roomVersion: LINEARIZED_02, creator: alice, hubServer: "hub.example", isPublic: false, createdTs: 0 });
  real = await groupAtEpochTwo();
  lookAlike = await groupAtEpochTwo();
});
afterAll(async () => {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

const hubKeeps: GroupInfoFetcher = async (_server, _roomId, epoch) => (epoch === 2 ? { groupInfo: decodeBase64(real.groupInfoOfEpoch2)!, epoch: 2, commitEventId: "$second" } : undefined);

test("without the hub's GroupInfo a replica adopts the look-alike commit (what the fetch prevents)", async () => {
  const overlay = new MlsOverlay({ storage, loader, logger, now: Date.now });
  expect(await overlay.begin(roomId, false).check(commitEvent("$forged", lookAlike.next), state)).toBeUndefined();
});

test("with it, the replica refuses the look-alike commit, accepts the real one, and records it", async () => {
  const asked: Array<[string, string, number | undefined]> = [];
  const fetchGroupInfo: GroupInfoFetcher = async (server, room, epoch) => {
    asked.push([server, room, epoch]);
    return hubKeeps(server, room, epoch);
  };
  const overlay = new MlsOverlay({ storage, loader, logger, now: Date.now, fetchGroupInfo });
  const refused = await overlay.begin(roomId, false).check(commitEvent("$forged", lookAlike.next), state);
  expect(refused).toMatchObject({ httpStatus: 403, message: expect.stringContaining("MLS policy") });
  expect(asked).toEqual([["hub.example", roomId, 2]]);

  const batch = overlay.begin(roomId, false);
  expect(await batch.check(commitEvent("$third", real.next), state)).toBeUndefined();
  await storage.transaction((tx) => batch.persist(tx));
  batch.committed();
  expect(await storage.mls.getGroup(roomId)).toMatchObject({ epoch: 3, commitEventId: "$third" });
  expect(await storage.mls.getEpochCommit(roomId, 3)).toBe("$third");
});

test("a hub answer for another epoch is not believed", async () => {
  const wrongEpoch: GroupInfoFetcher = async () => ({ groupInfo: decodeBase64(real.groupInfoOfEpoch2)!, epoch: 1, commitEventId: "$first" });
  const overlay = new MlsOverlay({ storage, loader, logger, now: Date.now, fetchGroupInfo: wrongEpoch });
  expect(await overlay.recordFromHub(roomId, 2)).toBeUndefined();
  expect(await overlay.recordFromHub(roomId, 0)).toEqual({ roomId, epoch: 0 });
});
