// Servers on 127.0.0.1 for the key tests: remote homeservers publishing genuinely signed key
// responses over node:http, Bobbin notaries (the real key routes behind the real HTTP app),
// and a KeyFetcher that maps server names to their loopback ports.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { createHttpApp } from "../../../src/app/http-app.js";
import { encodeBase64 } from "../../../src/core/base64.js";
import { nativeEd25519 } from "../../../src/core/ed25519.js";
import type { JsonObject } from "../../../src/core/json.js";
import { signJson, type SigningKey } from "../../../src/core/signing.js";
import { createKeyRing, type KeyFetcher, type KeyRing, type TrustedKeyServer } from "../../../src/federation/keys/key-ring.js";
import { createKeyNotary, type KeyNotary } from "../../../src/federation/keys/notary.js";
import { buildServerKeyResponse, type OwnKeys } from "../../../src/federation/keys/server-keys.js";
import { keyRoutes } from "../../../src/federation/routes/key-routes.js";
import type { ServerKeysRepo } from "../../../src/storage/ports.js";

export const silentLogger = pino({ level: process.env.LOG_LEVEL ?? "silent" });

export function newSigningKey(version: string = randomBytes(3).toString("hex")): SigningKey {
  return { keyId: `ed25519:${version}`, signer: nativeEd25519.signerFromSeed(new Uint8Array(randomBytes(32))) };
}

export function ownKeysOf(serverName: string, signingKey: SigningKey = newSigningKey(), oldKeys: OwnKeys["oldKeys"] = []): OwnKeys {
  return { serverName, signingKey, oldKeys };
}

export function publicKeyOf(key: SigningKey): string {
  return encodeBase64(key.signer.publicKey);
}

/** A controllable clock shared by a test's servers. */
export class Clock {
  constructor(public ms: number = Date.now()) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** Name → port of every server a test started; the fetcher connects by it. */
export class Loopback {
  readonly ports = new Map<string, number>();
  readonly requests: Array<{ serverName: string; method: string; path: string }> = [];

  readonly fetcher: KeyFetcher = async (serverName, path, init) => {
    this.requests.push({ serverName, method: init?.method ?? "GET", path });
    const port = this.ports.get(serverName);
    if (port === undefined) throw new Error(`getaddrinfo ENOTFOUND ${serverName}`);
    const response = await fetch(`http://127.0.0.1:${port}${path}`, {
      method: init?.method ?? "GET",
      ...(init?.body !== undefined ? { body: JSON.stringify(init.body), headers: { "content-type": "application/json" } } : {}),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, json };
  };

  requestsTo(serverName: string): number {
    return this.requests.filter((request) => request.serverName === serverName).length;
  }
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A remote homeserver that only serves `GET /_matrix/key/v2/server`, over node:http. */
export class RemoteKeyServer {
  /** What the next request gets; by default the genuine signed key response. */
  respond: (own: OwnKeys, now: number) => { status: number; body: unknown } = (own, now) => ({ status: 200, body: buildServerKeyResponse(own, now) });
  /** Milliseconds to wait before answering (to make concurrent requests overlap). */
  delayMs = 0;
  hits = 0;
  private server: Server | undefined;

  constructor(
    public own: OwnKeys,
    private readonly clock: Clock,
    private readonly loopback: Loopback,
  ) {}

  static async start(own: OwnKeys, clock: Clock, loopback: Loopback): Promise<RemoteKeyServer> {
    const remote = new RemoteKeyServer(own, clock, loopback);
    await remote.up();
    return remote;
  }

  get serverName(): string {
    return this.own.serverName;
  }

  async up(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.loopback.ports.set(this.serverName, await listen(this.server));
  }

  /** Stops listening; the name keeps its port, so connections are refused. */
  async down(): Promise<void> {
    if (this.server) await close(this.server);
    this.server = undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "GET" || req.url !== "/_matrix/key/v2/server") {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ errcode: "M_UNRECOGNIZED", error: "not here" }));
      return;
    }
    this.hits += 1;
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    const { status, body } = this.respond(this.own, this.clock.now());
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  }
}

/** A Bobbin notary: its own key ring and the real key routes behind the real HTTP app. */
export class BobbinKeyServer {
  private constructor(
    readonly own: OwnKeys,
    readonly keyRing: KeyRing,
    readonly notary: KeyNotary,
    readonly baseUrl: string,
    private readonly server: Server,
  ) {}

  static async start(options: {
    own: OwnKeys;
    clock: Clock;
    loopback: Loopback;
    storage: ServerKeysRepo;
    trustedKeyServers?: TrustedKeyServer[];
  }): Promise<BobbinKeyServer> {
    const keyRing = createKeyRing({
      own: options.own,
      fetcher: options.loopback.fetcher,
      storage: options.storage,
      trustedKeyServers: options.trustedKeyServers ?? [],
      now: options.clock.now,
      logger: silentLogger,
    });
    const notary = createKeyNotary({ own: options.own, keyRing, now: options.clock.now });
    const app = createHttpApp({ logger: silentLogger, maxRequestBytes: 1024 * 1024, mounts: [["/", keyRoutes({ notary })]] });
    const server = createServer(app);
    const port = await listen(server);
    options.loopback.ports.set(options.own.serverName, port);
    return new BobbinKeyServer(options.own, keyRing, notary, `http://127.0.0.1:${port}`, server);
  }

  get serverName(): string {
    return this.own.serverName;
  }

  /** `json` is `any`: tests assert on arbitrary response JSON. */
  async request(method: string, path: string, body?: string): Promise<{ status: number; json: any }> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      ...(body !== undefined ? { body, headers: { "content-type": "application/json" } } : {}),
    });
    const text = await response.text();
    return { status: response.status, json: text === "" ? undefined : (JSON.parse(text) as unknown) };
  }

  async close(): Promise<void> {
    await close(this.server);
  }
}

/** `own`'s key response, but its signature made by another key under `own`'s key ID (a forgery). */
export function responseSignedByAnotherKey(own: OwnKeys, now: number, forger: SigningKey): JsonObject {
  const { signatures: _genuine, ...unsigned } = buildServerKeyResponse(own, now);
  return signJson(unsigned, own.serverName, { keyId: own.signingKey.keyId, signer: forger.signer }, "utf16");
}
