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

/**
 * The key lines of a file in Synapse's style, `ed25519 <version> <more fields…>`: blank lines are
 * skipped; every other line must have `shape`'s number of fields, the `ed25519` algorithm and a
 * valid version not seen before; `parse` reads the fields after the version into a key, or returns
 * the reason it cannot. Errors name the line (1-based). Never throws.
 */
export function parseEd25519KeyLines<T>(
  text: string,
  shape: string,
  parse: (version: string, rest: string[]) => T | { reason: string },
): { ok: true; keys: T[] } | { ok: false; reason: string } {
  if (typeof text !== "string") return { ok: false, reason: "key file is not text" };
  // `ed25519` plus one field per `<…>` placeholder.
  const expectedFields = 1 + (shape.match(/<[^>]*>/g)?.length ?? 0);
  const keys: T[] = [];
  const versions = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = (lines[index] as string).trim();
    if (line === "") continue;
    const where = `line ${index + 1}`;
    const fields = line.split(/\s+/);
    if (fields.length !== expectedFields) return { ok: false, reason: `${where}: expected "${shape}", found ${fields.length} fields` };
    const [algorithm, version, ...rest] = fields as [string, string, ...string[]];
    if (algorithm !== "ed25519") return { ok: false, reason: `${where}: unsupported key algorithm ${JSON.stringify(algorithm)}` };
    if (!isValidKeyVersion(version)) return { ok: false, reason: `${where}: key version ${JSON.stringify(version)} is not 1*[A-Za-z0-9_]` };
    if (versions.has(version)) return { ok: false, reason: `${where}: key version ${version} appears twice` };
    const key = parse(version, rest);
    if (typeof key === "object" && key !== null && "reason" in key) return { ok: false, reason: `${where}: ${key.reason}` };
    versions.add(version);
    keys.push(key as T);
  }
  return { ok: true, keys };
}

/** Parses a key file; blank lines are ignored, anything else that is not a key line is an error
 *  naming the line (1-based). A file with no key is an error. Never throws. */
export function parseSigningKeyFile(text: string): SigningKeyFileResult {
  const parsed = parseEd25519KeyLines<SigningKeySeed>(text, "ed25519 <version> <base64 seed>", (version, [encodedSeed]) => {
    const seed = decodeBase64(encodedSeed as string);
    if (seed === undefined) return { reason: "seed is not valid base64" };
    if (seed.length !== SEED_LENGTH) return { reason: `seed is ${seed.length} bytes, expected ${SEED_LENGTH}` };
    return { version, seed };
  });
  if (parsed.ok && parsed.keys.length === 0) return { ok: false, reason: "key file holds no key" };
  return parsed;
}

/** One line per key, newline-terminated. The caller passes valid keys (parseSigningKeyFile
 *  refuses what this would write for an invalid version or seed); nothing is checked here. */
export function formatSigningKeyFile(keys: readonly SigningKeySeed[]): string {
  return keys.map((key) => `ed25519 ${key.version} ${encodeBase64(key.seed)}\n`).join("");
}
