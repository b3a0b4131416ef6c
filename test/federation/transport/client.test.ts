import { randomBytes } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { Router } from "../../../src/app/http/router.js";
import pino from "pino";
import { createHttpApp, type HttpApp } from "../../../src/app/http-app.js";
import { nativeEd25519 } from "../../../src/core/ed25519.js";
import type { SigningKey } from "../../../src/core/signing.js";
import { createFederationClient, withQuery, type FederationClient } from "../../../src/federation/transport/client.js";
import { FederationRequestError } from "../../../src/federation/transport/errors.js";
import { createHttpExchanger } from "../../../src/federation/transport/http-exchange.js";
import { requireFederationAuth } from "../../../src/federation/transport/require-auth.js";
import { createServerResolver, type WellKnownResult } from "../../../src/federation/transport/resolve.js";
import { wellKnownRoutes } from "../../../src/federation/transport/well-known-route.js";
import type { RequestKeyLookup } from "../../../src/federation/transport/x-matrix.js";
import { createTestPki, type TestPki } from "./test-pki.js";

const ORIGIN = "hs1.test";
const keys: SigningKey[] = ["k1", "k2"].map((v) => ({ keyId: `ed25519:${v}`, signer: nativeEd25519.signerFromSeed(randomBytes(32)) }));
const lookupKey: RequestKeyLookup = async (server, keyId) => {
  const key = server === ORIGIN ? keys.find((k) => k.keyId === keyId) : undefined;
  return key && nativeEd25519.verifierFromPublicKey(key.signer.publicKey);
};

interface Seen {
  method: string;
  url: string;
  origin?: unknown;
  authorization: string[];
  body: unknown;
}

/** A federation endpoint behind requireFederationAuth, a key endpoint without it, and misbehaving routes. */
function federationApp(serverName: () => string, seen: Seen[]): HttpApp {
  const federation = new Router();
  // The name includes the port, known only once listening: build the middleware per request.
  federation.use((req, res, next) => requireFederationAuth({ serverName: serverName(), lookupKey, maxRequestBytes: 65536 })(req, res, next));
  // Every path under the mount: the last middleware answers.
  federation.use((req, res) => {
    seen.push({ method: req.method, url: req.originalUrl, origin: res.locals.origin, authorization: req.rawHeaders.filter((_, i, a) => i % 2 === 1 && a[i - 1]?.toLowerCase() === "authorization"), body: req.body });
    res.json({ origin: res.locals.origin, host: req.headers.host });
  });
  const keyApi = new Router();
  keyApi.use((req, res) => {
    seen.push({ method: req.method, url: req.originalUrl, authorization: req.headers.authorization ? [req.headers.authorization] : [], body: req.body });
    res.json({ server_name: serverName() });
  });
  const misc = new Router();
  misc.get("/big", (_req, res) => res.json({ padding: "x".repeat(10_000) }));
  misc.get("/html", (_req, res) => res.setHeader("Content-Type", "text/html").end("<html>oops</html>"));
  misc.get("/slow", () => {
    // Never answers.
  });
  return createHttpApp({
    logger: pino({ level: "silent" }),
    maxRequestBytes: 65536,
    mounts: [
      ["/_matrix/federation", federation],
      ["/_matrix/key", keyApi],
      ["/_misc", misc],
      ["/", wellKnownRoutes({ wellKnownServer: "hs2.test:8448" })],
    ],
  });
}

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

const noWellKnown = async (): Promise<WellKnownResult> => ({ ok: false, reason: "none in tests" });
const noSrv = {
  resolveSrv: async () => {
    throw Object.assign(new Error("none"), { code: "ENOTFOUND" });
  },
};

describe("federation client over real TLS", () => {
  let pki: TestPki;
  let tlsServer: https.Server;
  let selfSignedServer: https.Server;
  let plainServer: http.Server;
  let tlsPort: number;
  let selfSignedPort: number;
  let plainPort: number;
  const seen: Seen[] = [];
  let client: FederationClient;
  let hs2: string;

  function makeClient(options: { allowInsecureHttp?: boolean; maxResponseBytes?: number; timeoutMs?: number; extraCa?: boolean } = {}): FederationClient {
    const exchanger = createHttpExchanger({
      ...(options.extraCa === false ? {} : { extraCa: pki.caPem }),
      // hs2.test, wrong.test and self.test all live on loopback.
      connectTo: (host, port) => (host.endsWith(".test") ? { host: "127.0.0.1", port } : undefined),
    });
    return createFederationClient({
      serverName: ORIGIN,
      signingKeys: keys,
      resolver: createServerResolver({ dns: noSrv, fetchWellKnown: noWellKnown }),
      exchanger,
      ...options,
    });
  }

  beforeAll(async () => {
    pki = createTestPki();
    tlsServer = https.createServer(pki.issue(["DNS:hs2.test"]), federationApp(() => hs2, seen));
    tlsPort = await listen(tlsServer);
    hs2 = `hs2.test:${tlsPort}`;
    selfSignedServer = https.createServer(pki.selfSigned(["DNS:self.test"]), federationApp(() => `self.test:${selfSignedPort}`, seen));
    selfSignedPort = await listen(selfSignedServer);
    plainServer = http.createServer(federationApp(() => `hs2.test:${plainPort}`, seen));
    plainPort = await listen(plainServer);
    client = makeClient();
  });

  afterAll(async () => {
    client.close();
    for (const server of [tlsServer, selfSignedServer, plainServer]) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    pki.remove();
  });

  it("sends a signed PUT that the receiver verifies, one Authorization header per key", async () => {
    const response = await client.request(hs2, "PUT", "/_matrix/federation/v2/send/txn%2F1", { body: { pdus: [], edus: [] } });
    expect(response).toEqual({ status: 200, json: { origin: ORIGIN, host: hs2 } });
    const request = seen.at(-1) as Seen;
    expect(request).toMatchObject({ method: "PUT", url: "/_matrix/federation/v2/send/txn%2F1", origin: ORIGIN, body: { pdus: [], edus: [] } });
    expect(request.authorization).toHaveLength(2);
    expect(request.authorization[0]).toMatch(new RegExp(`^X-Matrix origin="hs1.test",destination="${hs2}",key="ed25519:k1",sig="[A-Za-z0-9+/]+"$`));
  });

  it("sends a signed GET with query parameters, signed as sent", async () => {
    const response = await client.request(hs2, "GET", "/_matrix/federation/v1/make_join/!r%3Ahs2.test/%40a%3Ahs1.test", { query: { ver: ["11", "I.1"], x: "a b&c" } });
    expect(response.status).toBe(200);
    expect(seen.at(-1)?.url).toBe("/_matrix/federation/v1/make_join/!r%3Ahs2.test/%40a%3Ahs1.test?ver=11&ver=I.1&x=a%20b%26c");
  });

  it("a POST without body sends and signs {}", async () => {
    expect((await client.request(hs2, "POST", "/_matrix/federation/v1/user/keys/query")).status).toBe(200);
    expect(seen.at(-1)?.body).toEqual({});
  });

  it("returns error statuses with their JSON body", async () => {
    expect(await client.request(hs2, "GET", "/_matrix/unknown")).toEqual({ status: 404, json: { errcode: "M_UNRECOGNIZED", error: "Unrecognized request: GET /_matrix/unknown" } });
  });

  it("the key fetcher sends unsigned GETs and POSTs", async () => {
    const fetchKeys = client.keyFetcher();
    expect(await fetchKeys(hs2, "/_matrix/key/v2/server")).toEqual({ status: 200, json: { server_name: hs2 } });
    expect(seen.at(-1)).toMatchObject({ method: "GET", url: "/_matrix/key/v2/server", authorization: [] });
    await fetchKeys(hs2, "/_matrix/key/v2/query", { method: "POST", body: { server_keys: { "a.test": {} } } });
    expect(seen.at(-1)).toMatchObject({ method: "POST", authorization: [], body: { server_keys: { "a.test": {} } } });
  });

  it("serves /.well-known/matrix/server when configured", async () => {
    expect(await client.keyFetcher()(hs2, "/.well-known/matrix/server")).toEqual({ status: 200, json: { "m.server": "hs2.test:8448" } });
  });

  it("refuses a certificate that is not valid for the destination's name", async () => {
    const error = await client.request(`wrong.test:${tlsPort}`, "GET", "/_matrix/federation/v1/version").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FederationRequestError);
    expect(error).toMatchObject({ destination: `wrong.test:${tlsPort}`, failure: "tls" });
    expect(String((error as Error).message)).toMatch(/wrong\.test/);
  });

  it("refuses a certificate from an untrusted CA, and the test CA without the extra CA", async () => {
    await expect(client.request(`self.test:${selfSignedPort}`, "GET", "/_matrix/federation/v1/version")).rejects.toMatchObject({ failure: "tls" });
    const systemOnly = makeClient({ extraCa: false });
    await expect(systemOnly.request(hs2, "GET", "/_matrix/federation/v1/version")).rejects.toMatchObject({ failure: "tls" });
    systemOnly.close();
  });

  it("does not speak plain HTTP unless allow_insecure_http is set", async () => {
    const plain = `hs2.test:${plainPort}`;
    const error = await client.request(plain, "GET", "/_matrix/federation/v1/version").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FederationRequestError);
    expect(["tls", "connect"]).toContain((error as FederationRequestError).failure);

    const insecure = makeClient({ allowInsecureHttp: true });
    expect(await insecure.request(plain, "GET", "/_matrix/federation/v1/version")).toEqual({ status: 200, json: { origin: ORIGIN, host: plain } });
    // And the insecure client does not talk TLS.
    await expect(insecure.request(hs2, "GET", "/_matrix/federation/v1/version")).rejects.toBeInstanceOf(FederationRequestError);
    insecure.close();
  });

  it("caps the response size, times out, and refuses a 200 that is not JSON", async () => {
    const small = makeClient({ maxResponseBytes: 1000, timeoutMs: 300 });
    await expect(small.request(hs2, "GET", "/_misc/big")).rejects.toMatchObject({ failure: "too_large" });
    await expect(small.request(hs2, "GET", "/_misc/slow")).rejects.toMatchObject({ failure: "timeout" });
    await expect(small.request(hs2, "GET", "/_misc/html")).rejects.toMatchObject({ failure: "bad_response" });
    small.close();
  });

  it("reports a refused connection and an invalid destination", async () => {
    const closed = http.createServer();
    const port = await listen(closed);
    await new Promise((resolve) => closed.close(resolve));
    await expect(client.request(`hs2.test:${port}`, "GET", "/x")).rejects.toMatchObject({ failure: "connect" });
    await expect(client.request("bad name", "GET", "/x")).rejects.toMatchObject({ failure: "resolve" });
  });
});

describe("withQuery", () => {
  it("appends encoded parameters, repeating arrays, skipping undefined", () => {
    expect(withQuery("/p", { a: "1", b: undefined, c: [true, 2], "d e": "/" })).toBe("/p?a=1&c=true&c=2&d%20e=%2F");
    expect(withQuery("/p?x=1", { y: "2" })).toBe("/p?x=1&y=2");
    expect(withQuery("/p", {})).toBe("/p");
  });
});

describe("wellKnownRoutes", () => {
  it("answers 404 M_NOT_FOUND when no delegation is configured", async () => {
    const app = createHttpApp({ logger: pino({ level: "silent" }), maxRequestBytes: 1024, mounts: [["/", wellKnownRoutes({})]] });
    const server = http.createServer(app);
    const port = await listen(server);
    const response = await fetch(`http://127.0.0.1:${port}/.well-known/matrix/server`);
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ errcode: "M_NOT_FOUND" });
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
});
