// EncryptedRooms: how a device's groups follow /sync (contract sections 4 and 5), on real MLS
// messages and synthetic sync answers: events that arrive before the Welcome wait for it, own
// commits and messages are recognised, a limited timeline is completed from /messages, and a
// removal ends the group.
import type { CiphersuiteImpl } from "ts-mls";
import { loadCiphersuite, WELCOME_ALGORITHM } from "../../src/mls-client/algorithms.js";
import type { ClientEvent } from "../../src/mls-client/client-server-api.js";
import { MlsDevice } from "../../src/mls-client/device.js";
import { EncryptedRooms, type MessagesBefore } from "../../src/mls-client/encrypted-rooms.js";
import { buildEncryptedContent, encodeMlsBase64 } from "../../src/mls-client/event-content.js";
import { RoomGroup, type PendingCommit } from "../../src/mls-client/room-group.js";
import { readSync } from "../../src/mls-client/sync-reading.js";

const roomId = "!room:a";
let cs: CiphersuiteImpl;
let alice: MlsDevice;
let bob: MlsDevice;
let aliceGroup: RoomGroup;
let bobRooms: EncryptedRooms;
const backfill: Array<{ from: string; chunk: ClientEvent[] }> = [];
let counter = 0;
/** The last timeline event Bob processed. */
let lastSeen: ClientEvent;

const commitEvent = (pending: PendingCommit, eventId: string): ClientEvent => ({
  type: "m.mls.commit",
  sender: "@alice:a",
  event_id: eventId,
  content: { message: encodeMlsBase64(pending.commit), public_group_state: encodeMlsBase64(pending.groupInfo) },
});

async function aliceCommits(proposals: Parameters<RoomGroup["prepareCommit"]>[0]): Promise<{ pending: PendingCommit; event: ClientEvent }> {
  const pending = await aliceGroup.prepareCommit(proposals);
  const eventId = `$commit${++counter}`;
  aliceGroup.applyOwnCommit(pending, eventId);
  return { pending, event: commitEvent(pending, eventId) };
}

async function aliceSays(body: string): Promise<ClientEvent> {
  const message = await aliceGroup.encrypt({ type: "m.room.message", content: { body } });
  return { type: "m.room.encrypted", sender: "@alice:a", event_id: `$msg${++counter}`, content: { ...buildEncryptedContent(message, aliceGroup.currentCommitEventId!) } };
}

function reading(events: ClientEvent[], options: { toDevice?: ClientEvent[]; limited?: boolean } = {}) {
  return readSync({
    next_batch: `s${++counter}`,
    to_device: { events: options.toDevice ?? [] },
    rooms: { join: { [roomId]: { timeline: { events, limited: options.limited ?? false, prev_batch: `p${counter}` } } } },
  });
}

const bodies = (messages: Array<{ event?: { content: Record<string, unknown> } | undefined }>) => messages.map((m) => m.event?.content.body);

beforeAll(async () => {
  cs = await loadCiphersuite();
  alice = await MlsDevice.generate("@alice:a", "A1", cs);
  bob = await MlsDevice.generate("@bob:b", "B1", cs);
  aliceGroup = await RoomGroup.create(roomId, await alice.privateKeyPackage(), cs);
  const messagesBefore: MessagesBefore = async (_room, from) => {
    const page = backfill.find((p) => p.from === from);
    return { chunk: page?.chunk ?? [] };
  };
  bobRooms = new EncryptedRooms(bob, messagesBefore);
});

test("timeline events before the Welcome wait for it; then older epochs are skipped and the rest applies in order", async () => {
  const bobPackage = await bob.keyPackages.generate(false);
  const added = await aliceCommits([{ proposalType: "add", add: { keyPackage: bobPackage.publicPackage } }]);
  const first = await aliceSays("first");
  const update = await aliceCommits([]);
  const second = await aliceSays("second");

  const early = await bobRooms.apply(reading([added.event, first, update.event, second]));
  expect(early.messages).toEqual([]);
  expect(bobRooms.group(roomId)).toBeUndefined();

  const welcome: ClientEvent = {
    type: "m.room.encrypted",
    sender: "@alice:a",
    content: { algorithm: WELCOME_ALGORITHM, ciphertext: encodeMlsBase64(added.pending.welcome!), commit_event_id: added.event.event_id! },
  };
  const joined = await bobRooms.apply(reading([], { toDevice: [welcome] }));
  expect(joined.joined).toEqual([{ roomId, commitEventId: added.event.event_id }]);
  expect(joined.commits.map((c) => c.eventId)).toEqual([update.event.event_id]);
  expect(bodies(joined.messages)).toEqual(["first", "second"]);
  expect(joined.problems).toEqual([]);
  expect(bobRooms.group(roomId)!.epoch).toBe(aliceGroup.epoch);
  lastSeen = second;
  // The Welcome's one-time KeyPackage is used up.
  expect(bob.keyPackages.findByRef(added.pending.welcome!.welcome.secrets.map((s) => s.newMember))).toBeUndefined();
});

test("a limited timeline is completed from /messages back to the last event seen", async () => {
  const missedCommit = await aliceCommits([]);
  const missedMessage = await aliceSays("missed");
  const latest = await aliceSays("latest");
  const sync = reading([latest], { limited: true });
  // /messages from prev_batch, newest first, down to an event Bob already processed.
  backfill.push({ from: sync.rooms[0]!.prevBatch!, chunk: [missedMessage, missedCommit.event, lastSeen, { type: "m.room.encrypted", sender: "@alice:a", event_id: "$older", content: {} }] });
  const result = await bobRooms.apply(sync);
  expect(result.commits.map((c) => c.eventId)).toEqual([missedCommit.event.event_id]);
  expect(bodies(result.messages)).toEqual(["missed", "latest"]);
  expect(result.problems).toEqual([]);
});

test("own messages come back as own; a skipped epoch is reported as a gap", async () => {
  const bobGroup = bobRooms.group(roomId)!;
  const message = await bobGroup.encrypt({ type: "m.room.message", content: { body: "mine" } });
  bobRooms.sent("$mine", { type: "m.room.message", content: { body: "mine" } });
  const own = await bobRooms.apply(reading([{ type: "m.room.encrypted", sender: "@bob:b", event_id: "$mine", content: { ...buildEncryptedContent(message, "$x") } }]));
  expect(own.messages).toEqual([{ roomId, eventId: "$mine", sender: "@bob:b", event: { type: "m.room.message", content: { body: "mine" } }, own: true }]);

  await aliceCommits([]);
  const ahead = await aliceCommits([]);
  const gap = await bobRooms.apply(reading([ahead.event]));
  expect(gap.commits).toEqual([]);
  expect(gap.problems).toEqual([expect.stringContaining("the group is at")]);
});

test("a commit removing this device ends its group", async () => {
  const bob2 = await MlsDevice.generate("@bob:b", "B2", cs);
  const rejoined = await bob2.keyPackages.generate(false);
  const removedRooms = new EncryptedRooms(bob2, async () => ({ chunk: [] }));
  const added = await aliceCommits([{ proposalType: "add", add: { keyPackage: rejoined.publicPackage } }]);
  removedRooms.add(await RoomGroup.joinFromWelcome(added.pending.welcome!, rejoined, added.event.event_id!, cs));
  const leaf = removedRooms.group(roomId)!.ownLeafIndex;
  const removal = await aliceCommits([{ proposalType: "remove", remove: { removed: leaf } }]);
  const result = await removedRooms.apply(reading([removal.event]));
  expect(result.removedFrom).toEqual([roomId]);
  expect(removedRooms.group(roomId)).toBeUndefined();
});
