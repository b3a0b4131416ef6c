// The old-keys file: keys the server signed with before, published under `old_verify_keys`.
//
// It sits next to the signing key file as `<key file>.old`, so the key file itself stays exactly
// Synapse's format (`ed25519 <version> <unpadded-b64 seed>`, the first line the current key).
// One key a line, in the line format of signedjson's `read_old_signing_keys` (what Synapse's
// tooling reads): `ed25519 <version> <expired_ts> <unpadded-b64 public key>`. Only public keys are
// kept: an old key verifies what it signed and never signs again. Blank lines are ignored.
import { decodeBase64, encodeBase64 } from "../../core/base64.js";
import { isValidEd25519PublicKey } from "../../core/ed25519.js";
import { parseEd25519KeyLines } from "../../core/signing-key-file.js";
import type { OldVerifyKey } from "./server-keys.js";

export type OldKeysFileResult = { ok: true; keys: OldVerifyKey[] } | { ok: false; reason: string };

/** The path of the old-keys file that belongs to a signing key file. */
export function oldKeysPathOf(signingKeyPath: string): string {
  return `${signingKeyPath}.old`;
}

/** Parses an old-keys file; a line that is not a key is an error naming it (1-based). Never throws. */
export function parseOldKeysFile(text: string): OldKeysFileResult {
  if (typeof text !== "string") return { ok: false, reason: "old keys file is not text" };
  return parseEd25519KeyLines<OldVerifyKey>(text, "ed25519 <version> <expired_ts> <base64 public key>", (version, [expired, encodedKey]) => {
    if (!/^[0-9]{1,16}$/.test(expired as string) || !Number.isSafeInteger(Number(expired))) {
      return { reason: `expired_ts ${JSON.stringify(expired)} is not a timestamp in milliseconds` };
    }
    const publicKey = decodeBase64(encodedKey as string);
    if (publicKey === undefined || !isValidEd25519PublicKey(publicKey)) return { reason: "not a valid base64 Ed25519 public key" };
    return { keyId: `ed25519:${version}`, publicKey, expiredTs: Number(expired) };
  });
}

/** One line per key, newline-terminated; the caller passes valid keys. */
export function formatOldKeysFile(keys: readonly OldVerifyKey[]): string {
  return keys.map((key) => `ed25519 ${key.keyId.slice("ed25519:".length)} ${key.expiredTs} ${encodeBase64(key.publicKey)}\n`).join("");
}
