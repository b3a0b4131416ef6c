// Our key response (`GET /_matrix/key/v2/server`), the old-keys file and signing-key rotation.
import { afterEach, beforeEach, describe, expect, it } from "@jest/globals";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadOrCreateSigningKey } from "../../../src/app/signing-key-store.js";
import { decodeBase64, encodeBase64 } from "../../../src/core/base64.js";
import { nativeEd25519 } from "../../../src/core/ed25519.js";
import { isJsonObject, type JsonObject } from "../../../src/core/json.js";
import { parseSigningKeyFile } from "../../../src/core/signing-key-file.js";
import { verifyJsonSignatures } from "../../../src/core/signing.js";
import { checkKeyResponse } from "../../../src/federation/keys/key-response.js";
import { KeyFileError, readOldVerifyKeys, rotateSigningKey } from "../../../src/federation/keys/key-rotation.js";
import { formatOldKeysFile, parseOldKeysFile } from "../../../src/federation/keys/old-keys-file.js";
import { buildServerKeyResponse, OWN_KEYS_VALIDITY_MS } from "../../../src/federation/keys/server-keys.js";
import { newSigningKey, ownKeysOf, publicKeyOf } from "./support.js";

const now = 1_700_000_000_000;

function verifiesWith(response: JsonObject, serverName: string, keyId: string, publicKey: Uint8Array): boolean {
  const verifier = nativeEd25519.verifierFromPublicKey(publicKey)!;
  return verifyJsonSignatures(response, serverName, (entity, id) => (entity === serverName && id === keyId ? verifier : undefined), "utf16").ok;
}

describe("our key response", () => {
  it("lists the current key, is valid for about 12 hours, says m.linearized, and verifies with our public key", () => {
    const own = ownKeysOf("hub.example.org", newSigningKey("a_cur"));
    const response = buildServerKeyResponse(own, now);
    expect(response).toMatchObject({
      server_name: "hub.example.org",
      verify_keys: { "ed25519:a_cur": { key: publicKeyOf(own.signingKey) } },
      old_verify_keys: {},
      valid_until_ts: now + 12 * 60 * 60 * 1000,
      "m.linearized": true,
    });
    expect(OWN_KEYS_VALIDITY_MS).toBe(12 * 60 * 60 * 1000);
    expect(verifiesWith(response, "hub.example.org", "ed25519:a_cur", own.signingKey.signer.publicKey)).toBe(true);
    expect(verifiesWith(response, "hub.example.org", "ed25519:a_cur", newSigningKey().signer.publicKey)).toBe(false);
    // What a peer checks: it accepts its own kind of response.
    const checked = checkKeyResponse(response, "hub.example.org", nativeEd25519);
    expect(checked.ok && checked.linearized).toBe(true);
  });

  it("lists old keys with their expired_ts; an old key with the current key's ID is left out", () => {
    const current = newSigningKey("cur");
    const old = newSigningKey("old");
    const own = ownKeysOf("hub.example.org", current, [
      { keyId: "ed25519:old", publicKey: old.signer.publicKey, expiredTs: now - 5 },
      { keyId: "ed25519:cur", publicKey: current.signer.publicKey, expiredTs: now - 1 },
    ]);
    const response = buildServerKeyResponse(own, now);
    expect(response.old_verify_keys).toEqual({ "ed25519:old": { key: publicKeyOf(old), expired_ts: now - 5 } });
    expect(Object.keys(response.verify_keys as JsonObject)).toEqual(["ed25519:cur"]);
    expect(Object.keys((response.signatures as JsonObject)["hub.example.org"] as JsonObject)).toEqual(["ed25519:cur"]);
  });
});

describe("the old-keys file", () => {
  it("round-trips, in signedjson's old-key line format", () => {
    const key = newSigningKey("a_Zz9");
    const text = formatOldKeysFile([{ keyId: "ed25519:a_Zz9", publicKey: key.signer.publicKey, expiredTs: 1234 }]);
    expect(text).toBe(`ed25519 a_Zz9 1234 ${publicKeyOf(key)}\n`);
    expect(parseOldKeysFile(`\n${text}\n`)).toEqual({ ok: true, keys: [{ keyId: "ed25519:a_Zz9", publicKey: key.signer.publicKey, expiredTs: 1234 }] });
  });

  it.each([
    ["ed25519 v 12", "line 1: expected"],
    ["rsa v 12 AAAA", "unsupported key algorithm"],
    ["ed25519 v-1 12 " + encodeBase64(newSigningKey().signer.publicKey), "key version"],
    ["ed25519 v soon " + encodeBase64(newSigningKey().signer.publicKey), "expired_ts"],
    ["ed25519 v 12 !!!", "public key"],
    ["ed25519 v 12 " + encodeBase64(new Uint8Array(32)), "public key"],
  ])("refuses %j", (line, reason) => {
    const parsed = parseOldKeysFile(`${line}\n`);
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? "" : parsed.reason).toContain(reason);
  });
});

describe("rotateSigningKey", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bobbin-rotate-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("makes a new current key, keeps the old one under old_verify_keys with expired_ts, and the new key signs", () => {
    const path = join(dir, "example.org.signing.key");
    const before = loadOrCreateSigningKey(path, "native").signingKey;
    expect(readOldVerifyKeys(path)).toEqual([]);

    const rotation = rotateSigningKey(path, now);
    expect(rotation.retiredKeyIds).toEqual([before.keyId]);
    expect(rotation.newKeyId).not.toBe(before.keyId);

    // The key file is still Synapse's format: one line, the new key, mode 0600.
    const text = readFileSync(path, "utf8");
    expect(text).toMatch(/^ed25519 a_[A-Za-z0-9]{4} [A-Za-z0-9+/]{43}\n$/);
    const parsed = parseSigningKeyFile(text);
    expect(parsed.ok && parsed.keys.map((key) => `ed25519:${key.version}`)).toEqual([rotation.newKeyId]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const after = loadOrCreateSigningKey(path, "native").signingKey;
    expect(after.keyId).toBe(rotation.newKeyId);

    expect(readFileSync(`${path}.old`, "utf8")).toBe(`ed25519 ${before.keyId.slice(8)} ${now} ${publicKeyOf(before)}\n`);
    const oldKeys = readOldVerifyKeys(path);
    expect(oldKeys).toEqual([{ keyId: before.keyId, publicKey: before.signer.publicKey, expiredTs: now }]);

    const response = buildServerKeyResponse(ownKeysOf("example.org", after, oldKeys), now + 1);
    expect(response.verify_keys).toEqual({ [after.keyId]: { key: publicKeyOf(after) } });
    expect(response.old_verify_keys).toEqual({ [before.keyId]: { key: publicKeyOf(before), expired_ts: now } });
    expect(verifiesWith(response, "example.org", after.keyId, after.signer.publicKey)).toBe(true);
    const signatures = response.signatures;
    expect(isJsonObject(signatures) && Object.keys(signatures["example.org"] as JsonObject)).toEqual([after.keyId]);
    expect(checkKeyResponse(response, "example.org", nativeEd25519).ok).toBe(true);
  });

  it("accumulates old keys across rotations; a file with several keys retires all of them", () => {
    const path = join(dir, "k");
    const seeds = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)];
    writeFileSync(path, `ed25519 auto ${encodeBase64(seeds[0]!)}\ned25519 extra ${encodeBase64(seeds[1]!)}\n`);
    const first = rotateSigningKey(path, now);
    expect(first.retiredKeyIds).toEqual(["ed25519:auto", "ed25519:extra"]);
    const second = rotateSigningKey(path, now + 10);
    expect(second.retiredKeyIds).toEqual([first.newKeyId]);
    const oldKeys = readOldVerifyKeys(path);
    expect(oldKeys.map((key) => [key.keyId, key.expiredTs])).toEqual([
      ["ed25519:auto", now],
      ["ed25519:extra", now],
      [first.newKeyId, now + 10],
    ]);
    expect(oldKeys[0]!.publicKey).toEqual(nativeEd25519.signerFromSeed(seeds[0]!).publicKey);
    expect(new Set([...oldKeys.map((key) => key.keyId), second.newKeyId]).size).toBe(4);
  });

  it("repairs an interrupted rotation: a key listed as old and current is listed once", () => {
    const path = join(dir, "k");
    const current = loadOrCreateSigningKey(path, "native").signingKey;
    writeFileSync(`${path}.old`, formatOldKeysFile([{ keyId: current.keyId, publicKey: current.signer.publicKey, expiredTs: now - 100 }]));
    rotateSigningKey(path, now);
    expect(readOldVerifyKeys(path)).toEqual([{ keyId: current.keyId, publicKey: current.signer.publicKey, expiredTs: now }]);
  });

  it("fails with a message naming the file, and changes nothing, for a missing or invalid file", () => {
    const missing = join(dir, "missing.key");
    expect(() => rotateSigningKey(missing, now)).toThrow(KeyFileError);
    expect(() => rotateSigningKey(missing, now)).toThrow(missing);

    const path = join(dir, "k");
    const current = loadOrCreateSigningKey(path, "native").signingKey;
    const keyText = readFileSync(path, "utf8");
    writeFileSync(`${path}.old`, "ed25519 broken\n");
    expect(() => rotateSigningKey(path, now)).toThrow(`${path}.old`);
    expect(readFileSync(path, "utf8")).toBe(keyText);
    expect(() => readOldVerifyKeys(path)).toThrow(KeyFileError);
    expect(decodeBase64(keyText.trim().split(" ")[2]!)).toBeDefined();
    expect(current.keyId).toMatch(/^ed25519:/);
  });
});
