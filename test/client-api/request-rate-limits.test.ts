// Rate limits on every request (issue 7): per user on authenticated Client-Server requests, per
// client address on every Client-Server request (X-Forwarded-For only from a trusted proxy), per
// origin server on authenticated Federation requests. Each trips with 429 M_LIMIT_EXCEEDED and
// retry_after_ms, and recovers once the bucket has refilled. Requesters exempt from rate limits
// (application services with `rate_limited: false`) pass every client limit.
import { jest } from "@jest/globals";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Router } from "../../src/app/http/router.js";
import pino from "pino";
import { parseConfig, toHomeserverSettings } from "../../src/app/config.js";
import { startHomeserver } from "../../src/app/homeserver.js";
import { createHttpApp } from "../../src/app/http-app.js";
import { createRateLimiter } from "../../src/client-api/accounts/rate-limit.js";
import { requireAuth, requesterOf, type Requester, type TokenAuthenticator } from "../../src/client-api/http.js";
import { limitRequestsPerIp, limitRequestsPerUser } from "../../src/client-api/request-rate-limits.js";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import { rawRequest, signedRequest } from "../support/federation-requests.js";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";

jest.setTimeout(30_000);

const silent = pino({ level: process.env.LOG_LEVEL ?? "silent" });

describe("configuration", () => {
  it("reads the request limits and trusted_proxies into the server's settings", () => {
    const config = parseConfig("server_name: example.org\ntrusted_proxies: [loopback, 10.0.0.0/8]\nrate_limits: {per_ip: {per_second: 5}}\n", { source: "bobbin.yaml", baseDir: "/etc/bobbin", env: {} });
    const settings = toHomeserverSettings(config, { signingKey: { keyId: "ed25519:a", signer: nativeEd25519.signerFromSeed(new Uint8Array(32)) }, logger: silent });
    expect(settings.trustedProxies).toEqual(["loopback", "10.0.0.0/8"]);
    expect(settings.rateLimits.per_ip).toEqual({ perSecond: 5, burst: 1000 });
    expect(settings.rateLimits.per_user).toEqual({ perSecond: 100, burst: 500 });
    expect(settings.rateLimits.per_origin).toEqual({ perSecond: 500, burst: 2500 });
    // An entry express could not use stops start-up with the key named.
    expect(() => parseConfig("server_name: example.org\ntrusted_proxies: [127.0.0.1, nginx]\n", { source: "bobbin.yaml", baseDir: "/", env: {} })).toThrow(
      "config error: bobbin.yaml: /trusted_proxies/1 must be an IP address, a CIDR subnet (10.0.0.0/8) or loopback, linklocal or uniquelocal, not \"nginx\"",
    );
    expect(parseConfig("server_name: a.org\ntrusted_proxies: ['::1', 10.0.0.0/8, 192.168.0.0/255.255.0.0, uniquelocal]\n", { source: "x", baseDir: "/", env: {} }).trustedProxies).toHaveLength(4);
    // None by default: X-Forwarded-For is not believed.
    expect(toHomeserverSettings(parseConfig("server_name: example.org\n", { source: "x", baseDir: "/", env: {} }), { signingKey: settings.signingKey, logger: silent }).trustedProxies).toBeUndefined();
  });
});

function expectLimited(response: { status: number; body: any }, withinMs: number): void {
  expect(response.status).toBe(429);
  expect(response.body.errcode).toBe("M_LIMIT_EXCEEDED");
  expect(response.body.retry_after_ms).toBeGreaterThan(0);
  expect(response.body.retry_after_ms).toBeLessThanOrEqual(withinMs);
}

describe("per user", () => {
  let clock = 1_800_000_000_000;
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ rateLimits: { per_user: { perSecond: 1, burst: 3 } }, now: () => clock });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("limits every authenticated request of a user, and recovers", async () => {
    const alice = await server.register("alice");
    const bob = await server.register("bob");
    const whoami = (token: string) => server.request("GET", "/_matrix/client/v3/account/whoami", { token });
    for (let i = 0; i < 3; i++) expect((await whoami(alice.accessToken)).status).toBe(200);
    expectLimited(await whoami(alice.accessToken), 1000);
    // Any authenticated route, not only the one that used the burst.
    expectLimited(await server.request("GET", "/_matrix/client/v3/joined_rooms", { token: alice.accessToken }), 1000);
    // Another user has a bucket of their own; unauthenticated requests take none.
    expect((await whoami(bob.accessToken)).status).toBe(200);
    expect((await server.request("GET", "/_matrix/client/versions")).status).toBe(200);
    clock += 1000;
    expect((await whoami(alice.accessToken)).status).toBe(200);
    expectLimited(await whoami(alice.accessToken), 1000);
  });
});

describe("per client address", () => {
  let clock = 1_800_000_000_000;
  let dataDir: string;
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  async function start(trustedProxies?: string[]) {
    dataDir = mkdtempSync(join(tmpdir(), "bobbin-ip-limit-"));
    return startHomeserver({
      serverName: "localhost",
      database: { engine: "sqlite", path: join(dataDir, "homeserver.db") },
      signingKey: { keyId: "ed25519:test", signer: nativeEd25519.signerFromSeed(randomBytes(32)) },
      listeners: [{ host: "127.0.0.1", port: 0 }],
      registration: { enabled: true, allowGuests: false },
      rateLimits: { per_ip: { perSecond: 2, burst: 2 } },
      ...(trustedProxies ? { trustedProxies } : {}),
      maxRequestBytes: 1024 * 1024,
      logger: silent,
      now: () => clock,
    });
  }

  const versions = (baseUrl: string, forwardedFor?: string) =>
    rawRequest(baseUrl, "GET", "/_matrix/client/versions", forwardedFor ? { headers: { "x-forwarded-for": forwardedFor } } : {});

  it("limits every request from one address; X-Forwarded-For is ignored without trusted proxies", async () => {
    const homeserver = await start();
    try {
      const baseUrl = homeserver.urls[0]!;
      expect((await versions(baseUrl, "203.0.113.1")).status).toBe(200);
      expect((await versions(baseUrl, "203.0.113.2")).status).toBe(200);
      // A client cannot pick a fresh address per request by sending a header.
      expectLimited(await versions(baseUrl, "203.0.113.3"), 500);
      // Unknown endpoints and authenticated ones share the address's bucket.
      expectLimited(await rawRequest(baseUrl, "GET", "/_matrix/client/v3/account/whoami"), 500);
      // The refusal carries Retry-After too (whole seconds, rounded up).
      const limited = await fetch(`${baseUrl}/_matrix/client/versions`);
      expect(limited.status).toBe(429);
      expect(limited.headers.get("retry-after")).toBe("1");
      clock += 500;
      expect((await versions(baseUrl)).status).toBe(200);
      expectLimited(await versions(baseUrl), 500);
      // Other APIs are not counted against the client address.
      expect((await rawRequest(baseUrl, "GET", "/health")).status).toBe(200);
    } finally {
      await homeserver.close();
    }
  });

  it("behind a trusted proxy, each forwarded client address has its own bucket", async () => {
    const homeserver = await start(["loopback"]);
    try {
      const baseUrl = homeserver.urls[0]!;
      for (let i = 0; i < 2; i++) expect((await versions(baseUrl, "203.0.113.1")).status).toBe(200);
      expectLimited(await versions(baseUrl, "203.0.113.1"), 500);
      // The proxy appends the address it saw: the last entry is the client, earlier ones are the client's claims.
      expect((await versions(baseUrl, "203.0.113.1, 203.0.113.2")).status).toBe(200);
      expect((await versions(baseUrl, "203.0.113.2")).status).toBe(200);
      expectLimited(await versions(baseUrl, "203.0.113.2"), 500);
    } finally {
      await homeserver.close();
    }
  });
});

describe("per origin server", () => {
  const offset = { ms: 0 };
  const now = () => Date.now() + offset.ms;
  let origin: TestServer;
  let target: TestServer;
  const federation = { allowInsecureHttp: true, trustedKeyServers: [] };

  beforeAll(async () => {
    const [originPort, targetPort] = [await freePort(), await freePort()];
    origin = await startTestServer({ serverName: `localhost:${originPort}`, port: originPort, federation });
    target = await startTestServer({ serverName: `localhost:${targetPort}`, port: targetPort, federation, rateLimits: { per_origin: { perSecond: 1, burst: 2 } }, now });
  });
  afterAll(async () => {
    await origin?.close();
    await target?.close();
  });

  it("limits authenticated federation requests per origin after X-Matrix authentication, and recovers", async () => {
    await target.register("bob");
    const path = `/_matrix/federation/v1/query/profile?user_id=${encodeURIComponent(`@bob:${target.serverName}`)}`;
    const query = () => signedRequest(target, origin, "GET", path);
    expect((await query()).status).toBe(200);
    expect((await query()).status).toBe(200);
    expectLimited(await query(), 1000);
    // A request that fails authentication is refused as such, and takes nothing from the origin's bucket.
    const unsigned = await rawRequest(target.baseUrl, "GET", path);
    expect(unsigned.status).toBe(401);
    // The unauthenticated version endpoint is not limited.
    expect((await rawRequest(target.baseUrl, "GET", "/_matrix/federation/v1/version")).status).toBe(200);
    offset.ms += 1000;
    expect((await query()).status).toBe(200);
    expectLimited(await query(), 1000);
  });
});

describe("exempt requesters (application services with rate_limited: false)", () => {
  const requesters: Record<string, Requester> = {
    "user-token": { userId: "@user:example.org", deviceId: "D", isGuest: false, isAdmin: false, tokenHash: "u" },
    "appservice-token": { userId: "@bridge:example.org", deviceId: "", isGuest: false, isAdmin: false, appserviceId: "bridge", exemptFromRateLimits: true, tokenHash: "a" },
  };
  const authenticator: TokenAuthenticator = { authenticate: async (token) => (requesters[token] ? { ...requesters[token] } : undefined) };
  let clock = 1_000_000;
  let baseUrl: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    const limiter = createRateLimiter({ per_ip: { perSecond: 1, burst: 3 }, per_user: { perSecond: 1, burst: 1 } }, () => clock);
    const router = new Router();
    router.use(limitRequestsPerIp(limiter, authenticator));
    router.get("/whoami", requireAuth(limitRequestsPerUser(authenticator, limiter)), (_req, res) => {
      res.json({ user_id: requesterOf(res).userId });
    });
    router.get("/public", (_req, res) => {
      res.json({});
    });
    const app = createHttpApp({ logger: silent, maxRequestBytes: 1024, mounts: [["/", router]] });
    const server = app.listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    close = () => new Promise((resolve) => server.close(() => resolve()));
  });
  afterAll(async () => {
    await close();
  });

  const get = async (path: string, token?: string) => {
    const response = await fetch(baseUrl + path, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    return { status: response.status, body: (await response.json()) as any };
  };

  it("an exempt requester passes the per-address and per-user limits that stop others", async () => {
    expect((await get("/whoami", "user-token")).status).toBe(200);
    expect((await get("/public")).status).toBe(200);
    expect((await get("/public")).status).toBe(200);
    // The address's bucket is empty now: ordinary requests from it are refused...
    expectLimited(await get("/public"), 1000);
    expectLimited(await get("/whoami", "user-token"), 1000);
    // ... an unknown token is no way around it ...
    expectLimited(await get("/whoami", "forged-token"), 1000);
    // ... but the application service's requests all pass, on any route, over and over (its
    // per-user burst is one request too).
    for (let i = 0; i < 10; i++) {
      const answered = await get("/whoami", "appservice-token");
      expect(answered.status).toBe(200);
      expect(answered.body.user_id).toBe("@bridge:example.org");
      expect((await get("/public", "appservice-token")).status).toBe(200);
    }
  });

  it("the per-user bucket of an ordinary user trips and recovers on its own", async () => {
    // Both buckets refill: only the per-user limit is under test.
    clock += 10_000;
    expect((await get("/whoami", "user-token")).status).toBe(200);
    expectLimited(await get("/whoami", "user-token"), 1000);
    // The address still had tokens: it was the user's bucket that refused.
    expect((await get("/public")).status).toBe(200);
    clock += 1000;
    expect((await get("/whoami", "user-token")).status).toBe(200);
  });
});

describe("application services on a real server", () => {
  let dataDir: string;
  let homeserver: Awaited<ReturnType<typeof startHomeserver>>;
  // Registrations as bridges write them (Application Service API "Registration"), loaded through the configuration.
  const service = (id: string, rateLimited: boolean) => ({ id, asToken: `as_${id}_${randomBytes(8).toString("hex")}`, rateLimited });
  const exempt = service("free", false);
  const limited = service("held", true);

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "bobbin-as-limits-"));
    for (const registration of [exempt, limited]) {
      writeFileSync(
        join(dataDir, `${registration.id}.yaml`),
        [
          `id: ${registration.id}`,
          "url: null",
          `as_token: ${registration.asToken}`,
          `hs_token: hs_${registration.asToken}`,
          `sender_localpart: ${registration.id}_bot`,
          `rate_limited: ${registration.rateLimited}`,
          "namespaces:",
          "  users:",
          `    - { exclusive: true, regex: "@${registration.id}_.*:localhost" }`,
          "",
        ].join("\n"),
      );
    }
    const config = parseConfig(`server_name: localhost\napp_service_config_files: [free.yaml, held.yaml]\n`, { source: "bobbin.yaml", baseDir: dataDir, env: {} });
    homeserver = await startHomeserver({
      ...toHomeserverSettings(config, { signingKey: { keyId: "ed25519:test", signer: nativeEd25519.signerFromSeed(randomBytes(32)) }, logger: silent }),
      database: { engine: "sqlite", path: join(dataDir, "homeserver.db") },
      listeners: [{ host: "127.0.0.1", port: 0 }],
      // Nearly no refill: whatever is refused stays refused for the test's duration.
      rateLimits: { message: { perSecond: 0.001, burst: 1 }, per_user: { perSecond: 0.001, burst: 4 }, per_ip: { perSecond: 0.001, burst: 12 } },
    });
  });
  afterAll(async () => {
    await homeserver?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function call(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: any }> {
    const response = await fetch(homeserver.urls[0]! + path, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: response.status, body: await response.json() };
  }

  it("a service registered with rate_limited: false passes the message, per-user and per-address limits; one without does not", async () => {
    const ghosts: Record<string, string> = {};
    for (const registration of [exempt, limited]) {
      const registered = await call("POST", "/_matrix/client/v3/register", registration.asToken, { type: "m.login.application_service", username: `${registration.id}_ghost`, inhibit_login: true });
      expect(registered.status).toBe(200);
      ghosts[registration.id] = registered.body.user_id as string;
    }
    const as = (registration: typeof exempt, path: string) => `${path}${path.includes("?") ? "&" : "?"}user_id=${encodeURIComponent(ghosts[registration.id]!)}`;
    const rooms: Record<string, string> = {};
    for (const registration of [exempt, limited]) {
      const created = await call("POST", as(registration, "/_matrix/client/v3/createRoom"), registration.asToken, {});
      expect(created.status).toBe(200);
      rooms[registration.id] = created.body.room_id as string;
    }
    const send = (registration: typeof exempt, txn: string) =>
      call("PUT", as(registration, `/_matrix/client/v3/rooms/${encodeURIComponent(rooms[registration.id]!)}/send/m.room.message/${txn}`), registration.asToken, { msgtype: "m.text", body: txn });
    expect((await send(limited, "1")).status).toBe(200);
    expectLimited(await send(limited, "2"), 1_000_000);
    // The exempt service's user sends on, past the message, per-user and then the address's limits.
    for (let i = 0; i < 10; i++) expect((await send(exempt, `m${i}`)).status).toBe(200);
    expectLimited(await call("GET", as(limited, "/_matrix/client/v3/account/whoami"), limited.asToken), 1_000_000);
  });
});

