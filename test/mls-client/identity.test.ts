// Device identity encoding (contract section 2): the credential identity names user, device and
// signature key, TLS-encoded with RFC 9420 section 2.1.2 varint length prefixes.
import fc from "fast-check";
import { decodeDeviceIdentity, deviceAuthenticationService, encodeDeviceIdentity, credentialOf } from "../../src/mls-client/identity.js";
import { decodeVarint, encodeVarint } from "../../src/core/mls-wire.js";

const key = new Uint8Array(32).fill(7);

describe("RFC 9420 section 2.1.2 varints", () => {
  test.each([
    [0, [0x00]],
    [37, [0x25]],
    [63, [0x3f]],
    [64, [0x40, 0x40]],
    [15293, [0x7b, 0xbd]],
    [16383, [0x7f, 0xff]],
    [16384, [0x80, 0x00, 0x40, 0x00]],
    [494878333, [0x9d, 0x7f, 0x3e, 0x7d]],
  ])("%d <-> %j (the RFC's examples and the boundaries)", (value, bytes) => {
    expect([...encodeVarint(value)]).toEqual(bytes);
    expect(decodeVarint(Uint8Array.from(bytes), 0)).toEqual([value, bytes.length]);
  });

  test("non-minimal, reserved-prefix and truncated varints are refused", () => {
    expect(decodeVarint(Uint8Array.of(0x40, 0x25), 0)).toBeUndefined();
    expect(decodeVarint(Uint8Array.of(0x80, 0x00, 0x00, 0x25), 0)).toBeUndefined();
    expect(decodeVarint(Uint8Array.of(0xc0, 0, 0, 0, 0, 0, 0, 1), 0)).toBeUndefined();
    expect(decodeVarint(Uint8Array.of(0x40), 0)).toBeUndefined();
    expect(() => encodeVarint(2 ** 30)).toThrow(RangeError);
  });
});

describe("device identity", () => {
  test("a known encoding: lengths then UTF-8 user, device, then the key", () => {
    const bytes = encodeDeviceIdentity({ userId: "@a:b", deviceId: "D", signatureKey: key });
    expect([...bytes.subarray(0, 8)]).toEqual([4, 0x40, 0x61, 0x3a, 0x62, 1, 0x44, 32]);
    expect(bytes.length).toBe(8 + 32);
  });

  test("round-trips any user, device (including non-ASCII and long ones) and key", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 300 }), fc.string({ maxLength: 80 }), fc.uint8Array({ minLength: 0, maxLength: 64 }), (userId, deviceId, signatureKey) => {
        const decoded = decodeDeviceIdentity(encodeDeviceIdentity({ userId, deviceId, signatureKey }));
        expect(decoded).toEqual({ userId, deviceId, signatureKey });
      }),
    );
  });

  test("trailing bytes, truncation, a missing field and invalid UTF-8 are refused", () => {
    const bytes = encodeDeviceIdentity({ userId: "@alice:a", deviceId: "ABC", signatureKey: key });
    expect(decodeDeviceIdentity(Uint8Array.from([...bytes, 0]))).toBeUndefined();
    expect(decodeDeviceIdentity(bytes.subarray(0, bytes.length - 1))).toBeUndefined();
    expect(decodeDeviceIdentity(Uint8Array.of(1, 0x41, 1, 0x42))).toBeUndefined();
    expect(decodeDeviceIdentity(Uint8Array.of(1, 0xff, 1, 0x42, 0))).toBeUndefined();
    expect(decodeDeviceIdentity(new Uint8Array())).toBeUndefined();
  });

  test("the credential check binds the identity to the leaf's signature key", async () => {
    const credential = credentialOf({ userId: "@a:b", deviceId: "D", signatureKey: key });
    expect(await deviceAuthenticationService.validateCredential(credential, key)).toBe(true);
    expect(await deviceAuthenticationService.validateCredential(credential, new Uint8Array(32).fill(8))).toBe(false);
    expect(await deviceAuthenticationService.validateCredential({ credentialType: "basic", identity: Uint8Array.of(1, 2, 3) }, key)).toBe(false);
    expect(await deviceAuthenticationService.validateCredential({ credentialType: "x509", certificates: [] }, key)).toBe(false);
  });
});
