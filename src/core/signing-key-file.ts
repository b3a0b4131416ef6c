// Signing-key files in Synapse's format, one key per line: `ed25519 <version> <unpadded-b64 seed>`,
// so that a server's keys move between Synapse and Bobbin unchanged (DESIGN.md "signatures").
import { decodeBase64, encodeBase64 } from "./base64.js";
import { SEED_LENGTH } from "./ed25519.js";
import { isValidKeyVersion } from "./identifiers.js";

export interface SigningKeySeed {
  readonly version: string;
  readonly seed: Uint8Array;
}

export type SigningKeyFileResult = { ok: true; keys: SigningKeySeed[] } | { ok: false; reason: string };

/** Parses a key file; blank lines are ignored, anything else that is not a key line is an error
 *  naming the line (1-based). A file with no key is an error. Never throws. */
export function parseSigningKeyFile(text: string): SigningKeyFileResult {
  if (typeof text !== "string") return { ok: false, reason: "key file is not text" };
  const keys: SigningKeySeed[] = [];
  const versions = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = (lines[index] as string).trim();
    if (line === "") continue;
    const where = `line ${index + 1}`;
    const fields = line.split(/\s+/);
    if (fields.length !== 3) return { ok: false, reason: `${where}: expected "ed25519 <version> <base64 seed>", found ${fields.length} fields` };
    const [algorithm, version, encodedSeed] = fields as [string, string, string];
    if (algorithm !== "ed25519") return { ok: false, reason: `${where}: unsupported key algorithm ${JSON.stringify(algorithm)}` };
    if (!isValidKeyVersion(version)) return { ok: false, reason: `${where}: key version ${JSON.stringify(version)} is not 1*[A-Za-z0-9_]` };
    if (versions.has(version)) return { ok: false, reason: `${where}: key version ${version} appears twice` };
    const seed = decodeBase64(encodedSeed);
    if (seed === undefined) return { ok: false, reason: `${where}: seed is not valid base64` };
    if (seed.length !== SEED_LENGTH) return { ok: false, reason: `${where}: seed is ${seed.length} bytes, expected ${SEED_LENGTH}` };
    versions.add(version);
    keys.push({ version, seed });
  }
  if (keys.length === 0) return { ok: false, reason: "key file holds no key" };
  return { ok: true, keys };
}

/** One line per key, newline-terminated. The caller passes valid keys (parseSigningKeyFile
 *  refuses what this would write for an invalid version or seed); nothing is checked here. */
export function formatSigningKeyFile(keys: readonly SigningKeySeed[]): string {
  return keys.map((key) => `ed25519 ${key.version} ${encodeBase64(key.seed)}\n`).join("");
}
