// The key exchange endpoints over real HTTP: `GET /_matrix/key/v2/server`, the notary queries
// (`GET /_matrix/key/v2/query/{serverName}`, `POST /_matrix/key/v2/query`) and their errors.
import { afterEach, beforeEach, describe, expect, it } from "@jest/globals";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nativeEd25519 } from "../../../src/core/ed25519.js";
import type { JsonObject } from "../../../src/core/json.js";
import { verifyJsonSignatures } from "../../../src/core/signing.js";
import { checkKeyResponse } from "../../../src/federation/keys/key-response.js";
import { buildServerKeyResponse, type OwnKeys } from "../../../src/federation/keys/server-keys.js";
import { openStorage } from "../../../src/storage/index.js";
import type { Storage } from "../../../src/storage/ports.js";
import { BobbinKeyServer, Clock, Loopback, newSigningKey, ownKeysOf, publicKeyOf, RemoteKeyServer } from "./support.js";

const HOUR = 60 * 60 * 1000;

let dir: string;
let clock: Clock;
let loopback: Loopback;
let storage: Storage;
let notary: BobbinKeyServer;
let remote: RemoteKeyServer;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "bobbin-notary-"));
  clock = new Clock(1_700_000_000_000);
  loopback = new Loopback();
  storage = await openStorage({ engine: "sqlite", path: join(dir, "notary.db") });
  notary = await BobbinKeyServer.start({ own: ownKeysOf("notary.test"), clock, loopback, storage: storage.serverKeys });
  remote = await RemoteKeyServer.start(ownKeysOf("remote.test"), clock, loopback);
});

afterEach(async () => {
  await remote.down();
  await notary.close();
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

function signedBy(response: JsonObject, own: OwnKeys): boolean {
  const verifier = nativeEd25519.verifierFromPublicKey(own.signingKey.signer.publicKey)!;
  return verifyJsonSignatures(response, own.serverName, (entity, keyId) => (entity === own.serverName && keyId === own.signingKey.keyId ? verifier : undefined), "utf16").ok;
}

describe("GET /_matrix/key/v2/server", () => {
  it("answers our signed keys, valid for 12 hours, with m.linearized", async () => {
    const { status, json } = await notary.request("GET", "/_matrix/key/v2/server");
    expect(status).toBe(200);
    expect(json).toMatchObject({
      server_name: "notary.test",
      verify_keys: { [notary.own.signingKey.keyId]: { key: publicKeyOf(notary.own.signingKey) } },
      valid_until_ts: clock.ms + 12 * HOUR,
      "m.linearized": true,
    });
    expect(signedBy(json, notary.own)).toBe(true);
    expect(checkKeyResponse(json, "notary.test", nativeEd25519).ok).toBe(true);
  });

  it("ignores an Authorization header (the endpoint is unauthenticated)", async () => {
    const response = await fetch(`${notary.baseUrl}/_matrix/key/v2/server`, { headers: { authorization: "X-Matrix origin=x,key=y,sig=z" } });
    expect(response.status).toBe(200);
  });
});

describe("GET /_matrix/key/v2/query/{serverName}", () => {
  it("fetches the server's keys and returns them with the original signature and the notary's", async () => {
    const { status, json } = await notary.request("GET", "/_matrix/key/v2/query/remote.test");
    expect(status).toBe(200);
    expect(json.server_keys).toHaveLength(1);
    const [response] = json.server_keys as JsonObject[];
    const { signatures: _signatures, ...published } = buildServerKeyResponse(remote.own, clock.ms);
    expect(response).toMatchObject(published);
    expect(signedBy(response!, remote.own)).toBe(true);
    expect(signedBy(response!, notary.own)).toBe(true);
    expect(Object.keys(response!.signatures as JsonObject).sort()).toEqual(["notary.test", "remote.test"]);
    expect(remote.hits).toBe(1);
  });

  it("serves from its cache while valid, and keeps serving the last response when the server goes down", async () => {
    await notary.request("GET", "/_matrix/key/v2/query/remote.test");
    await remote.down();
    clock.advance(HOUR);
    const { json } = await notary.request("GET", "/_matrix/key/v2/query/remote.test");
    expect(json.server_keys).toHaveLength(1);
    expect(signedBy(json.server_keys[0], remote.own)).toBe(true);
    expect(remote.hits).toBe(1);
  });

  it("refreshes when the cached keys do not reach minimum_valid_until_ts, and leaves out keys that still do not", async () => {
    await notary.request("GET", "/_matrix/key/v2/query/remote.test");
    clock.advance(2 * 60_000);
    const beyond = clock.ms + 24 * HOUR;
    const { status, json } = await notary.request("GET", `/_matrix/key/v2/query/remote.test?minimum_valid_until_ts=${beyond}`);
    expect(status).toBe(200);
    expect(json.server_keys).toEqual([]);
    expect(remote.hits).toBe(2);
    const within = await notary.request("GET", `/_matrix/key/v2/query/remote.test?minimum_valid_until_ts=${clock.ms + HOUR}`);
    expect(within.json.server_keys).toHaveLength(1);
  });

  it("answers an empty list for a server that cannot be reached and is not cached", async () => {
    const { status, json } = await notary.request("GET", "/_matrix/key/v2/query/nowhere.test");
    expect(status).toBe(200);
    expect(json).toEqual({ server_keys: [] });
  });

  it("answers its own keys for its own name", async () => {
    const { json } = await notary.request("GET", "/_matrix/key/v2/query/notary.test");
    expect(json.server_keys).toHaveLength(1);
    expect(json.server_keys[0].server_name).toBe("notary.test");
    expect(signedBy(json.server_keys[0], notary.own)).toBe(true);
  });

  it.each([
    ["/_matrix/key/v2/query/remote.test?minimum_valid_until_ts=soon", "M_INVALID_PARAM"],
    ["/_matrix/key/v2/query/remote.test?minimum_valid_until_ts=1.5", "M_INVALID_PARAM"],
    ["/_matrix/key/v2/query/remote.test?minimum_valid_until_ts=1&minimum_valid_until_ts=2", "M_INVALID_PARAM"],
    ["/_matrix/key/v2/query/not%20a%20server", "M_INVALID_PARAM"],
  ])("GET %s → 400 %s", async (path, errcode) => {
    const { status, json } = await notary.request("GET", path);
    expect(status).toBe(400);
    expect(json.errcode).toBe(errcode);
    expect(typeof json.error).toBe("string");
  });
});

describe("POST /_matrix/key/v2/query", () => {
  it("answers several servers, each response co-signed; unreachable servers are left out", async () => {
    const body = { server_keys: { "remote.test": { [remote.own.signingKey.keyId]: { minimum_valid_until_ts: clock.ms } }, "nowhere.test": {}, "notary.test": {} } };
    const { status, json } = await notary.request("POST", "/_matrix/key/v2/query", JSON.stringify(body));
    expect(status).toBe(200);
    const byServer = new Map((json.server_keys as JsonObject[]).map((response) => [response.server_name, response]));
    expect([...byServer.keys()].sort()).toEqual(["notary.test", "remote.test"]);
    expect(signedBy(byServer.get("remote.test")!, remote.own)).toBe(true);
    expect(signedBy(byServer.get("remote.test")!, notary.own)).toBe(true);
    expect(signedBy(byServer.get("notary.test")!, notary.own)).toBe(true);
  });

  it("answers an empty list when no server is asked", async () => {
    const { status, json } = await notary.request("POST", "/_matrix/key/v2/query", JSON.stringify({ server_keys: {} }));
    expect(status).toBe(200);
    expect(json).toEqual({ server_keys: [] });
  });

  it("returns an old key's response while the minimum is before its expired_ts, refreshing to learn of it", async () => {
    const old = remote.own.signingKey;
    const expiredTs = clock.ms - HOUR;
    await notary.request("GET", "/_matrix/key/v2/query/remote.test");
    remote.own = ownKeysOf("remote.test", newSigningKey("next"), [{ keyId: old.keyId, publicKey: old.signer.publicKey, expiredTs }]);
    clock.advance(2 * 60_000);

    const ask = (minimum: number) => notary.request("POST", "/_matrix/key/v2/query", JSON.stringify({ server_keys: { "remote.test": { "ed25519:next": { minimum_valid_until_ts: minimum } } } }));
    const learned = await ask(clock.ms);
    expect(learned.json.server_keys).toHaveLength(1);
    expect(learned.json.server_keys[0].old_verify_keys).toEqual({ [old.keyId]: { key: publicKeyOf(old), expired_ts: expiredTs } });
    expect(remote.hits).toBe(2);

    const oldKey = (minimum: number) => notary.request("POST", "/_matrix/key/v2/query", JSON.stringify({ server_keys: { "remote.test": { [old.keyId]: { minimum_valid_until_ts: minimum } } } }));
    expect((await oldKey(expiredTs - 1)).json.server_keys).toHaveLength(1);
    clock.advance(2 * 60_000);
    expect((await oldKey(expiredTs + 1)).json.server_keys).toEqual([]);
  });

  it.each([
    ["not JSON", "{server_keys:", "M_NOT_JSON"],
    ["an array", "[]", "M_NOT_JSON"],
    ["no server_keys", "{}", "M_BAD_JSON"],
    ["server_keys a list", '{"server_keys":["remote.test"]}', "M_BAD_JSON"],
    ["a server's criteria a string", '{"server_keys":{"remote.test":"all"}}', "M_BAD_JSON"],
    ["a key's criteria a number", '{"server_keys":{"remote.test":{"ed25519:a":1}}}', "M_BAD_JSON"],
    ["a bad server name", '{"server_keys":{"bad name":{}}}', "M_INVALID_PARAM"],
    ["a bad key ID", '{"server_keys":{"remote.test":{"nokey":{}}}}', "M_INVALID_PARAM"],
    ["a string minimum", '{"server_keys":{"remote.test":{"ed25519:a":{"minimum_valid_until_ts":"1"}}}}', "M_INVALID_PARAM"],
    ["a fractional minimum", '{"server_keys":{"remote.test":{"ed25519:a":{"minimum_valid_until_ts":1.5}}}}', "M_INVALID_PARAM"],
    ["too many servers", JSON.stringify({ server_keys: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`s${i}.test`, {}])) }), "M_INVALID_PARAM"],
  ])("refuses %s with 400 %s", async (_what, body, errcode) => {
    const { status, json } = await notary.request("POST", "/_matrix/key/v2/query", body);
    expect(status).toBe(400);
    expect(json.errcode).toBe(errcode);
    expect(remote.hits).toBe(0);
  });

  it("refuses an empty body (read as {}: server_keys is missing)", async () => {
    const { status, json } = await notary.request("POST", "/_matrix/key/v2/query");
    expect(status).toBe(400);
    expect(json.errcode).toBe("M_BAD_JSON");
  });
});
