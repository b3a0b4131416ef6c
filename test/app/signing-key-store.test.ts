import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadOrCreateSigningKey, SigningKeyError } from "../../src/app/signing-key-store.js";
import { decodeBase64 } from "../../src/core/base64.js";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import { formatSigningKeyFile, parseSigningKeyFile } from "../../src/core/signing-key-file.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bobbin-key-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const message = new TextEncoder().encode("a message");

function loadError(path: string): string {
  try {
    loadOrCreateSigningKey(path, "native");
  } catch (error) {
    expect(error).toBeInstanceOf(SigningKeyError);
    return (error as Error).message;
  }
  throw new Error("expected a signing key error");
}

describe("loadOrCreateSigningKey", () => {
  it("creates the key once, in Synapse's format, mode 0600, directories included; then reuses it", () => {
    const path = join(dir, "data", "nested", "example.org.signing.key");
    const first = loadOrCreateSigningKey(path, "native");
    expect(first.created).toBe(true);
    expect(first.signingKey.keyId).toMatch(/^ed25519:a_[A-Za-z0-9]{4}$/);

    const text = readFileSync(path, "utf8");
    expect(text).toMatch(/^ed25519 a_[A-Za-z0-9]{4} [A-Za-z0-9+/]{43}\n$/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const [, version, seed] = text.trim().split(" ");
    expect(first.signingKey.keyId).toBe(`ed25519:${version}`);
    expect(first.signingKey.signer.publicKey).toEqual(nativeEd25519.signerFromSeed(decodeBase64(seed!)!).publicKey);

    const second = loadOrCreateSigningKey(path, "native");
    expect(second.created).toBe(false);
    expect(second.signingKey.keyId).toBe(first.signingKey.keyId);
    expect(second.signingKey.signer.sign(message)).toEqual(first.signingKey.signer.sign(message));
    expect(readFileSync(path, "utf8")).toBe(text);
  });

  it("gives each new server a different key", () => {
    const a = loadOrCreateSigningKey(join(dir, "a.key"), "native");
    const b = loadOrCreateSigningKey(join(dir, "b.key"), "native");
    expect(a.signingKey.signer.publicKey).not.toEqual(b.signingKey.signer.publicKey);
  });

  it("reads a Synapse key file; the first key is the current one; both backends sign alike", () => {
    const seed1 = new Uint8Array(32).fill(1);
    const seed2 = new Uint8Array(32).fill(2);
    const path = join(dir, "synapse.key");
    writeFileSync(path, formatSigningKeyFile([{ version: "auto", seed: seed1 }, { version: "old", seed: seed2 }]));
    const native = loadOrCreateSigningKey(path, "native").signingKey;
    const noble = loadOrCreateSigningKey(path, "noble").signingKey;
    expect(native.keyId).toBe("ed25519:auto");
    expect(native.signer.publicKey).toEqual(nativeEd25519.signerFromSeed(seed1).publicKey);
    expect(noble.signer.sign(message)).toEqual(native.signer.sign(message));
    expect(parseSigningKeyFile(readFileSync(path, "utf8")).ok).toBe(true);
  });

  it("a malformed file is an error naming the file and the line", () => {
    const path = join(dir, "bad.key");
    writeFileSync(path, "ed25519 a_abcd not-base64!!\n");
    expect(loadError(path)).toBe(`signing key file ${path} is not valid: line 1: seed is not valid base64`);
    writeFileSync(path, "\n");
    expect(loadError(path)).toBe(`signing key file ${path} is not valid: key file holds no key`);
    writeFileSync(path, "ed25519 a_abcd AAAA\n");
    expect(loadError(path)).toContain("seed is 3 bytes, expected 32");
  });

  it("an unreadable file or an uncreatable one is an error naming the file", () => {
    const directory = join(dir, "a-directory");
    mkdirSync(directory);
    expect(loadError(directory)).toBe(`cannot read signing key file ${directory}: it is a directory`);

    const blocker = join(dir, "not-a-dir");
    writeFileSync(blocker, "");
    const path = join(blocker, "server.key");
    expect(loadError(path)).toMatch(new RegExp(`^cannot (read|create) signing key file ${path}: `));

    if (process.getuid?.() !== 0) {
      const locked = join(dir, "locked");
      mkdirSync(locked);
      writeFileSync(join(locked, "server.key"), "x");
      chmodSync(join(locked, "server.key"), 0o000);
      expect(loadError(join(locked, "server.key"))).toBe(`cannot read signing key file ${join(locked, "server.key")}: permission denied`);
    }
  });
});
