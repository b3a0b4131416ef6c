import { readFileSync } from "node:fs";
import fc from "fast-check";
import { decodeBase64, encodeBase64 } from "../../../src/core/base64.js";
import {
  getEd25519Backend,
  isValidEd25519PublicKey,
  nativeEd25519,
  nobleEd25519,
  type Ed25519Backend,
} from "../../../src/core/ed25519.js";

const signingVectors = JSON.parse(readFileSync(new URL("../../fixtures/signing-vectors.json", import.meta.url), "utf8")) as {
  signing_key_seed_unpadded_base64: string;
  derived_public_key_unpadded_base64: string;
};

const hex = (text: string) => new Uint8Array(Buffer.from(text, "hex"));
const backends: Array<[string, Ed25519Backend]> = [
  ["native", nativeEd25519],
  ["noble", nobleEd25519],
];

// RFC 8032 section 7.1, TEST 1 to 3.
const rfc8032 = [
  {
    name: "TEST 1",
    seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    message: "",
    signature:
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    name: "TEST 2",
    seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    message: "72",
    signature:
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
  {
    name: "TEST 3",
    seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    message: "af82",
    signature:
      "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
  },
];

describe.each(backends)("%s backend", (_name, backend) => {
  test.each(rfc8032.map((v) => [v.name, v] as const))("RFC 8032 %s", (_n, v) => {
    const signer = backend.signerFromSeed(hex(v.seed));
    expect(Buffer.from(signer.publicKey).toString("hex")).toBe(v.publicKey);
    expect(Buffer.from(signer.sign(hex(v.message))).toString("hex")).toBe(v.signature);
    const verifier = backend.verifierFromPublicKey(hex(v.publicKey));
    expect(verifier?.verify(hex(v.message), hex(v.signature))).toBe(true);
    expect(verifier?.verify(hex(v.message + "00"), hex(v.signature))).toBe(false);
  });

  test("signs a view into a larger buffer exactly as the bytes alone", () => {
    const signer = backend.signerFromSeed(hex(rfc8032[2]!.seed));
    const larger = new Uint8Array([9, 9, 9, ...hex(rfc8032[2]!.message), 9]);
    const view = larger.subarray(3, 3 + rfc8032[2]!.message.length / 2);
    expect(Buffer.from(signer.sign(view)).toString("hex")).toBe(rfc8032[2]!.signature);
    const seedView = new Uint8Array([0, ...hex(rfc8032[2]!.seed)]).subarray(1);
    expect(Buffer.from(backend.signerFromSeed(seedView).publicKey).toString("hex")).toBe(rfc8032[2]!.publicKey);
  });

  test("the Matrix spec's test seed derives the known public key", () => {
    const seed = decodeBase64(signingVectors.signing_key_seed_unpadded_base64)!;
    expect(encodeBase64(backend.signerFromSeed(seed).publicKey)).toBe(signingVectors.derived_public_key_unpadded_base64);
  });

  test("signerFromSeed throws on a seed that is not 32 bytes", () => {
    expect(() => backend.signerFromSeed(new Uint8Array(31))).toThrow(RangeError);
    expect(() => backend.signerFromSeed(new Uint8Array(64))).toThrow(RangeError);
  });

  test("verifiers never throw: bad lengths and types are false", () => {
    const signer = backend.signerFromSeed(hex(rfc8032[0]!.seed));
    const verifier = backend.verifierFromPublicKey(signer.publicKey)!;
    const message = new Uint8Array([1, 2, 3]);
    const signature = signer.sign(message);
    expect(verifier.verify(message, signature)).toBe(true);
    expect(verifier.verify(message, signature.subarray(0, 63))).toBe(false);
    expect(verifier.verify(message, new Uint8Array(65))).toBe(false);
    expect(verifier.verify(message, new Uint8Array(64))).toBe(false);
    expect(verifier.verify(message, new Uint8Array(64).fill(0xff))).toBe(false);
    expect(verifier.verify(message, "not bytes" as unknown as Uint8Array)).toBe(false);
    expect(verifier.verify(null as unknown as Uint8Array, signature)).toBe(false);
  });

  test("verifierFromPublicKey refuses bad encodings", () => {
    expect(backend.verifierFromPublicKey(new Uint8Array(31))).toBeUndefined();
    expect(backend.verifierFromPublicKey(new Uint8Array(33))).toBeUndefined();
    // The identity point (y = 1): small order, any message would "verify" with a crafted signature.
    expect(backend.verifierFromPublicKey(hex("01" + "00".repeat(31)))).toBeUndefined();
    // y = p = 2^255 − 19, a non-canonical encoding.
    expect(backend.verifierFromPublicKey(hex("ed" + "ff".repeat(30) + "7f"))).toBeUndefined();
    expect(backend.verifierFromPublicKey("abc" as unknown as Uint8Array)).toBeUndefined();
  });
});

test("getEd25519Backend", () => {
  expect(getEd25519Backend("native")).toBe(nativeEd25519);
  expect(getEd25519Backend("noble")).toBe(nobleEd25519);
});

describe("the backends agree", () => {
  test("identical public keys and signatures; each verifies the other's", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), (seed, message) => {
        const native = nativeEd25519.signerFromSeed(seed);
        const noble = nobleEd25519.signerFromSeed(seed);
        expect(native.publicKey).toEqual(noble.publicKey);
        const signature = native.sign(message);
        expect(noble.sign(message)).toEqual(signature);
        expect(nobleEd25519.verifierFromPublicKey(native.publicKey)?.verify(message, signature)).toBe(true);
        expect(nativeEd25519.verifierFromPublicKey(noble.publicKey)?.verify(message, signature)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  test("agree on corrupted signatures, changed messages and wrong keys", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 100 }),
        fc.nat(64 * 8 - 1),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (seed, message, bit, otherSeed) => {
          const signer = nativeEd25519.signerFromSeed(seed);
          const signature = signer.sign(message);
          const corrupted = new Uint8Array(signature);
          corrupted[bit >> 3] = (corrupted[bit >> 3] as number) ^ (1 << (bit & 7));
          const changed = new Uint8Array([...message, 0]);
          const other = nativeEd25519.signerFromSeed(otherSeed).publicKey;
          const native = nativeEd25519.verifierFromPublicKey(signer.publicKey)!;
          const noble = nobleEd25519.verifierFromPublicKey(signer.publicKey)!;
          expect(native.verify(message, corrupted)).toBe(false);
          expect(noble.verify(message, corrupted)).toBe(false);
          expect(native.verify(changed, signature)).toBe(false);
          expect(noble.verify(changed, signature)).toBe(false);
          const sameKey = Buffer.from(other).equals(Buffer.from(signer.publicKey));
          expect(nativeEd25519.verifierFromPublicKey(other)!.verify(message, signature)).toBe(sameKey);
          expect(nobleEd25519.verifierFromPublicKey(other)!.verify(message, signature)).toBe(sameKey);
        },
      ),
      { numRuns: 100 },
    );
  });

  test("agree on which random 32-byte strings are public keys", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const native = nativeEd25519.verifierFromPublicKey(bytes);
        const noble = nobleEd25519.verifierFromPublicKey(bytes);
        expect(native === undefined).toBe(noble === undefined);
        expect(native === undefined).toBe(!isValidEd25519PublicKey(bytes));
      }),
      { numRuns: 200 },
    );
  });
});
