// Commit intents (rebuilt on a new epoch after a lost one), claimed KeyPackage checks and the
// device object's signature.
import type { CiphersuiteImpl, KeyPackage } from "ts-mls";
import { loadCiphersuite, CREDENTIAL_ALGORITHM, KEY_PACKAGE_ALGORITHM, ROOM_ALGORITHM } from "../../src/mls-client/algorithms.js";
import { readClaimedKeyPackages, resolveIntent } from "../../src/mls-client/commit-intent.js";
import { signDeviceObject, verifyDeviceObject } from "../../src/mls-client/device-object.js";
import { deviceKey, type DeviceIdentity } from "../../src/mls-client/identity.js";
import { KeyPackageStore, uploadMapOf, type OwnKeyPackage } from "../../src/mls-client/key-packages.js";
import type { GroupMember } from "../../src/mls-client/room-group.js";

let cs: CiphersuiteImpl;
const identities: Record<string, DeviceIdentity> = {};
const packages: Record<string, OwnKeyPackage> = {};
const signKeys: Record<string, Uint8Array> = {};

beforeAll(async () => {
  cs = await loadCiphersuite();
  for (const [userId, deviceId] of [["@a:x", "A1"], ["@b:x", "B1"], ["@b:x", "B2"], ["@c:x", "C1"]] as const) {
    const keys = await cs.signature.keygen();
    const identity = { userId, deviceId, signatureKey: keys.publicKey };
    identities[deviceId] = identity;
    signKeys[deviceId] = keys.signKey;
    packages[deviceId] = await new KeyPackageStore(identity, keys, cs).generate(false);
  }
});

const member = (deviceId: string, leafIndex: number): GroupMember => ({ leafIndex, identity: identities[deviceId]! });
const claimed = (deviceId: string) => ({ userId: identities[deviceId]!.userId, deviceId, keyPackage: packages[deviceId]!.publicPackage });

describe("resolveIntent", () => {
  test("adds devices not in the group once, removes present ones by their current leaf", () => {
    const resolved = resolveIntent({ add: [claimed("B1"), claimed("B2"), claimed("B2")], remove: [{ userId: "@c:x", deviceId: "C1" }] }, [member("A1", 0), member("B1", 1), member("C1", 3)]);
    expect(resolved.added).toEqual([{ userId: "@b:x", deviceId: "B2" }]);
    expect(resolved.removed).toEqual([{ userId: "@c:x", deviceId: "C1" }]);
    expect(resolved.proposals.map((p) => p.proposalType)).toEqual(["add", "remove"]);
    expect(resolved.proposals[1]).toEqual({ proposalType: "remove", remove: { removed: 3 } });
    expect(resolved.nothingLeft).toBe(false);
  });

  test("after another commit did the work, nothing is left; an empty intent is a key update", () => {
    const members = [member("A1", 0), member("B1", 1)];
    expect(resolveIntent({ add: [claimed("B1")], remove: [{ userId: "@c:x", deviceId: "C1" }] }, members).nothingLeft).toBe(true);
    const update = resolveIntent({ add: [], remove: [] }, members);
    expect(update).toEqual({ proposals: [], added: [], removed: [], nothingLeft: false });
  });
});

describe("readClaimedKeyPackages", () => {
  const answerFor = (entries: Array<[string, string, KeyPackage]>) => {
    const answer: Record<string, Record<string, Record<string, unknown>>> = {};
    for (const [userId, deviceId, keyPackage] of entries) (answer[userId] ??= {})[deviceId] = uploadMapOf([{ keyVersion: "v", publicPackage: keyPackage, privatePackage: packages.A1!.privatePackage, lastResort: false }]);
    return answer;
  };

  test("keeps packages whose credential names the device and matches its device object", () => {
    const published = new Map([[deviceKey("@b:x", "B1"), identities.B1!]]);
    const reading = readClaimedKeyPackages([{ userId: "@b:x", deviceId: "B1" }, { userId: "@c:x", deviceId: "C1" }], answerFor([["@b:x", "B1", packages.B1!.publicPackage], ["@c:x", "C1", packages.C1!.publicPackage]]), published);
    expect(reading.claimed.map((c) => c.deviceId)).toEqual(["B1", "C1"]);
    expect(reading.missing).toEqual([]);
  });

  test("refuses a package of another device, one whose key differs from the device object, and none at all", () => {
    const published = new Map([[deviceKey("@b:x", "B2"), identities.B1!]]);
    const reading = readClaimedKeyPackages(
      [{ userId: "@b:x", deviceId: "B1" }, { userId: "@b:x", deviceId: "B2" }, { userId: "@c:x", deviceId: "C1" }],
      { ...answerFor([["@b:x", "B1", packages.C1!.publicPackage], ["@b:x", "B2", packages.B2!.publicPackage]]), "@c:x": { C1: {} } },
      published,
    );
    expect(reading.claimed).toEqual([]);
    expect(reading.missing.map((m) => [m.deviceId, m.reason])).toEqual([
      ["B1", "the KeyPackage's credential names another device"],
      ["B2", "the KeyPackage's signature key differs from the published device object"],
      ["C1", "no KeyPackage was claimed"],
    ]);
  });
});

describe("device object", () => {
  test("is signed by the MLS signature key under the credential key ID and verifies", async () => {
    const object = await signDeviceObject(identities.A1!, signKeys.A1!, cs);
    expect(object.algorithms).toEqual([ROOM_ALGORITHM]);
    expect(Object.keys(object.keys)).toEqual([`${CREDENTIAL_ALGORITHM}:A1`]);
    expect(Object.keys(object.signatures["@a:x"]!)).toEqual([`${CREDENTIAL_ALGORITHM}:A1`]);
    expect(await verifyDeviceObject(object, "@a:x", "A1", cs)).toEqual(identities.A1);
    expect(KEY_PACKAGE_ALGORITHM).toContain("key_package");
  });

  test("fails for another user or device, a changed field, or a signature by another key", async () => {
    const object = await signDeviceObject(identities.A1!, signKeys.A1!, cs);
    expect(await verifyDeviceObject(object, "@b:x", "A1", cs)).toBeUndefined();
    expect(await verifyDeviceObject({ ...object, algorithms: [] }, "@a:x", "A1", cs)).toBeUndefined();
    const foreign = await signDeviceObject(identities.A1!, signKeys.B1!, cs);
    expect(await verifyDeviceObject(foreign, "@a:x", "A1", cs)).toBeUndefined();
    expect(await verifyDeviceObject("x", "@a:x", "A1", cs)).toBeUndefined();
  });
});
