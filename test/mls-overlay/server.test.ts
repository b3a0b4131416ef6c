// The MLS overlay on one real server over HTTP (MLS wire contract sections 1–5): an encrypted room,
// device objects and KeyPackages uploaded and claimed, a stapled commit whose Welcome reaches the
// added device with the final event ID, a losing commit (409, Welcome never delivered), encrypted
// messages checked, departed devices reported, expired packages never served.
import { jest } from "@jest/globals";
import { decodeBase64 } from "../../src/core/base64.js";
import type { JsonObject } from "../../src/core/json.js";
import { signRequest } from "../../src/federation/transport/x-matrix.js";
import { EPOCH_CONFLICT_ERRCODE, KEY_PACKAGE_ALGORITHM, ROOM_ALGORITHM, WELCOME_ALGORITHM } from "../../src/core/mls-wire.js";
import { decodeMlsMessage, type CiphersuiteImpl } from "ts-mls";
import { decodeKeyPackage } from "ts-mls/keyPackage.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { addOf, b64, commit, createRoomGroup, deviceObject, encrypt, join, makeDevice, makeKeyPackage, suite, type Member, type TestDevice, type TestKeyPackage } from "./mls-builders.js";

jest.setTimeout(60_000);

type Session = { userId: string; accessToken: string; deviceId: string };

const MLS = "/_matrix/client/unstable/org.bobbin.mls";
const q = encodeURIComponent;

let server: TestServer;
let cs: CiphersuiteImpl;
/** Every KeyPackage uploaded in this file, by key ID, with its private part. */
const uploadedPackages = new Map<string, TestKeyPackage>();
/** The server's clock: tests move it forward to expire KeyPackages. */
let clock = Date.now();

beforeAll(async () => {
  cs = await suite();
  server = await startTestServer({ now: () => clock });
});
afterAll(async () => {
  await server?.close();
});

async function mlsDevice(session: Session): Promise<TestDevice> {
  const device = await makeDevice(cs, session.userId, session.deviceId);
  const upload = await server.request("POST", "/_matrix/client/v3/keys/upload", { token: session.accessToken, body: { device_keys: await deviceObject(cs, device) } });
  expect(upload.status).toBe(200);
  return device;
}

async function uploadPackages(session: Session, device: TestDevice, oneTime: number, fallback: boolean): Promise<{ oneTime: TestKeyPackage[]; fallback?: TestKeyPackage }> {
  const packages = await Promise.all(Array.from({ length: oneTime }, () => makeKeyPackage(cs, device)));
  const last = fallback ? await makeKeyPackage(cs, device) : undefined;
  for (const kp of [...packages, ...(last ? [last] : [])]) uploadedPackages.set(kp.keyId, kp);
  const body: JsonObject = { one_time_keys: Object.fromEntries(packages.map((kp) => [kp.keyId, kp.encoded])) };
  if (last) body.fallback_keys = { [last.keyId]: last.encoded };
  const upload = await server.request("POST", "/_matrix/client/v3/keys/upload", { token: session.accessToken, body });
  expect(upload.status).toBe(200);
  return { oneTime: packages, ...(last ? { fallback: last } : {}) };
}

async function claim(session: Session, wanted: Record<string, Record<string, string>>): Promise<Record<string, Record<string, Record<string, string>>>> {
  const claimed = await server.request("POST", "/_matrix/client/v3/keys/claim", { token: session.accessToken, body: { one_time_keys: wanted } });
  expect(claimed.status).toBe(200);
  return claimed.body.one_time_keys;
}

/** The to-device events a device has received since `since` (and the next token). */
async function toDeviceOf(session: Session, since?: string): Promise<{ events: any[]; next: string }> {
  const sync = await server.request("GET", `/_matrix/client/v3/sync?timeout=0${since ? `&since=${q(since)}` : ""}`, { token: session.accessToken });
  expect(sync.status).toBe(200);
  return { events: sync.body.to_device?.events ?? [], next: sync.body.next_batch };
}

async function createEncryptedRoom(creator: Session, invitees: Session[]): Promise<string> {
  const created = await server.request("POST", "/_matrix/client/v3/createRoom", { token: creator.accessToken, body: { preset: "private_chat", creation_content: { encryption: { algorithm: ROOM_ALGORITHM } }, invite: invitees.map((i) => i.userId) } });
  expect(created.status).toBe(200);
  const roomId = created.body.room_id as string;
  for (const invitee of invitees) expect((await server.request("POST", `/_matrix/client/v3/join/${q(roomId)}`, { token: invitee.accessToken, body: {} })).status).toBe(200);
  return roomId;
}

function packageOf(encoded: string): TestKeyPackage["publicPackage"] {
  return decodeKeyPackage(decodeBase64(encoded)!, 0)![0];
}

describe("encrypted rooms and key packages", () => {
  test("createRoom accepts only the MLS algorithm; the create event carries it", async () => {
    const alice = await server.register("alice0");
    const wrong = await server.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { creation_content: { encryption: { algorithm: "m.megolm.v1.aes-sha2" } } } });
    expect(wrong).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });
    const roomId = await createEncryptedRoom(alice, []);
    const create = await server.request("GET", `/_matrix/client/v3/rooms/${q(roomId)}/state/m.room.create/`, { token: alice.accessToken });
    expect(create.body.encryption).toEqual({ algorithm: ROOM_ALGORITHM });
  });

  test("device objects and KeyPackages are verified on upload", async () => {
    const carol = await server.register("carol0");
    const device = await makeDevice(cs, carol.userId, carol.deviceId);
    const other = await makeDevice(cs, carol.userId, carol.deviceId);
    const badSignature = await server.request("POST", "/_matrix/client/v3/keys/upload", { token: carol.accessToken, body: { device_keys: await deviceObject(cs, device, other.signKey) } });
    expect(badSignature).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });
    const impostor = await makeDevice(cs, carol.userId, carol.deviceId, { deviceId: "SOMEONEELSE" });
    const wrongDevice = await server.request("POST", "/_matrix/client/v3/keys/upload", { token: carol.accessToken, body: { device_keys: await deviceObject(cs, impostor) } });
    expect(wrongDevice).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });

    expect((await server.request("POST", "/_matrix/client/v3/keys/upload", { token: carol.accessToken, body: { device_keys: await deviceObject(cs, device) } })).status).toBe(200);
    const good = await makeKeyPackage(cs, device);
    const foreign = await makeKeyPackage(cs, other); // a credential that is not the published one
    const mixed = await server.request("POST", "/_matrix/client/v3/keys/upload", { token: carol.accessToken, body: { one_time_keys: { [good.keyId]: good.encoded, [foreign.keyId]: foreign.encoded } } });
    expect(mixed).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM", error: expect.stringContaining(foreign.keyId) } });
    const misnamed = await server.request("POST", "/_matrix/client/v3/keys/upload", { token: carol.accessToken, body: { one_time_keys: { [`${KEY_PACKAGE_ALGORITHM}:${"ab".repeat(32)}`]: good.encoded } } });
    expect(misnamed.status).toBe(400);
    // Nothing of a refused upload was stored.
    const counts = await server.request("POST", "/_matrix/client/v3/keys/upload", { token: carol.accessToken, body: {} });
    expect(counts.body.one_time_key_counts[KEY_PACKAGE_ALGORITHM] ?? 0).toBe(0);

    // The device object over federation (v1 and the LM unstable path).
    for (const prefix of ["/_matrix/federation/v1", "/_matrix/federation/unstable/org.matrix.i-d.ralston-mimi-linearized-matrix.02"]) {
      const uri = `${prefix}/user/${q(carol.userId)}/device/${q(carol.deviceId)}`;
      const authorization = signRequest({ method: "GET", uri, origin: server.serverName, destination: server.serverName }, [server.signingKey])[0]!;
      const response = await fetch(server.baseUrl + uri, { headers: { authorization } });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ user_id: carol.userId, device_id: carol.deviceId, keys: (await deviceObject(cs, device)).keys });
      const unknownUri = `${prefix}/user/${q(carol.userId)}/device/NOPE`;
      const unknown = await fetch(server.baseUrl + unknownUri, { headers: { authorization: signRequest({ method: "GET", uri: unknownUri, origin: server.serverName, destination: server.serverName }, [server.signingKey])[0]! } });
      expect(unknown.status).toBe(404);
    }
  });

  test("a one-time KeyPackage is never claimed twice under 20 concurrent claims; the last resort only after; expired never", async () => {
    const dave = await server.register("dave0");
    const claimer = await server.register("erin0");
    const device = await mlsDevice(dave);
    const { oneTime, fallback } = await uploadPackages(dave, device, 10, true);
    const wanted = { [dave.userId]: { [dave.deviceId]: KEY_PACKAGE_ALGORITHM } };
    const answers = await Promise.all(Array.from({ length: 20 }, () => claim(claimer, wanted)));
    const keyIds = answers.map((a) => Object.keys(a[dave.userId]?.[dave.deviceId] ?? {})[0]);
    const oneTimeIds = new Set(oneTime.map((kp) => kp.keyId));
    const claimedOneTime = keyIds.filter((id) => id !== undefined && oneTimeIds.has(id));
    expect(claimedOneTime).toHaveLength(10);
    expect(new Set(claimedOneTime).size).toBe(10);
    expect(keyIds.filter((id) => id === fallback!.keyId)).toHaveLength(10);
    // The package served is the one uploaded.
    const served = answers[0]![dave.userId]![dave.deviceId]!;
    const [servedId, servedValue] = Object.entries(served)[0]!;
    expect(servedValue).toBe([...oneTime, fallback!].find((kp) => kp.keyId === servedId)!.encoded);

    // Expiry: packages valid for a minute are served now, not once the clock passed their end.
    const nowSeconds = BigInt(Math.floor(clock / 1000));
    const shortLived = await makeKeyPackage(cs, device, { lifetime: { notBefore: nowSeconds - 10n, notAfter: nowSeconds + 60n } });
    const shortFallback = await makeKeyPackage(cs, device, { lifetime: { notBefore: nowSeconds - 10n, notAfter: nowSeconds + 60n } });
    const upload = await server.request("POST", "/_matrix/client/v3/keys/upload", { token: dave.accessToken, body: { one_time_keys: { [shortLived.keyId]: shortLived.encoded }, fallback_keys: { [shortFallback.keyId]: shortFallback.encoded } } });
    expect(upload.status).toBe(200);
    clock += 120_000;
    try {
      expect((await claim(claimer, wanted))[dave.userId]?.[dave.deviceId] ?? {}).toEqual({});
    } finally {
      clock -= 120_000;
    }
  });
});

describe("stapled commits", () => {
  let alice: Session;
  let bob: Session;
  let alice2: Session;
  let roomId: string;
  let aliceMember: Member;
  let bobMember: Member;
  let bobDevice: TestDevice;
  let alice2Device: TestDevice;
  let commitEventId: string;

  beforeAll(async () => {
    alice = await server.register("alice");
    bob = await server.register("bob");
    alice2 = { ...(await server.register("alice2")) };
    roomId = await createEncryptedRoom(alice, [bob, alice2]);
    const aliceDevice = await mlsDevice(alice);
    bobDevice = await mlsDevice(bob);
    alice2Device = await mlsDevice(alice2);
    await uploadPackages(bob, bobDevice, 2, true);
    await uploadPackages(alice2, alice2Device, 2, false);
    aliceMember = await createRoomGroup(cs, roomId, aliceDevice);
  });

  test("the first commit with a Welcome: 200, and the added device receives the Welcome naming the final event ID", async () => {
    const before = await toDeviceOf(bob);
    const claimed = await claim(alice, { [bob.userId]: { [bob.deviceId]: KEY_PACKAGE_ALGORITHM } });
    const [keyId, encoded] = Object.entries(claimed[bob.userId]![bob.deviceId]!)[0]!;
    expect(keyId.startsWith(`${KEY_PACKAGE_ALGORITHM}:`)).toBe(true);
    const kp = packageOf(encoded);
    const first = await commit(cs, aliceMember, [{ proposalType: "add", add: { keyPackage: kp } }]);
    const welcome = b64({ version: "mls10", wireformat: "mls_welcome", welcome: first.welcome! });
    const sent = await server.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, { token: alice.accessToken, body: { commit: first.content.message, group_info: first.content.public_group_state, welcome } });
    expect(sent).toMatchObject({ status: 200, body: { epoch: 1, event_id: expect.stringMatching(/^\$/) } });
    commitEventId = sent.body.event_id;
    aliceMember = { ...aliceMember, state: first.newState };

    const after = await toDeviceOf(bob, before.next);
    expect(after.events).toEqual([{ type: "m.room.encrypted", sender: alice.userId, content: { algorithm: WELCOME_ALGORITHM, ciphertext: welcome, commit_event_id: commitEventId } }]);
    // Bob joins from the Welcome he received.
    const message = decodeMlsMessage(decodeBase64(after.events[0].content.ciphertext)!, 0)![0];
    if (message.wireformat !== "mls_welcome") throw new Error("not a Welcome");
    const bobKp = { publicPackage: kp } as TestKeyPackage;
    // Bob's private package: the one uploaded with this ref.
    bobMember = await joinWithUploaded(message.welcome, bobKp, keyId);

    const groupInfo = await server.request("GET", `${MLS}/rooms/${q(roomId)}/group_info`, { token: bob.accessToken });
    expect(groupInfo).toMatchObject({ status: 200, body: { epoch: 1, commit_event_id: commitEventId, group_info: first.content.public_group_state } });
    const timeline = await server.request("GET", `/_matrix/client/v3/rooms/${q(roomId)}/event/${q(commitEventId)}`, { token: bob.accessToken });
    expect(timeline.body).toMatchObject({ type: "m.mls.commit", content: { message: first.content.message } });
  });

  test("a losing commit gets 409 ORG.BOBBIN.MLS_EPOCH_CONFLICT and its Welcome is never delivered", async () => {
    const before = await toDeviceOf(alice2);
    const claimed = await claim(bob, { [alice2.userId]: { [alice2.deviceId]: KEY_PACKAGE_ALGORITHM } });
    const kp = packageOf(Object.values(claimed[alice2.userId]![alice2.deviceId]!)[0]!);
    // Both commit at epoch 1: Alice's empty commit is first.
    const losing = await commit(cs, bobMember, [{ proposalType: "add", add: { keyPackage: kp } }]);
    const winning = await commit(cs, aliceMember, []);
    const won = await server.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, { token: alice.accessToken, body: { commit: winning.content.message, group_info: winning.content.public_group_state } });
    expect(won).toMatchObject({ status: 200, body: { epoch: 2 } });
    aliceMember = { ...aliceMember, state: winning.newState };
    const lost = await server.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, {
      token: bob.accessToken,
      body: { commit: losing.content.message, group_info: losing.content.public_group_state, welcome: b64({ version: "mls10", wireformat: "mls_welcome", welcome: losing.welcome! }) },
    });
    expect(lost).toMatchObject({ status: 409, body: { errcode: EPOCH_CONFLICT_ERRCODE, current_epoch: 2 } });
    // The same commit sent as a plain event is refused by the room writer as well.
    const raw = await server.request("PUT", `/_matrix/client/v3/rooms/${q(roomId)}/send/m.mls.commit/raw1`, { token: bob.accessToken, body: losing.content });
    expect(raw).toMatchObject({ status: 409, body: { errcode: EPOCH_CONFLICT_ERRCODE } });
    const after = await toDeviceOf(alice2, before.next);
    expect(after.events).toEqual([]);
  });

  test("a Welcome for a KeyPackage no Add carries is refused before anything is sent", async () => {
    const claimed = await claim(bob, { [alice2.userId]: { [alice2.deviceId]: KEY_PACKAGE_ALGORITHM } });
    const kp = packageOf(Object.values(claimed[alice2.userId]![alice2.deviceId]!)[0]!);
    const adding = await commit(cs, aliceMember, [{ proposalType: "add", add: { keyPackage: kp } }]);
    const unrelated = await commit(cs, aliceMember, [addOf(await makeKeyPackage(cs, await makeDevice(cs, alice2.userId, "OTHERDEVICE")))]);
    const refused = await server.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, {
      token: alice.accessToken,
      body: { commit: adding.content.message, group_info: adding.content.public_group_state, welcome: b64({ version: "mls10", wireformat: "mls_welcome", welcome: unrelated.welcome! }) },
    });
    expect(refused).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });
    const info = await server.request("GET", `${MLS}/rooms/${q(roomId)}/group_info`, { token: alice.accessToken });
    expect(info.body.epoch).toBe(2);
  });

  test("m.room.encrypted: a real PrivateMessage is accepted, garbage is refused", async () => {
    const { ciphertext, state } = await encrypt(cs, aliceMember, "hello");
    aliceMember = { ...aliceMember, state };
    const commitId = (await server.request("GET", `${MLS}/rooms/${q(roomId)}/group_info`, { token: alice.accessToken })).body.commit_event_id;
    const ok = await server.request("PUT", `/_matrix/client/v3/rooms/${q(roomId)}/send/m.room.encrypted/m1`, { token: alice.accessToken, body: { algorithm: ROOM_ALGORITHM, ciphertext, commit_event_id: commitId } });
    expect(ok.status).toBe(200);
    const garbage = await server.request("PUT", `/_matrix/client/v3/rooms/${q(roomId)}/send/m.room.encrypted/m2`, { token: alice.accessToken, body: { algorithm: ROOM_ALGORITHM, ciphertext: "AAECAwQFBgc", commit_event_id: commitId } });
    expect(garbage).toMatchObject({ status: 400, body: { errcode: "M_BAD_JSON" } });
    const megolm = await server.request("PUT", `/_matrix/client/v3/rooms/${q(roomId)}/send/m.room.encrypted/m3`, { token: alice.accessToken, body: { algorithm: "m.megolm.v1.aes-sha2", ciphertext: "abc" } });
    expect(megolm.status).toBe(400);
  });

  test("a commit in a room that is not encrypted, or by a user who is not joined, is refused", async () => {
    const plain = await server.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: {} });
    const anything = await commit(cs, aliceMember, []);
    const body = { commit: anything.content.message, group_info: anything.content.public_group_state };
    expect(await server.request("POST", `${MLS}/rooms/${q(plain.body.room_id)}/commit`, { token: alice.accessToken, body })).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });
    const outsider = await server.register("outsider");
    expect(await server.request("POST", `${MLS}/rooms/${q(roomId)}/commit`, { token: outsider.accessToken, body })).toMatchObject({ status: 403 });
    expect(await server.request("GET", `${MLS}/rooms/${q(roomId)}/group_info`, { token: outsider.accessToken })).toMatchObject({ status: 403 });
  });

  test("a user who leaves stays in the group as departed until removed: /devices and /sync say so", async () => {
    const since = (await toDeviceOf(alice)).next;
    expect((await server.request("POST", `/_matrix/client/v3/rooms/${q(roomId)}/leave`, { token: bob.accessToken, body: {} })).status).toBe(200);
    const devices = await server.request("GET", `${MLS}/rooms/${q(roomId)}/devices`, { token: alice.accessToken });
    expect(devices).toMatchObject({ status: 200, body: { epoch: 2, departed: { [bob.userId]: [bob.deviceId] } } });
    const sync = await server.request("GET", `/_matrix/client/v3/sync?timeout=0&since=${q(since)}`, { token: alice.accessToken });
    expect(sync.body.rooms.join[roomId]["org.bobbin.mls.departed_devices"]).toEqual({ [bob.userId]: [bob.deviceId] });
  });

  /** Joins with the private package of the one Bob uploaded under `keyId` (the helper keeps them). */
  async function joinWithUploaded(welcome: Parameters<typeof join>[1], kp: TestKeyPackage, keyId: string): Promise<Member> {
    const uploaded = uploadedPackages.get(keyId);
    if (!uploaded) throw new Error(`no private package for ${keyId}`);
    return join(cs, welcome, { ...uploaded, publicPackage: kp.publicPackage }, bobDevice);
  }
});
