// The key ring against real servers on loopback: direct fetch first, notary fallback, every
// response's signatures checked, 7-day cap, SQLite persistence, shared fetches, negative cache.
import { afterEach, beforeEach, describe, expect, it } from "@jest/globals";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeBase64 } from "../../../src/core/base64.js";
import { signJson } from "../../../src/core/signing.js";
import { createKeyRing, type KeyRing, type KeyRingOptions, type TrustedKeyServer } from "../../../src/federation/keys/key-ring.js";
import { buildServerKeyResponse, type OwnKeys } from "../../../src/federation/keys/server-keys.js";
import { openStorage } from "../../../src/storage/index.js";
import type { Storage } from "../../../src/storage/ports.js";
import { BobbinKeyServer, Clock, Loopback, newSigningKey, ownKeysOf, RemoteKeyServer, responseSignedByAnotherKey, silentLogger } from "./support.js";

const DAY = 24 * 60 * 60 * 1000;
const message = new TextEncoder().encode("an event");

let dir: string;
let clock: Clock;
let loopback: Loopback;
let storages: Storage[];
let closers: Array<() => Promise<void>>;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bobbin-keyring-"));
  clock = new Clock(1_700_000_000_000);
  loopback = new Loopback();
  storages = [];
  closers = [];
});

afterEach(async () => {
  for (const close of closers.reverse()) await close();
  for (const storage of storages) await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

async function sqlite(name: string): Promise<Storage> {
  const storage = await openStorage({ engine: "sqlite", path: join(dir, name, "homeserver.db") });
  storages.push(storage);
  return storage;
}

async function remote(serverName: string, own: OwnKeys = ownKeysOf(serverName)): Promise<RemoteKeyServer> {
  const server = await RemoteKeyServer.start(own, clock, loopback);
  closers.push(() => server.down());
  return server;
}

async function notary(serverName: string, storage: Storage): Promise<BobbinKeyServer> {
  const server = await BobbinKeyServer.start({ own: ownKeysOf(serverName), clock, loopback, storage: storage.serverKeys });
  closers.push(() => server.close());
  return server;
}

function pinned(server: { serverName: string; own: OwnKeys }): TrustedKeyServer {
  return { serverName: server.serverName, verifyKeys: { [server.own.signingKey.keyId]: encodeBase64(server.own.signingKey.signer.publicKey) } };
}

function ring(storage: Storage, options: Partial<KeyRingOptions> = {}): KeyRing {
  return createKeyRing({
    own: ownKeysOf("us.test"),
    fetcher: loopback.fetcher,
    storage: storage.serverKeys,
    now: clock.now,
    logger: silentLogger,
    ...options,
  });
}

/** The verifier checks what the remote's key signed: the key ring handed out the right key. */
function verifiesRemoteSignature(verifier: { verify(m: Uint8Array, s: Uint8Array): boolean } | undefined, server: RemoteKeyServer): boolean {
  return verifier !== undefined && verifier.verify(message, server.own.signingKey.signer.sign(message));
}

describe("fetching from the server itself", () => {
  it("fetches, verifies and keeps the key in memory and in storage with the raw signed response", async () => {
    const storage = await sqlite("us");
    const remoteServer = await remote("remote.test");
    const keys = ring(storage);
    const keyId = remoteServer.own.signingKey.keyId;

    const verifier = await keys.getVerifyKey("remote.test", keyId, { minimumValidUntilTs: clock.ms });
    expect(verifiesRemoteSignature(verifier, remoteServer)).toBe(true);
    expect(remoteServer.hits).toBe(1);
    expect(keys.lookup("remote.test", keyId)).toBe(verifier);
    expect(keys.lookup("remote.test", "ed25519:other")).toBeUndefined();
    expect(await keys.getVerifyKey("remote.test", keyId)).toBe(verifier);
    expect(remoteServer.hits).toBe(1);

    const rows = await storage.serverKeys.getServerKeys("remote.test");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      serverName: "remote.test",
      keyId,
      key: encodeBase64(remoteServer.own.signingKey.signer.publicKey),
      validUntilTs: clock.ms + 12 * 60 * 60 * 1000,
      expiredTs: null,
      fetchedTs: clock.ms,
    });
    expect(rows[0]!.response).toEqual(buildServerKeyResponse(remoteServer.own, clock.ms));
  });

  it("records each peer's m.linearized flag", async () => {
    const storage = await sqlite("us");
    await remote("lm.test");
    const classic = await remote("classic.test");
    classic.respond = (own, now) => {
      const { "m.linearized": _flag, signatures: _signatures, ...rest } = buildServerKeyResponse(own, now);
      // A classic Matrix server's response: no m.linearized, signed as usual.
      return { status: 200, body: signJson(rest, own.serverName, own.signingKey, "utf16") };
    };
    const keys = ring(storage);
    expect(await keys.isLinearized("lm.test")).toBe(true);
    expect(await keys.isLinearized("classic.test")).toBe(false);
    expect(await keys.isLinearized("us.test")).toBe(true);
    expect(await keys.isLinearized("nowhere.test")).toBeUndefined();
    // Known from storage after a restart, without asking again.
    const again = ring(storage);
    expect(await again.isLinearized("classic.test")).toBe(false);
    expect(loopback.requestsTo("classic.test")).toBe(1);
  });

  it("keeps old keys verifiable until their expired_ts", async () => {
    const storage = await sqlite("us");
    const old = newSigningKey("old");
    const own = ownKeysOf("remote.test", newSigningKey("new"), [{ keyId: "ed25519:old", publicKey: old.signer.publicKey, expiredTs: clock.ms - 1000 }]);
    await remote("remote.test", own);
    const keys = ring(storage);
    const verifier = await keys.getVerifyKey("remote.test", "ed25519:old", { minimumValidUntilTs: clock.ms - 2000 });
    expect(verifier?.verify(message, old.signer.sign(message))).toBe(true);
    // Request authentication honours only current keys.
    expect(await keys.getVerifyKey("remote.test", "ed25519:old", { requireCurrent: true })).toBeUndefined();
    expect(await keys.getVerifyKey("remote.test", "ed25519:new", { requireCurrent: true, minimumValidUntilTs: clock.ms })).toBeDefined();
    expect(loopback.requestsTo("remote.test")).toBe(1);
    const expiredTs = own.oldKeys[0]!.expiredTs;
    clock.advance(2 * 60_000);
    // Refetching cannot make an expired key valid later than its expired_ts.
    expect(await keys.getVerifyKey("remote.test", "ed25519:old", { minimumValidUntilTs: clock.ms })).toBeUndefined();
    expect(keys.lookupValidAt(expiredTs)("remote.test", "ed25519:old")?.verify(message, old.signer.sign(message))).toBe(true);
    expect(keys.lookupValidAt(expiredTs + 1)("remote.test", "ed25519:old")).toBeUndefined();
    expect((await storage.serverKeys.getServerKeys("remote.test")).find((row) => row.keyId === "ed25519:old")?.expiredTs).toBe(own.oldKeys[0]!.expiredTs);
  });

  it("answers our own keys locally, never fetching", async () => {
    const storage = await sqlite("us");
    const own = ownKeysOf("us.test");
    const keys = ring(storage, { own });
    const verifier = await keys.getVerifyKey("us.test", own.signingKey.keyId);
    expect(verifier?.verify(message, own.signingKey.signer.sign(message))).toBe(true);
    expect(keys.lookup("us.test", own.signingKey.keyId)).toBeDefined();
    expect(loopback.requests).toEqual([]);
  });
});

describe("refusing responses", () => {
  it("refuses a response whose self-signature does not verify", async () => {
    const storage = await sqlite("us");
    const remoteServer = await remote("remote.test");
    const forger = newSigningKey();
    remoteServer.respond = (own, now) => ({ status: 200, body: responseSignedByAnotherKey(own, now, forger) });
    const keys = ring(storage);
    expect(await keys.getVerifyKey("remote.test", remoteServer.own.signingKey.keyId)).toBeUndefined();
    expect(await storage.serverKeys.getServerKeys("remote.test")).toEqual([]);
  });

  it("refuses a response not signed by every key it lists, or not signed at all", async () => {
    const storage = await sqlite("us");
    const remoteServer = await remote("remote.test");
    const extra = newSigningKey("extra");
    remoteServer.respond = (own, now) => {
      const response = buildServerKeyResponse(own, now);
      (response.verify_keys as Record<string, unknown>)["ed25519:extra"] = { key: encodeBase64(extra.signer.publicKey) };
      return { status: 200, body: response };
    };
    const keys = ring(storage, { failureBackoffMs: { initial: 1, max: 1 } });
    expect(await keys.getVerifyKey("remote.test", remoteServer.own.signingKey.keyId)).toBeUndefined();
    clock.advance(10);
    remoteServer.respond = (own, now) => {
      const { signatures: _signatures, ...unsigned } = buildServerKeyResponse(own, now);
      return { status: 200, body: unsigned };
    };
    expect(await keys.getVerifyKey("remote.test", remoteServer.own.signingKey.keyId)).toBeUndefined();
    expect(remoteServer.hits).toBe(2);
  });

  it("refuses a response that names another server", async () => {
    const storage = await sqlite("us");
    const impostor = await remote("impostor.test");
    // impostor.test answers with a genuine, correctly signed response of another server.
    const victim = ownKeysOf("victim.test");
    impostor.respond = (_own, now) => ({ status: 200, body: buildServerKeyResponse(victim, now) });
    const keys = ring(storage);
    expect(await keys.getVerifyKey("impostor.test", victim.signingKey.keyId)).toBeUndefined();
    expect(keys.lookup("impostor.test", victim.signingKey.keyId)).toBeUndefined();
  });
});

describe("notary fallback", () => {
  it("asks the server first, then a notary when the server is down; the notary's answer is verified", async () => {
    const remoteServer = await remote("remote.test");
    const notaryServer = await notary("notary.test", await sqlite("notary"));
    // The notary saw the remote's keys while it was up.
    const keyId = remoteServer.own.signingKey.keyId;
    expect(await notaryServer.keyRing.getVerifyKey("remote.test", keyId)).toBeDefined();
    await remoteServer.down();
    loopback.requests.length = 0;

    const keys = ring(await sqlite("us"), { trustedKeyServers: [pinned(notaryServer)] });
    await keys.prefetch([{ serverName: "remote.test", keyId, minimumValidUntilTs: clock.ms }]);
    expect(verifiesRemoteSignature(keys.lookup("remote.test", keyId), remoteServer)).toBe(true);
    expect(loopback.requests.map((r) => `${r.serverName} ${r.method} ${r.path}`)).toEqual([
      "remote.test GET /_matrix/key/v2/server",
      "notary.test POST /_matrix/key/v2/query",
    ]);
  });

  it("does not ask a notary when the server answers", async () => {
    const remoteServer = await remote("remote.test");
    const notaryServer = await notary("notary.test", await sqlite("notary"));
    const keys = ring(await sqlite("us"), { trustedKeyServers: [pinned(notaryServer)] });
    expect(await keys.getVerifyKey("remote.test", remoteServer.own.signingKey.keyId)).toBeDefined();
    expect(loopback.requestsTo("notary.test")).toBe(0);
  });

  it("refuses a notary's answer not signed by the notary key pinned in the configuration", async () => {
    const remoteServer = await remote("remote.test");
    const notaryServer = await notary("notary.test", await sqlite("notary"));
    const keyId = remoteServer.own.signingKey.keyId;
    await notaryServer.keyRing.getVerifyKey("remote.test", keyId);
    await remoteServer.down();

    const wrongPin: TrustedKeyServer = { serverName: "notary.test", verifyKeys: { [notaryServer.own.signingKey.keyId]: encodeBase64(newSigningKey().signer.publicKey) } };
    const keys = ring(await sqlite("us"), { trustedKeyServers: [wrongPin] });
    expect(await keys.getVerifyKey("remote.test", keyId)).toBeUndefined();
    expect(loopback.requestsTo("notary.test")).toBe(1);
  });

  it("refuses a notary's relayed response whose self-signature is forged, even with the notary's signature", async () => {
    const remoteServer = await remote("remote.test");
    await remoteServer.down();
    // A dishonest notary: a raw server that co-signs a forged response of remote.test.
    const dishonest = await remote("dishonest.test");
    const forged = responseSignedByAnotherKey(remoteServer.own, clock.ms, newSigningKey());
    const fetcher = loopback.fetcher;
    const answer = { server_keys: [signJson(forged, "dishonest.test", dishonest.own.signingKey, "utf16")] };
    const relaying = createKeyRing({
      own: ownKeysOf("us.test"),
      fetcher: async (serverName, path, init) => (serverName === "dishonest.test" ? { status: 200, json: answer } : fetcher(serverName, path, init)),
      storage: (await sqlite("relaying")).serverKeys,
      trustedKeyServers: [pinned(dishonest)],
      now: clock.now,
      logger: silentLogger,
    });
    expect(await relaying.getVerifyKey("remote.test", remoteServer.own.signingKey.keyId)).toBeUndefined();
    expect(loopback.requestsTo("remote.test")).toBe(1);
  });

  it("refuses to start with a pinned notary key that is not a key", async () => {
    const storage = await sqlite("us");
    expect(() => ring(storage, { trustedKeyServers: [{ serverName: "n.test", verifyKeys: { "ed25519:a": "not base64!" } }] })).toThrow("n.test");
    expect(() => ring(storage, { trustedKeyServers: [{ serverName: "n.test", verifyKeys: {} }] })).toThrow("n.test");
  });
});

describe("validity", () => {
  it("caps a published validity at 7 days after the fetch", async () => {
    const storage = await sqlite("us");
    const remoteServer = await remote("remote.test");
    remoteServer.respond = (own, now) => ({ status: 200, body: buildServerKeyResponse(own, now, 30 * DAY) });
    const keys = ring(storage);
    const keyId = remoteServer.own.signingKey.keyId;
    const fetchedAt = clock.ms;
    expect(await keys.getVerifyKey("remote.test", keyId, { minimumValidUntilTs: fetchedAt + 6 * DAY })).toBeDefined();
    expect((await storage.serverKeys.getServerKeys("remote.test"))[0]?.validUntilTs).toBe(fetchedAt + 7 * DAY);
    expect(keys.lookupValidAt(fetchedAt + 7 * DAY)("remote.test", keyId)).toBeDefined();
    expect(keys.lookupValidAt(fetchedAt + 7 * DAY + 1)("remote.test", keyId)).toBeUndefined();

    // Asking beyond the cap refetches (once the refetch interval has passed) and still refuses.
    clock.advance(2 * 60_000);
    expect(await keys.getVerifyKey("remote.test", keyId, { minimumValidUntilTs: fetchedAt + 8 * DAY })).toBeUndefined();
    expect(remoteServer.hits).toBe(2);
    expect((await storage.serverKeys.getServerKeys("remote.test"))[0]?.validUntilTs).toBe(clock.ms + 7 * DAY);
  });

  it("refetches a key whose validity has passed", async () => {
    const storage = await sqlite("us");
    const remoteServer = await remote("remote.test");
    const keys = ring(storage);
    const keyId = remoteServer.own.signingKey.keyId;
    await keys.getVerifyKey("remote.test", keyId, { minimumValidUntilTs: clock.ms });
    clock.advance(13 * 60 * 60 * 1000);
    expect(await keys.getVerifyKey("remote.test", keyId, { minimumValidUntilTs: clock.ms })).toBeDefined();
    expect(remoteServer.hits).toBe(2);
  });
});

describe("storage, sharing and backoff", () => {
  it("serves from storage after a restart without fetching again", async () => {
    const remoteServer = await remote("remote.test");
    const keyId = remoteServer.own.signingKey.keyId;
    const first = await sqlite("us");
    expect(await ring(first).getVerifyKey("remote.test", keyId, { minimumValidUntilTs: clock.ms })).toBeDefined();
    await first.close();
    storages = storages.filter((storage) => storage !== first);

    await remoteServer.down();
    const reopened = await sqlite("us");
    const keys = ring(reopened);
    clock.advance(60 * 60 * 1000);
    const verifier = await keys.getVerifyKey("remote.test", keyId, { minimumValidUntilTs: clock.ms });
    expect(verifiesRemoteSignature(verifier, remoteServer)).toBe(true);
    expect(remoteServer.hits).toBe(1);
    expect(loopback.requestsTo("remote.test")).toBe(1);
  });

  it("shares one fetch among concurrent requests for the same server", async () => {
    const remoteServer = await remote("remote.test");
    remoteServer.delayMs = 50;
    const keys = ring(await sqlite("us"));
    const keyId = remoteServer.own.signingKey.keyId;
    const verifiers = await Promise.all([
      ...Array.from({ length: 10 }, () => keys.getVerifyKey("remote.test", keyId)),
      keys.isLinearized("remote.test"),
      keys.prefetch([{ serverName: "remote.test", keyId }]),
    ]);
    expect(remoteServer.hits).toBe(1);
    expect(new Set(verifiers.slice(0, 10)).size).toBe(1);
    expect(verifiers[0]).toBeDefined();
  });

  it("remembers failures for a while, backing off, so a dead server is not hammered", async () => {
    const storage = await sqlite("us");
    const remoteServer = await remote("remote.test");
    remoteServer.respond = () => ({ status: 500, body: { errcode: "M_UNKNOWN", error: "down" } });
    const keys = ring(storage);
    const keyId = remoteServer.own.signingKey.keyId;

    expect(await keys.getVerifyKey("remote.test", keyId)).toBeUndefined();
    expect(remoteServer.hits).toBe(1);
    expect(await keys.getVerifyKey("remote.test", keyId)).toBeUndefined();
    expect(await Promise.all([keys.getVerifyKey("remote.test", keyId), keys.getVerifyKey("remote.test", keyId)])).toEqual([undefined, undefined]);
    expect(remoteServer.hits).toBe(1);

    clock.advance(61_000); // first backoff: 1 minute
    expect(await keys.getVerifyKey("remote.test", keyId)).toBeUndefined();
    expect(remoteServer.hits).toBe(2);
    clock.advance(61_000); // second backoff: 2 minutes
    await keys.getVerifyKey("remote.test", keyId);
    expect(remoteServer.hits).toBe(2);

    remoteServer.respond = (own, now) => ({ status: 200, body: buildServerKeyResponse(own, now) });
    clock.advance(60_000);
    expect(await keys.getVerifyKey("remote.test", keyId)).toBeDefined();
    expect(remoteServer.hits).toBe(3);
  });

  it("caps the backoff at 5 minutes and treats an unreachable server alike", async () => {
    const keys = ring(await sqlite("us"));
    for (let i = 0; i < 6; i++) {
      await keys.getVerifyKey("nowhere.test", "ed25519:a");
      clock.advance(5 * 60_000);
    }
    expect(loopback.requestsTo("nowhere.test")).toBe(6);
  });
});
