// Signing-key rotation on disk (the `bobbin rotate-key` command) and reading the old keys a
// server publishes. Formats: the key file is Synapse's (src/core/signing-key-file.ts), the old
// keys sit in `<key file>.old` (old-keys-file.ts). docs/signing-keys.md explains both.
import { randomBytes, randomInt } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { getEd25519Backend, SEED_LENGTH, type Ed25519BackendName } from "../../core/ed25519.js";
import { formatSigningKeyFile, parseSigningKeyFile } from "../../core/signing-key-file.js";
import { formatOldKeysFile, oldKeysPathOf, parseOldKeysFile } from "./old-keys-file.js";
import type { OldVerifyKey } from "./server-keys.js";

/** A key file or old-keys file that cannot be read, parsed or written; the message names the file. */
export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyFileError";
  }
}

export interface KeyRotation {
  /** The key IDs that stopped signing (every key the key file held). */
  readonly retiredKeyIds: string[];
  readonly newKeyId: string;
}

/** The old keys published under `old_verify_keys`; none when `<key file>.old` does not exist. */
export function readOldVerifyKeys(signingKeyPath: string): OldVerifyKey[] {
  const path = oldKeysPathOf(signingKeyPath);
  const text = readText(path, { missingOk: true });
  if (text === undefined) return [];
  const parsed = parseOldKeysFile(text);
  if (!parsed.ok) throw new KeyFileError(`old signing keys file ${path} is not valid: ${parsed.reason}`);
  return parsed.keys;
}

/**
 * Replaces the current signing key with a new one and moves every key of the key file into the
 * old-keys file with `expired_ts` = `now`. The old-keys file is written first, each file through a
 * temporary file and a rename, so a crash leaves either the old state or a key listed both as
 * current and as old (the key response lets the current key win; rotating again repairs it).
 * A running server reads its keys at start: restart it afterwards.
 */
export function rotateSigningKey(signingKeyPath: string, now: number, backend: Ed25519BackendName = "native"): KeyRotation {
  const keyText = readText(signingKeyPath, { missingOk: false }) as string;
  const parsedKeys = parseSigningKeyFile(keyText);
  if (!parsedKeys.ok) throw new KeyFileError(`signing key file ${signingKeyPath} is not valid: ${parsedKeys.reason}`);
  const oldKeys = readOldVerifyKeys(signingKeyPath);

  const ed25519 = getEd25519Backend(backend);
  const retired: OldVerifyKey[] = parsedKeys.keys.map((key) => ({
    keyId: `ed25519:${key.version}`,
    publicKey: ed25519.signerFromSeed(key.seed).publicKey,
    expiredTs: now,
  }));
  const retiredIds = new Set(retired.map((key) => key.keyId));
  // A key already listed (an interrupted rotation) is listed once, with the later expiry.
  const nextOldKeys = [...oldKeys.filter((key) => !retiredIds.has(key.keyId)), ...retired];

  const taken = new Set([...nextOldKeys.map((key) => key.keyId.slice("ed25519:".length))]);
  let version = newKeyVersion();
  while (taken.has(version)) version = newKeyVersion();
  const seed = new Uint8Array(randomBytes(SEED_LENGTH));

  writeAtomically(oldKeysPathOf(signingKeyPath), formatOldKeysFile(nextOldKeys), 0o644);
  writeAtomically(signingKeyPath, formatSigningKeyFile([{ version, seed }]), 0o600);
  return { retiredKeyIds: [...retiredIds], newKeyId: `ed25519:${version}` };
}

const VERSION_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** `a_` and four random alphanumerics, the shape Synapse's generate_signing_key gives versions. */
function newKeyVersion(): string {
  let suffix = "";
  for (let i = 0; i < 4; i++) suffix += VERSION_ALPHABET[randomInt(VERSION_ALPHABET.length)];
  return `a_${suffix}`;
}

function readText(path: string, options: { missingOk: boolean }): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && options.missingOk) return undefined;
    throw new KeyFileError(`cannot read ${path}: ${reasonOf(error)}`);
  }
}

function writeAtomically(path: string, text: string, mode: number): void {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    writeFileSync(temporary, text, { mode, flag: "wx" });
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw new KeyFileError(`cannot write ${path}: ${reasonOf(error)}`);
  }
}

function reasonOf(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "it does not exist";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "it is a directory";
  return error instanceof Error ? error.message : String(error);
}
