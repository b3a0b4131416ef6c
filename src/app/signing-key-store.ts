// The server's signing key on disk: read the key file (Synapse's format, DESIGN.md "signatures"),
// or create it on first start. The first key in the file is the one the server signs with.
import { randomBytes, randomInt } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { getEd25519Backend, SEED_LENGTH, type Ed25519BackendName } from "../core/ed25519.js";
import { formatSigningKeyFile, parseSigningKeyFile } from "../core/signing-key-file.js";
import type { SigningKey } from "../core/signing.js";

/** A key file that cannot be read, parsed or created; the message names the file. */
export class SigningKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SigningKeyError";
  }
}

const VERSION_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** `a_` and four random alphanumerics, as Synapse's generate_signing_key names versions. */
export function generateKeyVersion(): string {
  let suffix = "";
  for (let i = 0; i < 4; i++) suffix += VERSION_ALPHABET[randomInt(VERSION_ALPHABET.length)];
  return `a_${suffix}`;
}

/** Reads the key at `path`; creates the file (mode 0600, directories as needed) if it does not exist. */
export function loadOrCreateSigningKey(path: string, backend: Ed25519BackendName): { signingKey: SigningKey; created: boolean } {
  let text: string | undefined;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOENT") throw new SigningKeyError(`cannot read signing key file ${path}: ${reasonOf(error)}`);
  }
  if (text === undefined) return { signingKey: createSigningKeyFile(path, backend), created: true };

  const parsed = parseSigningKeyFile(text);
  if (!parsed.ok) throw new SigningKeyError(`signing key file ${path} is not valid: ${parsed.reason}`);
  const current = parsed.keys[0]!;
  return { signingKey: signingKeyOf(current.version, current.seed, backend), created: false };
}

function createSigningKeyFile(path: string, backend: Ed25519BackendName): SigningKey {
  const version = generateKeyVersion();
  const seed = new Uint8Array(randomBytes(SEED_LENGTH));
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // `wx`: never overwrite a key another process created meanwhile; the key is the server's identity.
    writeFileSync(path, formatSigningKeyFile([{ version, seed }]), { mode: 0o600, flag: "wx" });
  } catch (error) {
    throw new SigningKeyError(`cannot create signing key file ${path}: ${reasonOf(error)}`);
  }
  return signingKeyOf(version, seed, backend);
}

function signingKeyOf(version: string, seed: Uint8Array, backend: Ed25519BackendName): SigningKey {
  return { keyId: `ed25519:${version}`, signer: getEd25519Backend(backend).signerFromSeed(seed) };
}

function reasonOf(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "it is a directory";
  if (code === "EEXIST") return "it already exists";
  if (code === "ENOTDIR") return "a parent is not a directory";
  return error instanceof Error ? error.message : String(error);
}
