// The old-keys file: keys the server signed with before, published under `old_verify_keys`.
//
// It sits next to the signing key file as `<key file>.old`, so the key file itself stays exactly
// Synapse's format (`ed25519 <version> <unpadded-b64 seed>`, the first line the current key).
// One key a line, in the line format of signedjson's `read_old_signing_keys` (what Synapse's
// tooling reads): `ed25519 <version> <expired_ts> <unpadded-b64 public key>`. Only public keys are
// kept: an old key verifies what it signed and never signs again. Blank lines are ignored.
import { decodeBase64, encodeBase64 } from "../../core/base64.js";
import { isValidEd25519PublicKey } from "../../core/ed25519.js";
import { isValidKeyVersion } from "../../core/identifiers.js";
import type { OldVerifyKey } from "./server-keys.js";

export type OldKeysFileResult = { ok: true; keys: OldVerifyKey[] } | { ok: false; reason: string };

/** The path of the old-keys file that belongs to a signing key file. */
export function oldKeysPathOf(signingKeyPath: string): string {
  return `${signingKeyPath}.old`;
}

/** Parses an old-keys file; a line that is not a key is an error naming it (1-based). Never throws. */
export function parseOldKeysFile(text: string): OldKeysFileResult {
  if (typeof text !== "string") return { ok: false, reason: "old keys file is not text" };
  const keys: OldVerifyKey[] = [];
  const seen = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = (lines[index] as string).trim();
    if (line === "") continue;
    const where = `line ${index + 1}`;
    const fields = line.split(/\s+/);
    if (fields.length !== 4) return { ok: false, reason: `${where}: expected "ed25519 <version> <expired_ts> <base64 public key>", found ${fields.length} fields` };
    const [algorithm, version, expired, encodedKey] = fields as [string, string, string, string];
    if (algorithm !== "ed25519") return { ok: false, reason: `${where}: unsupported key algorithm ${JSON.stringify(algorithm)}` };
    if (!isValidKeyVersion(version)) return { ok: false, reason: `${where}: key version ${JSON.stringify(version)} is not 1*[A-Za-z0-9_]` };
    if (!/^[0-9]{1,16}$/.test(expired) || !Number.isSafeInteger(Number(expired))) return { ok: false, reason: `${where}: expired_ts ${JSON.stringify(expired)} is not a timestamp in milliseconds` };
    const publicKey = decodeBase64(encodedKey);
    if (publicKey === undefined || !isValidEd25519PublicKey(publicKey)) return { ok: false, reason: `${where}: not a valid base64 Ed25519 public key` };
    const keyId = `ed25519:${version}`;
    if (seen.has(keyId)) return { ok: false, reason: `${where}: key version ${version} appears twice` };
    seen.add(keyId);
    keys.push({ keyId, publicKey, expiredTs: Number(expired) });
  }
  return { ok: true, keys };
}

/** One line per key, newline-terminated; the caller passes valid keys. */
export function formatOldKeysFile(keys: readonly OldVerifyKey[]): string {
  return keys.map((key) => `ed25519 ${key.keyId.slice("ed25519:".length)} ${key.expiredTs} ${encodeBase64(key.publicKey)}\n`).join("");
}
