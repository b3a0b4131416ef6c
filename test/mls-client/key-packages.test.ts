// Key version derivation (contract section 3): lowercase hex of the RFC 9420 section 5.2
// KeyPackageRef, checked against ts-mls's own makeKeyPackageRef; the bare KeyPackage encoding.
import { makeKeyPackageRef } from "ts-mls/keyPackage.js";
import { loadCiphersuite, KEY_PACKAGE_ALGORITHM } from "../../src/mls-client/algorithms.js";
import { decodeBase64 } from "../../src/core/base64.js";
import {
  decodeKeyPackageBytes,
  encodeKeyPackageBytes,
  KeyPackageStore,
  keyVersionOf,
  lifetimeFrom,
  parseClaimedKeyPackage,
  uploadMapOf,
} from "../../src/mls-client/key-packages.js";
import type { CiphersuiteImpl } from "ts-mls";

let cs: CiphersuiteImpl;
let store: KeyPackageStore;

beforeAll(async () => {
  cs = await loadCiphersuite();
  const keys = await cs.signature.keygen();
  store = new KeyPackageStore({ userId: "@alice:a", deviceId: "DEV", signatureKey: keys.publicKey }, keys, cs, () => 1_700_000_000_000);
});

test("the key version is the hex KeyPackageRef, as ts-mls computes it", async () => {
  const own = await store.generate(false);
  const ref = await makeKeyPackageRef(own.publicPackage, cs.hash);
  expect(own.keyVersion).toBe(Buffer.from(ref).toString("hex"));
  expect(own.keyVersion).toMatch(/^[0-9a-f]{64}$/);
  expect(await keyVersionOf(own.publicPackage, cs)).toBe(own.keyVersion);
});

test("the bare KeyPackage encoding round-trips and refuses trailing or missing bytes", async () => {
  const own = await store.generate(false);
  const bytes = encodeKeyPackageBytes(own.publicPackage);
  const decoded = decodeKeyPackageBytes(bytes);
  expect(decoded && (await keyVersionOf(decoded, cs))).toBe(own.keyVersion);
  expect(decodeKeyPackageBytes(Uint8Array.from([...bytes, 0]))).toBeUndefined();
  expect(decodeKeyPackageBytes(bytes.subarray(0, bytes.length - 3))).toBeUndefined();
  expect(decodeKeyPackageBytes(Uint8Array.of(1, 2, 3))).toBeUndefined();
});

test("upload maps key each package by KP_ALG:<version>; a claim answer reads back", async () => {
  const own = await store.generate(false);
  const map = uploadMapOf([own]);
  expect(Object.keys(map)).toEqual([`${KEY_PACKAGE_ALGORITHM}:${own.keyVersion}`]);
  expect(decodeBase64(Object.values(map)[0]!)).toEqual(encodeKeyPackageBytes(own.publicPackage));
  const claimed = parseClaimedKeyPackage(map);
  expect(claimed && (await keyVersionOf(claimed, cs))).toBe(own.keyVersion);
  expect(parseClaimedKeyPackage({ "signed_curve25519:AAAA": Object.values(map)[0] })).toBeUndefined();
  expect(parseClaimedKeyPackage({ [`${KEY_PACKAGE_ALGORITHM}:x`]: "not base64!" })).toBeUndefined();
});

test("a Welcome's refs find the package; one-time ones are consumed, last-resort ones stay", async () => {
  const oneTime = await store.generate(false);
  const lastResort = await store.generate(true);
  const refOf = (hex: string) => Uint8Array.from(Buffer.from(hex, "hex"));
  expect(store.findByRef([new Uint8Array(32), refOf(oneTime.keyVersion)])).toBe(oneTime);
  store.consume(oneTime);
  expect(store.findByRef([refOf(oneTime.keyVersion)])).toBeUndefined();
  store.consume(lastResort);
  expect(store.findByRef([refOf(lastResort.keyVersion)])).toBe(lastResort);
});

test("lifetimes start an hour back and last 30 days, within ts-mls's one-month limit", () => {
  const lifetime = lifetimeFrom(1_700_000_000_000);
  expect(lifetime.notBefore).toBe(1_700_000_000n - 3600n);
  expect(lifetime.notAfter - lifetime.notBefore).toBeLessThanOrEqual(2_628_000n);
});
