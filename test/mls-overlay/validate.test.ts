// The hub's MLS checks (contract sections 2–4) on real ts-mls data: groups built here, commits
// as a Bobbin client makes them, and broken variants of each.
import fc from "fast-check";
import type { CiphersuiteImpl } from "ts-mls";
import { decodeBase64, encodeBase64 } from "../../src/core/base64.js";
import type { JsonObject } from "../../src/core/json.js";
import { createMlsLoader, type MlsLib } from "../../src/mls-overlay/ts-mls-adapter.js";
import { checkCommit, checkDeviceObject, checkEncryptedMessage, checkKeyPackage, type GroupRecord, type RoomMembershipView } from "../../src/mls-overlay/validate.js";
import { decodeDeviceIdentity, encodeDeviceIdentity, ROOM_ALGORITHM } from "../../src/core/mls-wire.js";
import { addOf, b64, commit, createRoomGroup, deviceObject, encrypt, externalJoin, join, makeDevice, makeKeyPackage, removeOf, suite, type Member } from "./mls-builders.js";

const ROOM = "!room:hub";
const ALICE = "@alice:hub";
const BOB = "@bob:hub";
const CAROL = "@carol:other";

function members(joined: string[], worldReadable = false): RoomMembershipView {
  return { membershipOf: (userId) => (joined.includes(userId) ? "join" : "leave"), worldReadable };
}

let mls: MlsLib;
let cs: CiphersuiteImpl;

beforeAll(async () => {
  mls = await createMlsLoader().load();
  cs = await suite();
});

const fresh = (): GroupRecord => ({ roomId: ROOM, epoch: 0 });

/** Alice creates the group and adds her second device and Bob's device: epoch 1, accepted. */
async function groupOfThree(): Promise<{ alice: Member; bob: Member; alice2: Member; record: GroupRecord }> {
  const aliceDevice = await makeDevice(cs, ALICE, "A1");
  const alice = await createRoomGroup(cs, ROOM, aliceDevice);
  const alice2Device = await makeDevice(cs, ALICE, "A2");
  const bobDevice = await makeDevice(cs, BOB, "B1");
  const [kpA2, kpB] = await Promise.all([makeKeyPackage(cs, alice2Device), makeKeyPackage(cs, bobDevice)]);
  const first = await commit(cs, alice, [addOf(kpA2), addOf(kpB)]);
  const verdict = await checkCommit(mls, first.content, fresh(), members([ALICE, BOB]), ALICE);
  if (!verdict.ok) throw new Error(verdict.reason);
  const welcome = first.welcome!;
  return {
    alice: { device: aliceDevice, state: first.newState },
    alice2: await join(cs, welcome, kpA2, alice2Device),
    bob: await join(cs, welcome, kpB, bobDevice),
    record: { ...verdict.next, commitEventId: "$c1" },
  };
}

describe("checkCommit", () => {
  test("a valid first commit is accepted and names the added devices with their KeyPackageRefs", async () => {
    const aliceDevice = await makeDevice(cs, ALICE, "A1");
    const alice = await createRoomGroup(cs, ROOM, aliceDevice);
    const bobDevice = await makeDevice(cs, BOB, "B1");
    const kpB = await makeKeyPackage(cs, bobDevice);
    const first = await commit(cs, alice, [addOf(kpB)]);
    const verdict = await checkCommit(mls, first.content, fresh(), members([ALICE, BOB]), ALICE);
    expect(verdict).toMatchObject({ ok: true, epoch: 1, adds: [{ userId: BOB, deviceId: "B1", keyPackageRef: kpB.ref }] });
    // The Welcome names the same ref.
    expect(first.welcome!.secrets.map((s) => Buffer.from(s.newMember).toString("hex"))).toEqual([kpB.ref]);
  });

  test("a later commit is checked against the stored tree; a second commit for the same epoch is an epoch conflict", async () => {
    const { alice, bob, record } = await groupOfThree();
    const carolLess = await commit(cs, bob, []);
    const accepted = await checkCommit(mls, carolLess.content, record, members([ALICE, BOB]), BOB);
    expect(accepted).toMatchObject({ ok: true, epoch: 2 });
    if (!accepted.ok) return;
    // Alice committed at epoch 1 too, concurrently: it loses.
    const late = await commit(cs, alice, []);
    const conflict = await checkCommit(mls, late.content, accepted.next, members([ALICE, BOB]), ALICE);
    expect(conflict).toMatchObject({ ok: false, kind: "epoch_conflict", currentEpoch: 2 });
  });

  test("the committer's credential must name the event's sender", async () => {
    const { bob, record } = await groupOfThree();
    const update = await commit(cs, bob, []);
    expect(await checkCommit(mls, update.content, record, members([ALICE, BOB]), ALICE)).toMatchObject({ ok: false, kind: "policy" });
  });

  test("adding a device of a user who is not joined is refused (world_readable rooms allow it)", async () => {
    const { alice, record } = await groupOfThree();
    const carol = await makeKeyPackage(cs, await makeDevice(cs, CAROL, "C1"));
    const adding = await commit(cs, alice, [addOf(carol)]);
    expect(await checkCommit(mls, adding.content, record, members([ALICE, BOB]), ALICE)).toMatchObject({ ok: false, kind: "policy", reason: expect.stringContaining("not joined") });
    expect(await checkCommit(mls, adding.content, record, members([ALICE, BOB], true), ALICE)).toMatchObject({ ok: true });
  });

  test("Remove rules: own device ok, a joined user's device refused, a departed user's device ok", async () => {
    const { alice, record } = await groupOfThree();
    // Leaves: 0 = alice A1, 1 = alice A2, 2 = bob B1.
    const own = await commit(cs, alice, [removeOf(1)]);
    expect(await checkCommit(mls, own.content, record, members([ALICE, BOB]), ALICE)).toMatchObject({ ok: true });
    const other = await commit(cs, alice, [removeOf(2)]);
    expect(await checkCommit(mls, other.content, record, members([ALICE, BOB]), ALICE)).toMatchObject({ ok: false, kind: "policy", reason: expect.stringContaining("still joined") });
    expect(await checkCommit(mls, other.content, record, members([ALICE]), ALICE)).toMatchObject({ ok: true });
  });

  test("a commit by reference is refused", async () => {
    const { alice, record } = await groupOfThree();
    const valid = await commit(cs, alice, []);
    const message = valid.message;
    if (message.wireformat !== "mls_public_message" || message.publicMessage.content.contentType !== "commit") throw new Error("unexpected");
    message.publicMessage.content.commit.proposals = [{ proposalOrRefType: "reference", reference: new Uint8Array(32) }];
    const content = { ...valid.content, message: b64(message) };
    expect(await checkCommit(mls, content, record, members([ALICE, BOB]), ALICE)).toMatchObject({ ok: false, kind: "policy", reason: expect.stringContaining("by reference") });
  });

  test("a commit sent as a PrivateMessage is malformed", async () => {
    const { alice, record } = await groupOfThree();
    const hidden = await commit(cs, alice, [], { wireAsPublicMessage: false });
    expect(await checkCommit(mls, hidden.content, record, members([ALICE, BOB]), ALICE)).toMatchObject({ ok: false, kind: "malformed", reason: expect.stringContaining("private_message") });
  });

  test("an application message as PublicMessage is malformed, for commits and for m.room.encrypted", async () => {
    const { alice, record } = await groupOfThree();
    const valid = await commit(cs, alice, []);
    const message = valid.message;
    if (message.wireformat !== "mls_public_message") throw new Error("unexpected");
    const publicApp = b64({ ...message, publicMessage: { ...message.publicMessage, content: { ...message.publicMessage.content, contentType: "application", applicationData: new Uint8Array([1, 2]) } as never, auth: { contentType: "application", signature: new Uint8Array(64) } } });
    expect(await checkCommit(mls, { ...valid.content, message: publicApp }, record, members([ALICE, BOB]), ALICE)).toMatchObject({ ok: false, kind: "malformed" });
    expect(checkEncryptedMessage(mls, { algorithm: ROOM_ALGORITHM, ciphertext: publicApp, commit_event_id: "$c1" }, record)).toMatchObject({ ok: false, kind: "malformed" });
  });

  test("a GroupInfo whose confirmation tag does not match the commit is refused", async () => {
    const { alice, record } = await groupOfThree();
    const one = await commit(cs, alice, []);
    const two = await commit(cs, alice, []);
    const mixed = { ...one.content, public_group_state: two.content.public_group_state as string };
    expect(await checkCommit(mls, mixed, record, members([ALICE, BOB]), ALICE)).toMatchObject({ ok: false, kind: "policy", reason: expect.stringContaining("confirmation tag") });
  });

  test("an external commit by a joined user is accepted; by a non-member it is refused", async () => {
    const { record } = await groupOfThree();
    const giMessage = (await import("ts-mls")).decodeMlsMessage(record.groupInfo!, 0)![0];
    const bob2 = await makeDevice(cs, BOB, "B2");
    const joining = await externalJoin(cs, giMessage, bob2);
    expect(await checkCommit(mls, joining.content, record, members([ALICE, BOB]), BOB)).toMatchObject({ ok: true, epoch: 2 });
    expect(await checkCommit(mls, joining.content, record, members([ALICE, BOB]), CAROL)).toMatchObject({ ok: false, kind: "policy" });
  });

  test("a replica that does not know the epoch adopts a valid commit", async () => {
    const { bob, record } = await groupOfThree();
    const next = await commit(cs, bob, []);
    const verdict = await checkCommit(mls, next.content, { roomId: ROOM, epoch: null }, members([ALICE, BOB]), BOB);
    expect(verdict).toMatchObject({ ok: true, epoch: 2 });
    expect(record.epoch).toBe(1);
  });

  test("garbage, truncated and trailing-byte payloads are malformed, never a crash", async () => {
    const { alice, record } = await groupOfThree();
    const valid = await commit(cs, alice, []);
    const bytes = decodeBase64(valid.content.message as string)!;
    const infoBytes = decodeBase64(valid.content.public_group_state as string)!;
    const variants: JsonObject[] = [
      { ...valid.content, message: encodeBase64(bytes.subarray(0, bytes.length - 1)) },
      { ...valid.content, message: encodeBase64(new Uint8Array([...bytes, 0])) },
      { ...valid.content, public_group_state: encodeBase64(new Uint8Array([...infoBytes, 0])) },
      { ...valid.content, public_group_state: encodeBase64(infoBytes.subarray(0, 10)) },
      { ...valid.content, message: "not base64!" },
      { ...valid.content, message: 42 },
      { public_group_state: valid.content.public_group_state as string },
    ];
    for (const content of variants) expect(await checkCommit(mls, content, record, members([ALICE, BOB]), ALICE)).toMatchObject({ ok: false, kind: "malformed" });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.nat(bytes.length), async (noise, cut) => {
        const mutated = new Uint8Array([...bytes.subarray(0, cut), ...noise]);
        const verdict = await checkCommit(mls, { ...valid.content, message: encodeBase64(mutated) }, record, members([ALICE, BOB]), ALICE);
        // Only a message whose signed part is untouched could be valid: the server cannot check the
        // membership_tag (the last 33 bytes: a MAC under the epoch's membership key).
        const signedPartKept = mutated.length === bytes.length && mutated.subarray(0, bytes.length - 33).every((b, i) => b === bytes[i]);
        if (!signedPartKept) expect(verdict.ok).toBe(false);
        const encrypted = checkEncryptedMessage(mls, { algorithm: ROOM_ALGORITHM, ciphertext: encodeBase64(mutated), commit_event_id: "$c1" }, record);
        expect(encrypted.ok).toBe(false);
      }),
      { numRuns: 200 },
    );
    // The GroupInfo too: any change to it is refused (its signature covers all of it but the signature itself).
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.nat(infoBytes.length - 1), async (noise, at) => {
        const mutated = new Uint8Array([...infoBytes.subarray(0, at), ...noise, ...infoBytes.subarray(at + noise.length)]);
        if (mutated.length === infoBytes.length && mutated.every((b, i) => b === infoBytes[i])) return;
        const verdict = await checkCommit(mls, { ...valid.content, public_group_state: encodeBase64(mutated) }, record, members([ALICE, BOB]), ALICE);
        expect(verdict.ok).toBe(false);
      }),
      { numRuns: 200 },
    );
  });
});

describe("the adapter's tree encoding", () => {
  test("node by node, with or without cached node encodings, it is ts-mls's encodeRatchetTree", async () => {
    const { record } = await groupOfThree();
    const { encodeRatchetTree } = await import("ts-mls/ratchetTree.js");
    const tree = record.decoded!.tree;
    const cache = new WeakMap<object, Uint8Array>();
    expect(mls.encodeTree(tree, cache)).toEqual(encodeRatchetTree(tree));
    expect(mls.encodeTree(tree, cache)).toEqual(encodeRatchetTree(tree));
    expect(mls.encodeTree([...tree, undefined, undefined])).toEqual(encodeRatchetTree(tree));
  });
});

describe("checkEncryptedMessage", () => {
  test("an application PrivateMessage of the current epoch is accepted; other groups, future epochs and missing fields are not", async () => {
    const { bob, record } = await groupOfThree();
    const { ciphertext } = await encrypt(cs, bob, "hello");
    expect(checkEncryptedMessage(mls, { algorithm: ROOM_ALGORITHM, ciphertext, commit_event_id: "$c1" }, record)).toEqual({ ok: true });
    expect(checkEncryptedMessage(mls, { algorithm: ROOM_ALGORITHM, ciphertext, commit_event_id: "$c1" }, { ...record, roomId: "!other:hub" })).toMatchObject({ ok: false, kind: "policy" });
    expect(checkEncryptedMessage(mls, { algorithm: ROOM_ALGORITHM, ciphertext, commit_event_id: "$c1" }, { roomId: ROOM, epoch: 0 })).toMatchObject({ ok: false, kind: "policy" });
    expect(checkEncryptedMessage(mls, { algorithm: ROOM_ALGORITHM, ciphertext }, record)).toMatchObject({ ok: false, kind: "malformed" });
    expect(checkEncryptedMessage(mls, { algorithm: "m.megolm.v1.aes-sha2", ciphertext, commit_event_id: "$c1" }, record)).toMatchObject({ ok: false, kind: "malformed" });
  });
});

describe("checkKeyPackage", () => {
  const now = Date.now();
  test("a valid key package is accepted with its ref", async () => {
    const device = await makeDevice(cs, ALICE, "A1");
    const kp = await makeKeyPackage(cs, device);
    expect(await checkKeyPackage(mls, kp.encoded, { userId: ALICE, deviceId: "A1", keyVersion: kp.ref, nowMs: now })).toMatchObject({ ok: true, ref: kp.ref });
  });

  test("wrong identity, wrong key version, expired, bad signature, wrong ciphersuite and trailing bytes are refused", async () => {
    const device = await makeDevice(cs, ALICE, "A1");
    const kp = await makeKeyPackage(cs, device);
    const expect400 = async (encoded: string, opts: Partial<{ userId: string; deviceId: string; keyVersion: string; nowMs: number }>, reason: string) =>
      expect(await checkKeyPackage(mls, encoded, { userId: ALICE, deviceId: "A1", keyVersion: kp.ref, nowMs: now, ...opts })).toMatchObject({ ok: false, reason: expect.stringContaining(reason) });
    await expect400(kp.encoded, { deviceId: "A2" }, "names");
    await expect400(kp.encoded, { userId: BOB }, "names");
    await expect400(kp.encoded, { keyVersion: "00".repeat(32) }, "KeyPackageRef");
    const expired = await makeKeyPackage(cs, device, { lifetime: { notBefore: 0n, notAfter: BigInt(Math.floor(now / 1000) - 10) } });
    await expect400(expired.encoded, { keyVersion: expired.ref }, "lifetime");
    const bytes = decodeBase64(kp.encoded)!;
    const tampered = bytes.slice();
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1; // the last byte is the KeyPackage signature's
    await expect400(encodeBase64(tampered), {}, "signature");
    await expect400(encodeBase64(new Uint8Array([...bytes, 0])), {}, "exactly");
    // The same package claiming ciphersuite 3 (validly signed: Ed25519 signs both).
    const { signKeyPackage, encodeKeyPackage } = await import("ts-mls/keyPackage.js");
    const { signature: _signature, ...tbs } = kp.publicPackage;
    const chacha = await signKeyPackage({ ...tbs, cipherSuite: "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" }, device.signKey, cs.signature);
    await expect400(encodeBase64(encodeKeyPackage(chacha)), {}, "ciphersuite");
  });
});

describe("checkDeviceObject and the credential identity", () => {
  test("identity round-trips; trailing bytes and non-minimal lengths are refused", () => {
    const identity = { userId: ALICE, deviceId: "A1", signatureKey: new Uint8Array(32).fill(7) };
    const bytes = encodeDeviceIdentity(identity);
    expect(decodeDeviceIdentity(bytes)).toEqual(identity);
    expect(decodeDeviceIdentity(new Uint8Array([...bytes, 0]))).toBeUndefined();
    expect(decodeDeviceIdentity(new Uint8Array([0x40, bytes[0]!, ...bytes.subarray(1)]))).toBeUndefined();
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (noise) => void decodeDeviceIdentity(noise)));
  });

  test("a signed device object is accepted; another user's credential or a bad signature is refused", async () => {
    const device = await makeDevice(cs, ALICE, "A1");
    expect(checkDeviceObject(await deviceObject(cs, device), { userId: ALICE, deviceId: "A1" })).toMatchObject({ ok: true, identity: { userId: ALICE, deviceId: "A1" } });
    expect(checkDeviceObject(await deviceObject(cs, device), { userId: ALICE, deviceId: "A2" })).toMatchObject({ ok: false });
    const impostor = await makeDevice(cs, ALICE, "A1", { userId: BOB });
    expect(checkDeviceObject(await deviceObject(cs, impostor), { userId: ALICE, deviceId: "A1" })).toMatchObject({ ok: false, reason: expect.stringContaining("names") });
    const other = await makeDevice(cs, ALICE, "A1");
    expect(checkDeviceObject(await deviceObject(cs, device, other.signKey), { userId: ALICE, deviceId: "A1" })).toMatchObject({ ok: false, reason: expect.stringContaining("signature") });
    expect(checkDeviceObject({ user_id: ALICE, device_id: "A1", keys: { "curve25519:A1": "x" } }, { userId: ALICE, deviceId: "A1" })).toEqual({ ok: true });
  });
});
