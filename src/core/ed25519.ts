// Ed25519 (RFC 8032) behind one interface with two backends: native code ("native", default,
// fast) and @noble/ed25519 ("noble", portable).
//
// The native backend signs with libsodium (sodium-native) and verifies with OpenSSL (node:crypto).
// Ed25519 signatures are deterministic (RFC 8032 section 5.1.6): every correct implementation
// gives the same bytes, so which one signs changes nothing but the cost, and libsodium's
// crypto_sign_detached took 18 µs against node:crypto's 35 µs per 300-byte message on the 2-core
// dev VM (node:crypto pays for its argument checks and a job object per call). A hub signs every
// event it appends, so on `bench:client` this was ~10% of the server's CPU per message send.
// Verifying is where implementations differ (which encodings and small-order points they accept),
// and two servers that disagree on a signature disagree on the room: verification stays with
// OpenSSL, whose rules the paragraph below pins.
//
// Both backends accept the same public keys: a strict RFC 8032 encoding (y < p, no x = 0 with
// the sign bit set) of a point that is not of small order. OpenSSL imports any 32 bytes and a
// small-order key would let one signature verify for many messages, so the check is done here,
// once per key, with noble's point decoder for both backends.
import { createPublicKey, verify as nodeVerify } from "node:crypto";
import * as ed from "@noble/ed25519";
import sodium from "sodium-native";
import { sha512 } from "@noble/hashes/sha2.js";

// noble's synchronous API needs a SHA-512 implementation plugged in (it ships only an async
// WebCrypto one). This is the one module-level mutation in the kernel: it installs a pure
// function, always the same, so it is idempotent and order-independent. The copy gives noble the
// ArrayBuffer-backed type it declares (the digest already is one; this avoids a cast).
ed.hashes.sha512 = (message) => new Uint8Array(sha512(message));

export interface Ed25519Signer {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

export interface Ed25519Verifier {
  readonly publicKey: Uint8Array;
  /** False for a bad signature, wrong length or malformed input; never throws. */
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

export type Ed25519BackendName = "native" | "noble";

export interface Ed25519Backend {
  readonly name: Ed25519BackendName;
  /** From a 32-byte seed (the RFC 8032 private key). Throws on a seed that is not 32 bytes. */
  signerFromSeed(seed: Uint8Array): Ed25519Signer;
  /** From a 32-byte public key; undefined if it is not a valid key encoding. */
  verifierFromPublicKey(publicKey: Uint8Array): Ed25519Verifier | undefined;
}

export const SEED_LENGTH = 32;
export const PUBLIC_KEY_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;

/** DER of a SubjectPublicKeyInfo for Ed25519 (RFC 8410), up to the 32-byte key. */
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

function checkSeed(seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_LENGTH) {
    throw new RangeError(`An Ed25519 seed is ${SEED_LENGTH} bytes`);
  }
}

/** Strict RFC 8032 point encoding, not of small order (see the module comment). */
export function isValidEd25519PublicKey(publicKey: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_LENGTH) return false;
  try {
    return !ed.Point.fromBytes(publicKey, false).isSmallOrder();
  } catch {
    return false;
  }
}

const bufferView = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function isBytes(value: unknown, length?: number): value is Uint8Array {
  return value instanceof Uint8Array && (length === undefined || value.length === length);
}

export const nativeEd25519: Ed25519Backend = {
  name: "native",
  signerFromSeed(seed: Uint8Array): Ed25519Signer {
    checkSeed(seed);
    const publicKey = Buffer.alloc(sodium.crypto_sign_PUBLICKEYBYTES);
    // libsodium's secret key is the seed followed by the public key; in memory libsodium guards
    // (sodium_malloc), not on the JS heap.
    const secretKey = sodium.sodium_malloc(sodium.crypto_sign_SECRETKEYBYTES);
    sodium.crypto_sign_seed_keypair(publicKey, secretKey, bufferView(seed));
    return {
      publicKey: new Uint8Array(publicKey),
      sign(message) {
        const signature = new Uint8Array(SIGNATURE_LENGTH);
        // Buffer views of the same memory: sodium-native takes Buffers; nothing is copied.
        sodium.crypto_sign_detached(Buffer.from(signature.buffer), bufferView(message), secretKey);
        return signature;
      },
    };
  },
  verifierFromPublicKey(publicKey: Uint8Array): Ed25519Verifier | undefined {
    if (!isValidEd25519PublicKey(publicKey)) return undefined;
    const key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: "der", type: "spki" });
    return {
      publicKey: new Uint8Array(publicKey),
      verify(message, signature) {
        if (!isBytes(message) || !isBytes(signature, SIGNATURE_LENGTH)) return false;
        try {
          return nodeVerify(null, message, key, signature);
        } catch {
          return false;
        }
      },
    };
  },
};

export const nobleEd25519: Ed25519Backend = {
  name: "noble",
  signerFromSeed(seed: Uint8Array): Ed25519Signer {
    checkSeed(seed);
    const secretKey = new Uint8Array(seed);
    return {
      publicKey: ed.getPublicKey(secretKey),
      sign: (message) => ed.sign(message, secretKey),
    };
  },
  verifierFromPublicKey(publicKey: Uint8Array): Ed25519Verifier | undefined {
    if (!isValidEd25519PublicKey(publicKey)) return undefined;
    const key = new Uint8Array(publicKey);
    return {
      publicKey: key,
      verify(message, signature) {
        if (!isBytes(message) || !isBytes(signature, SIGNATURE_LENGTH)) return false;
        try {
          // RFC 8032 decoding rules as OpenSSL applies them, not noble's default ZIP-215 ones.
          return ed.verify(signature, message, key, { zip215: false });
        } catch {
          return false;
        }
      },
    };
  },
};

export function getEd25519Backend(name: Ed25519BackendName): Ed25519Backend {
  return name === "noble" ? nobleEd25519 : nativeEd25519;
}
