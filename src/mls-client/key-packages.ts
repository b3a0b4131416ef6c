// A device's KeyPackages (RFC 9420 section 10; LM draft "Key Packages"; Bobbin's MLS wire contract
// section 3): generated with the device's one signature key, uploaded as `KP_ALG:<key version>`
// where the key version is the lowercase hex of the KeyPackageRef, and kept (with their private
// keys) until a Welcome naming their ref arrives.
import {
  decodeMlsMessage,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  type CiphersuiteImpl,
  type KeyPackage,
  type Lifetime,
  type PrivateKeyPackage,
} from "ts-mls";
import { decodeBase64, encodeBase64 } from "../core/base64.js";
import { KEY_PACKAGE_ALGORITHM } from "./algorithms.js";
import { credentialOf, type DeviceIdentity } from "./identity.js";
import { concatBytes, encodeOpaque, toHex } from "../core/mls-wire.js";

/** An MLSMessage starts with version (uint16) and wireformat (uint16); a KeyPackage follows. */
const MLS_MESSAGE_HEADER_LENGTH = 4;
const KEY_PACKAGE_REF_LABEL = new TextEncoder().encode("MLS 1.0 KeyPackage Reference");

/** The KeyPackage encoding alone (not wrapped in an MLSMessage), as the contract uploads it. */
export function encodeKeyPackageBytes(keyPackage: KeyPackage): Uint8Array {
  return encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage }).subarray(MLS_MESSAGE_HEADER_LENGTH);
}

/** Decodes a bare KeyPackage encoding, every byte consumed; undefined otherwise. */
export function decodeKeyPackageBytes(bytes: Uint8Array): KeyPackage | undefined {
  // ts-mls exports no bare KeyPackage decoder from its main entry: read it as the body of an
  // MLSMessage(mls10, mls_key_package).
  const framed = concatBytes([Uint8Array.of(0, 1, 0, 5), bytes]);
  try {
    const decoded = decodeMlsMessage(framed, 0);
    if (!decoded || decoded[1] !== framed.length || decoded[0].wireformat !== "mls_key_package") return undefined;
    return decoded[0].keyPackage;
  } catch {
    return undefined;
  }
}

/** RFC 9420 section 5.2: KeyPackageRef = RefHash("MLS 1.0 KeyPackage Reference", KeyPackage). */
export async function keyPackageRefOf(keyPackage: KeyPackage, cs: CiphersuiteImpl): Promise<Uint8Array> {
  const refHashInput = concatBytes([encodeOpaque(KEY_PACKAGE_REF_LABEL), encodeOpaque(encodeKeyPackageBytes(keyPackage))]);
  return cs.hash.digest(refHashInput);
}

/** The key version of the contract (section 3): lowercase hex of the KeyPackageRef. */
export async function keyVersionOf(keyPackage: KeyPackage, cs: CiphersuiteImpl): Promise<string> {
  return toHex(await keyPackageRefOf(keyPackage, cs));
}

/** The key ID an uploaded KeyPackage is stored under. */
export function keyPackageKeyId(keyVersion: string): string {
  return `${KEY_PACKAGE_ALGORITHM}:${keyVersion}`;
}

/** Reads a claimed `{"KP_ALG:<version>": "<b64 KeyPackage>"}` entry; undefined if none decodes. */
export function parseClaimedKeyPackage(keys: unknown): KeyPackage | undefined {
  if (typeof keys !== "object" || keys === null) return undefined;
  for (const [keyId, value] of Object.entries(keys as Record<string, unknown>)) {
    if (!keyId.startsWith(`${KEY_PACKAGE_ALGORITHM}:`) || typeof value !== "string") continue;
    const bytes = decodeBase64(value);
    const keyPackage = bytes && decodeKeyPackageBytes(bytes);
    if (keyPackage) return keyPackage;
  }
  return undefined;
}

/** How long a new KeyPackage is valid: from an hour ago (clock skew) for 30 days, in seconds. */
export function lifetimeFrom(nowMs: number): Lifetime {
  const now = BigInt(Math.floor(nowMs / 1000));
  return { notBefore: now - 3600n, notAfter: now + 30n * 24n * 3600n };
}

export interface OwnKeyPackage {
  readonly keyVersion: string;
  readonly publicPackage: KeyPackage;
  readonly privatePackage: PrivateKeyPackage;
  readonly lastResort: boolean;
}

export interface SignatureKeyPair {
  readonly signKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** The KeyPackages one device has made and not yet used, by key version (= hex ref). */
export class KeyPackageStore {
  private readonly packages = new Map<string, OwnKeyPackage>();

  constructor(
    private readonly identity: DeviceIdentity,
    private readonly signatureKeys: SignatureKeyPair,
    private readonly cs: CiphersuiteImpl,
    private readonly now: () => number = Date.now,
  ) {}

  /** Makes a KeyPackage for this device and keeps its private keys. */
  async generate(lastResort: boolean): Promise<OwnKeyPackage> {
    const { publicPackage, privatePackage } = await generateKeyPackageWithKey(
      credentialOf(this.identity),
      defaultCapabilities(),
      lifetimeFrom(this.now()),
      [],
      this.signatureKeys,
      this.cs,
    );
    const own: OwnKeyPackage = { keyVersion: await keyVersionOf(publicPackage, this.cs), publicPackage, privatePackage, lastResort };
    this.packages.set(own.keyVersion, own);
    return own;
  }

  /** The one of ours a Welcome's `secrets[].newMember` refs name, if any. */
  findByRef(refs: Uint8Array[]): OwnKeyPackage | undefined {
    for (const ref of refs) {
      const own = this.packages.get(toHex(ref));
      if (own) return own;
    }
    return undefined;
  }

  /** Forgets a used one-time package (a last-resort one stays usable, RFC 9420 section 16.8). */
  consume(own: OwnKeyPackage): void {
    if (!own.lastResort) this.packages.delete(own.keyVersion);
  }

  get size(): number {
    return this.packages.size;
  }
}

/** `keys/upload` `one_time_keys` / `fallback_keys` maps for `packages`. */
export function uploadMapOf(packages: OwnKeyPackage[]): Record<string, string> {
  return Object.fromEntries(packages.map((p) => [keyPackageKeyId(p.keyVersion), encodeBase64(encodeKeyPackageBytes(p.publicPackage))]));
}
