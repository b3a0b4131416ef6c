// Encrypted rooms end to end (issue 5 "Tests"): a hub and a participant on loopback, real
// reference MLS clients (src/mls-client) over the Client-Server API. Alice (hub, devices A1 A2),
// Bob (participant, B1 B2) and Carol (participant, C1): the room, everyone added, 100 messages
// every device decrypts, two commits racing for one epoch, an Add of a user who has not joined,
// a kick and the removal of the kicked user's devices, and an external join.
import { jest } from "@jest/globals";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";
import { buildCommitRequest, MlsClient, MatrixApiError, ROOM_ALGORITHM, type SyncResult } from "../../src/mls-client/index.js";

jest.setTimeout(60_000);

const federation = { allowInsecureHttp: true, trustedKeyServers: [], outbound: { backoff: { initialMs: 100, maxMs: 1_000 } } };
const password = "correct horse battery staple";
const keyPackageTargets = { oneTime: 3, refillBelow: 2 };

let hub: TestServer;
let participant: TestServer;
let roomId: string;
interface Devices {
  A1: MlsClient;
  A2: MlsClient;
  B1: MlsClient;
  B2: MlsClient;
  C1: MlsClient;
  /** Dave (hub): not in the room at first. */
  D1: MlsClient;
}
let devices: Devices;
/** Everything each device's syncs returned, for assertions across steps. */
const seen = new Map<MlsClient, SyncResult>();

async function device(server: TestServer, localpart: string, register: boolean): Promise<MlsClient> {
  if (register) await server.register(localpart, password);
  const client = await MlsClient.login(server.baseUrl, localpart, password, { keyPackageTargets });
  seen.set(client, { messages: [], joined: [], commits: [], removedFrom: [], departedDevices: {}, problems: [] });
  return client;
}

async function syncOnce(client: MlsClient): Promise<SyncResult> {
  const result = await client.sync(0);
  const all = seen.get(client)!;
  all.messages.push(...result.messages);
  all.joined.push(...result.joined);
  all.commits.push(...result.commits);
  all.removedFrom.push(...result.removedFrom);
  Object.assign(all.departedDevices, result.departedDevices);
  all.problems.push(...result.problems);
  return result;
}

/** Syncs `client` until `done` holds. */
async function syncUntil(client: MlsClient, what: string, done: () => boolean, timeoutMs = 15_000): Promise<void> {
  await waitFor(`${client.deviceId}: ${what}`, async () => {
    await syncOnce(client);
    return done() ? true : undefined;
  }, timeoutMs);
}

async function allAtEpoch(clients: MlsClient[], epoch: bigint): Promise<void> {
  await Promise.all(clients.map((c) => syncUntil(c, `epoch ${epoch}`, () => c.group(roomId)?.epoch === epoch)));
}

const members = () => [devices.A1, devices.A2, devices.B1, devices.B2, devices.C1];

beforeAll(async () => {
  const [hubPort, participantPort] = [await freePort(), await freePort()];
  hub = await startTestServer({ serverName: `localhost:${hubPort}`, port: hubPort, federation });
  participant = await startTestServer({ serverName: `localhost:${participantPort}`, port: participantPort, federation });
  const A1 = await device(hub, "alice", true);
  const A2 = await device(hub, "alice", false);
  const B1 = await device(participant, "bob", true);
  const B2 = await device(participant, "bob", false);
  const C1 = await device(participant, "carol", true);
  const D1 = await device(hub, "dave", true);
  devices = { A1, A2, B1, B2, C1, D1 };
});

afterAll(async () => {
  await hub?.close();
  await participant?.close();
});

test("an encrypted room: the creator's devices, then every joined user's devices in one commit", async () => {
  const { A1, A2, B1, B2, C1 } = devices;
  const created = await A1.createEncryptedRoom({ invite: [B1.userId, C1.userId] });
  roomId = created.roomId;
  // The first commit (epoch 0 -> 1) adds Alice's other device.
  expect(created.commit).toMatchObject({ epoch: 1, attempts: 1, added: [{ userId: A1.userId, deviceId: A2.deviceId }] });
  const createEvent = await hub.request("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.create/`, { token: A1.api.session.accessToken });
  expect(createEvent.body.encryption).toEqual({ algorithm: ROOM_ALGORITHM });

  await waitFor("the invites on the participant", async () => ((await B1.api.join(roomId).catch(() => undefined)) ? true : undefined));
  await C1.api.join(roomId);
  const added = await A1.addUsers(roomId, [B1.userId, C1.userId]);
  expect(added.missing).toEqual([]);
  expect(added.commit?.epoch).toBe(2);
  expect(added.commit?.added.map((d) => d.deviceId).sort()).toEqual([B1.deviceId, B2.deviceId, C1.deviceId].sort());

  await allAtEpoch(members(), 2n);
  for (const client of [B1, B2, C1]) expect(seen.get(client)!.joined).toEqual([{ roomId, commitEventId: added.commit!.eventId }]);
  expect(seen.get(A2)!.joined).toEqual([{ roomId, commitEventId: created.commit.eventId }]);
  // Every device sees the same five members.
  const memberSets = members().map((c) => c.group(roomId)!.members().map((m) => m.identity.deviceId).sort().join());
  expect(new Set(memberSets).size).toBe(1);
  expect(memberSets[0]!.split(",")).toHaveLength(5);
});

test("100 encrypted messages across both servers: every device decrypts every one", async () => {
  const senders = members();
  await Promise.all(
    senders.map(async (sender, s) => {
      for (let i = s; i < 100; i += senders.length) await sender.sendMessage(roomId, { msgtype: "m.text", body: `message ${i}` });
    }),
  );
  const expected = Array.from({ length: 100 }, (_, i) => `message ${i}`).sort();
  const bodies = (client: MlsClient) => seen.get(client)!.messages.filter((m) => m.roomId === roomId).map((m) => m.event?.content.body as string);
  await Promise.all(senders.map((c) => syncUntil(c, "100 messages", () => bodies(c).length >= 100)));
  for (const client of senders) {
    const messages = seen.get(client)!.messages;
    expect(messages.filter((m) => m.error !== undefined)).toEqual([]);
    expect(bodies(client).sort()).toEqual(expected);
    expect(messages.filter((m) => m.own)).toHaveLength(20);
  }
  // The servers hold ciphertext only.
  const stored = await participant.homeserver.storage.events.getRoomEvents(roomId, { direction: "forward", limit: 1_000 });
  const encrypted = stored.filter((e) => e.pdu.type === "m.room.encrypted");
  expect(encrypted).toHaveLength(100);
  expect(JSON.stringify(encrypted.map((e) => e.pdu.content))).not.toContain("message 1");
});

test("two devices commit at the same epoch: exactly one is accepted, the other retries on the new epoch", async () => {
  const { A2, C1 } = devices;
  expect(A2.group(roomId)!.epoch).toBe(2n);
  expect(C1.group(roomId)!.epoch).toBe(2n);
  // Both build a commit on epoch 2 (a hub device and a participant device) and submit at once.
  const [fromA2, fromC1] = await Promise.all([A2.commit(roomId), C1.commit(roomId)]);
  const outcomes = [fromA2!, fromC1!].sort((x, y) => x.epoch - y.epoch);
  expect(outcomes.map((o) => [o.epoch, o.attempts])).toEqual([
    [3, 1],
    [4, 2],
  ]);
  await allAtEpoch(members(), 4n);
  // The loser processed the winner's commit from the timeline before rebuilding its own.
  const loser = fromA2!.attempts === 2 ? A2 : C1;
  const winner = loser === A2 ? fromC1! : fromA2!;
  expect(seen.get(loser)!.commits.some((c) => c.eventId === winner.eventId)).toBe(true);
  // The raw answer to the loser: 409 with the epoch the room is at. B1 and B2 both build on epoch 4;
  // B1's commit is accepted, B2's is refused, and B2 catches up from the timeline.
  const { B1, B2 } = devices;
  const first = await B1.group(roomId)!.prepareCommit([]);
  const second = await B2.group(roomId)!.prepareCommit([]);
  const accepted = await B1.api.submitCommit(roomId, buildCommitRequest(first.commit, first.groupInfo, undefined, B1.group(roomId)!.currentCommitEventId));
  B1.group(roomId)!.applyOwnCommit(first, accepted.event_id);
  expect(accepted.epoch).toBe(5);
  const conflict = await B2.api.submitCommit(roomId, buildCommitRequest(second.commit, second.groupInfo, undefined, undefined)).catch((e: unknown) => e);
  expect(conflict).toBeInstanceOf(MatrixApiError);
  expect((conflict as MatrixApiError).status).toBe(409);
  expect((conflict as MatrixApiError).body).toMatchObject({ errcode: "ORG.BOBBIN.MLS_EPOCH_CONFLICT", current_epoch: 5 });
  await allAtEpoch(members(), 5n);

  // Malformed MLS is refused as such (400 M_BAD_JSON), not as a conflict.
  const garbage = await A2.api.submitCommit(roomId, { commit: "AAAA", group_info: "AAAA" }).catch((e: unknown) => e);
  expect(garbage).toBeInstanceOf(MatrixApiError);
  expect([(garbage as MatrixApiError).status, (garbage as MatrixApiError).errcode]).toEqual([400, "M_BAD_JSON"]);

  const sent = await devices.B2.sendMessage(roomId, { msgtype: "m.text", body: "after the race" });
  for (const client of members().filter((c) => c !== devices.B2)) {
    await syncUntil(client, "the message after the race", () => seen.get(client)!.messages.some((m) => m.eventId === sent && m.event?.content.body === "after the race"));
  }
});

test("adding a device of a user who has not joined is refused, and its Welcome is never delivered", async () => {
  const { A1, D1 } = devices;
  await A1.api.invite(roomId, D1.userId);
  const { claimed, missing } = await A1.claimKeyPackages(roomId, [D1.userId]);
  expect(missing).toEqual([]);
  expect(claimed.map((c) => c.deviceId)).toEqual([D1.deviceId]);
  const epochBefore = A1.group(roomId)!.epoch;
  const refused = await A1.commit(roomId, { add: claimed, remove: [] }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(MatrixApiError);
  expect((refused as MatrixApiError).status).toBe(403);
  expect((refused as MatrixApiError).errcode).toBe("M_FORBIDDEN");
  expect(A1.group(roomId)!.epoch).toBe(epochBefore);
  // Nothing reaches Dave's device: no Welcome (it would name the KeyPackage just claimed).
  await new Promise((resolve) => setTimeout(resolve, 300));
  const afterRefusal = await syncOnce(D1);
  expect(afterRefusal.joined).toEqual([]);
  expect(afterRefusal.problems).toEqual([]);
  expect(D1.group(roomId)).toBeUndefined();

  // Dave joins; now his device can be added, and it gets exactly one Welcome: the accepted one.
  await D1.api.join(roomId);
  const added = await A1.addUsers(roomId, [D1.userId]);
  expect(added.commit?.added).toEqual([{ userId: D1.userId, deviceId: D1.deviceId }]);
  await syncUntil(D1, "the Welcome", () => D1.group(roomId) !== undefined);
  await syncOnce(D1);
  expect(seen.get(D1)!.joined).toEqual([{ roomId, commitEventId: added.commit!.eventId }]);
  expect(seen.get(D1)!.problems).toEqual([]);
  await allAtEpoch([...members(), D1], BigInt(added.commit!.epoch));
});

test("after a kick, another member removes the kicked user's devices", async () => {
  const { A1, B1, D1 } = devices;
  await A1.api.kick(roomId, D1.userId, "bye");
  // The participant lists Dave's device as departed (GET .../devices and /sync), then Bob removes it.
  const departed = await waitFor("the departed device on the participant", async () => {
    const answer = await B1.api.departedDevices(roomId);
    return answer.departed[D1.userId] ? answer : undefined;
  });
  expect(departed.departed).toEqual({ [D1.userId]: [D1.deviceId] });
  await syncUntil(B1, "departed devices in /sync", () => seen.get(B1)!.departedDevices[roomId]?.[D1.userId] !== undefined);
  const removal = await B1.removeDepartedDevices(roomId);
  expect(removal?.removed).toEqual([{ userId: D1.userId, deviceId: D1.deviceId }]);
  expect(B1.group(roomId)!.hasDevice(D1.userId, D1.deviceId)).toBe(false);
  expect((await B1.api.departedDevices(roomId)).departed).toEqual({});
  await allAtEpoch(members(), BigInt(removal!.epoch));
  for (const client of members()) expect(client.group(roomId)!.hasDevice(D1.userId, D1.deviceId)).toBe(false);
});

test("a new device joins externally from the stored GroupInfo", async () => {
  const C2 = await device(participant, "carol", false);
  const joined = await C2.joinExternally(roomId);
  expect(joined.added).toEqual([{ userId: C2.userId, deviceId: C2.deviceId }]);
  await allAtEpoch([...members(), C2], BigInt(joined.epoch));
  const hello = await C2.sendMessage(roomId, { msgtype: "m.text", body: "hello from C2" });
  for (const client of members()) {
    await syncUntil(client, "C2's message", () => seen.get(client)!.messages.some((m) => m.eventId === hello && m.event?.content.body === "hello from C2"));
  }
  const reply = await devices.A1.sendMessage(roomId, { msgtype: "m.text", body: "welcome C2" });
  await syncUntil(C2, "A1's reply", () => seen.get(C2)!.messages.some((m) => m.eventId === reply && m.event?.content.body === "welcome C2"));
  for (const client of [...members(), C2]) expect(seen.get(client)!.problems).toEqual([]);
});
