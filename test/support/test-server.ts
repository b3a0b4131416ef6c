// A real Bobbin homeserver on 127.0.0.1 for integration tests: real HTTP, real SQLite (a file
// in a temporary directory) or PostgreSQL (a schema of its own), and helpers that talk to it
// over HTTP the way a client does.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pino from "pino";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import { startHomeserver, type Homeserver, type HomeserverSettings } from "../../src/app/homeserver.js";
import type { DatabaseSettings } from "../../src/storage/index.js";
import type { SigningKey } from "../../src/core/signing.js";
import { dropPostgresSchema } from "./postgres.js";

export interface TestServerOptions {
  serverName?: string;
  /** "sqlite" (default) or a PostgreSQL URL. */
  postgresUrl?: string;
  registration?: { enabled: boolean; allowGuests: boolean };
  rateLimits?: HomeserverSettings["rateLimits"];
  federation?: HomeserverSettings["federation"];
  /** A fixed port (federation tests name servers `localhost:<port>`); default: any free port. */
  port?: number;
  now?: () => number;
  /** Application service registrations (as `app_service_config_files` would load them) and their pushers' backoff. */
  appservices?: HomeserverSettings["appservices"];
  appservicePusher?: HomeserverSettings["appservicePusher"];
}

export interface TestServer {
  readonly baseUrl: string;
  readonly serverName: string;
  readonly homeserver: Homeserver;
  /** The server's signing key, so tests can sign federation requests as this server. */
  readonly signingKey: SigningKey;
  /** Stops and starts the server on the same database (and the same port). */
  restart(): Promise<void>;
  close(): Promise<void>;
  /** A JSON request; returns status and parsed body (`any`: tests assert on arbitrary response JSON). */
  request(method: string, path: string, options?: { body?: unknown; token?: string; rawBody?: string }): Promise<{ status: number; body: any }>;
  /** Registers a user through the API (registration must be enabled) and returns its session. */
  register(localpart: string, password?: string): Promise<{ userId: string; accessToken: string; deviceId: string }>;
}

const logLevel = process.env.LOG_LEVEL ?? "silent";

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Settings of a homeserver on a SQLite file in `dataDir`, listening on a free loopback port, with
 * open registration and no rate limits: for tests that start `startHomeserver` themselves (their
 * own logger, metrics, appservices...) and override what they are about.
 */
export function sqliteHomeserverSettings(dataDir: string, overrides: Partial<HomeserverSettings> = {}): HomeserverSettings {
  return {
    serverName: "localhost",
    database: { engine: "sqlite", path: join(dataDir, "homeserver.db") },
    signingKey: { keyId: "ed25519:test", signer: nativeEd25519.signerFromSeed(randomBytes(32)) },
    listeners: [{ host: "127.0.0.1", port: 0 }],
    registration: { enabled: true, allowGuests: false },
    rateLimits: {},
    maxRequestBytes: 1024 * 1024,
    logger: pino({ level: logLevel }),
    ...overrides,
  };
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const serverName = options.serverName ?? "localhost";
  const dataDir = mkdtempSync(join(tmpdir(), "bobbin-test-"));
  const database: DatabaseSettings = options.postgresUrl
    ? { engine: "postgres", url: options.postgresUrl, schema: `test_${randomBytes(6).toString("hex")}` }
    : { engine: "sqlite", path: join(dataDir, "homeserver.db") };
  const seed = randomBytes(32);
  const signingKey: SigningKey = { keyId: "ed25519:test", signer: nativeEd25519.signerFromSeed(seed) };
  const settings = (port: number): HomeserverSettings => ({
    serverName,
    database,
    signingKey,
    listeners: [{ host: "127.0.0.1", port }],
    registration: options.registration ?? { enabled: true, allowGuests: true },
    // Generous limits: tests that are about rate limiting pass their own.
    rateLimits: options.rateLimits ?? {},
    maxRequestBytes: 1024 * 1024,
    logger: pino({ level: logLevel }),
    ...(options.now ? { now: options.now } : {}),
    ...(options.federation ? { federation: options.federation } : {}),
    ...(options.appservices ? { appservices: options.appservices } : {}),
    ...(options.appservicePusher ? { appservicePusher: options.appservicePusher } : {}),
  });

  let homeserver = await startHomeserver(settings(options.port ?? 0));
  const port = Number(new URL(homeserver.urls[0]!).port);
  const baseUrl = `http://127.0.0.1:${port}`;

  const server: TestServer = {
    baseUrl,
    serverName,
    signingKey,
    get homeserver() {
      return homeserver;
    },
    async restart() {
      await homeserver.close();
      homeserver = await startHomeserver(settings(port));
    },
    async close() {
      await homeserver.close();
      rmSync(dataDir, { recursive: true, force: true });
      if (database.engine === "postgres" && database.schema) await dropPostgresSchema(database.url, database.schema);
    },
    async request(method, path, { body, token, rawBody } = {}) {
      const headers: Record<string, string> = {};
      if (token) headers.authorization = `Bearer ${token}`;
      if (body !== undefined || rawBody !== undefined) headers["content-type"] = "application/json";
      const init = { method, headers, body: rawBody ?? (body === undefined ? undefined : JSON.stringify(body)) };
      // After restart() a pooled keep-alive socket may point at the stopped server: retry once.
      const response = await fetch(baseUrl + path, init).catch(() => fetch(baseUrl + path, init));
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = text.length ? JSON.parse(text) : undefined;
      } catch {
        // Not JSON: leave the text for the assertion to show.
      }
      return { status: response.status, body: parsed };
    },
    async register(localpart, password = "correct horse battery staple") {
      const first = await server.request("POST", "/_matrix/client/v3/register", { body: { username: localpart, password } });
      const session = first.body?.session;
      const done = await server.request("POST", "/_matrix/client/v3/register", {
        body: { username: localpart, password, auth: { type: "m.login.dummy", session } },
      });
      if (done.status !== 200) throw new Error(`registering ${localpart} failed: ${done.status} ${JSON.stringify(done.body)}`);
      return { userId: done.body.user_id, accessToken: done.body.access_token, deviceId: done.body.device_id };
    },
  };
  return server;
}
