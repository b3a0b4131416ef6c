// Lightweight fake federation servers for bench/federation.ts, all in the bench's own process.
// Each one is a real HTTP server on 127.0.0.1 named `localhost:<port>` (an explicit port, so the
// hub connects to it directly: LM draft "Resolving Server Names" step 1) with a real Ed25519 key:
//
//   GET /_matrix/key/v2/server      our key response, built and signed by Bobbin's own code
//                                   (LM draft "GET /_matrix/key/v2/server")
//   PUT .../send/:txnId             answered `{}` at once; the PDUs are handed to `onPdus` with
//                                   their arrival time (LM draft "PUT /send/:txnId")
//
// Outbound, a fake server signs its requests with X-Matrix (LM draft "Request Authentication")
// and builds its LPDUs with Bobbin's event builder (LM draft "Linearized PDU"). It does not check
// the X-Matrix header of what it receives: only the hub under test talks to it, and the bench
// measures the hub, not the fake.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { nativeEd25519 } from "../src/core/ed25519.js";
import type { Lpdu } from "../src/core/events.js";
import type { JsonObject, JsonValue } from "../src/core/json.js";
import { getRoomVersion, LINEARIZED_02, type RoomVersionRules } from "../src/core/room-versions.js";
import { buildLpdu, type EventDraft, type ServerIdentity } from "../src/room-dag/event-builder.js";
import { buildServerKeyResponse } from "../src/federation/keys/server-keys.js";
import { signRequest } from "../src/federation/transport/x-matrix.js";

export const LM_VERSION = LINEARIZED_02;
export const LM_RULES: RoomVersionRules = getRoomVersion(LM_VERSION)!;
/** The unstable prefix LM peers serve `send` and `send_join` under (LM draft implementation notes). */
export const LM_PREFIX = `/_matrix/federation/unstable/${LM_VERSION}`;

/** One transaction as a fake server received it. */
export interface ReceivedTxn {
  origin: string;
  txnId: string;
  pdus: JsonObject[];
  /** performance.now() when the whole body had arrived. */
  arrivedAt: number;
}

export interface FederationReply {
  status: number;
  // `any`: the bench reads a few fields of arbitrary federation responses.
  json: any;
  bytes: number;
}

export interface FakeServer {
  readonly serverName: string;
  readonly port: number;
  readonly identity: ServerIdentity;
  /** Called for every `/send` transaction received, after it was answered. */
  onTxn: (txn: ReceivedTxn) => void;
  /** Number of `/send` requests and `GET /_matrix/key/v2/server` requests served. */
  readonly counters: { txns: number; keyRequests: number };
  /** A signed federation request to `destination` (`localhost:<port>`). */
  request(destination: string, method: string, path: string, body?: JsonValue): Promise<FederationReply>;
  /** A signed LPDU for one of this server's users, addressed to `hubServer`. */
  lpdu(draft: EventDraft, hubServer: string): Lpdu;
  close(): Promise<void>;
}

/** `localhost:<port>` → `http://127.0.0.1:<port>`: the bench only ever talks to loopback. */
export function baseUrlOf(serverName: string): string {
  const port = /^localhost:(\d+)$/.exec(serverName)?.[1];
  if (port === undefined) throw new Error(`not a loopback server name: ${serverName}`);
  return `http://127.0.0.1:${port}`;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

const SEND_PATH = new RegExp(`^${LM_PREFIX.replace(/\./g, "\\.")}/send/([^/?]+)$|^/_matrix/federation/v2/send/([^/?]+)$`);

/** Starts one fake server on a free loopback port. */
export async function startFakeServer(): Promise<FakeServer> {
  const key = { keyId: `ed25519:b${randomBytes(3).toString("hex")}`, signer: nativeEd25519.signerFromSeed(new Uint8Array(randomBytes(32))) };
  let keyResponse: string | undefined;
  let fake!: FakeServer;

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) reply(res, 500, JSON.stringify({ errcode: "M_UNKNOWN", error: String(error) }));
    });
  });
  // The hub keeps connections to its destinations alive between transactions.
  server.keepAliveTimeout = 60_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? "/";
    if (req.method === "GET" && path === "/_matrix/key/v2/server") {
      fake.counters.keyRequests++;
      // valid_until_ts 12 h ahead, as Bobbin publishes its own; signed once, it stays valid for the run.
      keyResponse ??= JSON.stringify(buildServerKeyResponse({ serverName: fake.serverName, signingKey: key, oldKeys: [] }, Date.now()));
      reply(res, 200, keyResponse);
      return;
    }
    const send = req.method === "PUT" ? SEND_PATH.exec(path) : null;
    if (send !== null) {
      const body = await readBody(req);
      const arrivedAt = performance.now();
      // Answered before the PDUs are looked at: the LM rule of one transaction in flight means a slow
      // answer here would slow the hub's queue, and this bench measures the hub.
      reply(res, 200, "{}");
      fake.counters.txns++;
      const parsed = JSON.parse(body.toString("utf8")) as { origin?: string; pdus?: JsonObject[] };
      const origin = /origin="?([^",]+)"?/.exec(req.headers.authorization ?? "")?.[1] ?? parsed.origin ?? "";
      fake.onTxn({ origin, txnId: decodeURIComponent(send[1] ?? send[2] ?? ""), pdus: parsed.pdus ?? [], arrivedAt });
      return;
    }
    await readBody(req);
    reply(res, 404, JSON.stringify({ errcode: "M_UNRECOGNIZED", error: "Unrecognized request" }));
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const serverName = `localhost:${port}`;
  const identity: ServerIdentity = { serverName, key };

  fake = {
    serverName,
    port,
    identity,
    onTxn: () => {},
    counters: { txns: 0, keyRequests: 0 },
    async request(destination, method, path, body) {
      const content = body ?? (method === "PUT" || method === "POST" ? {} : undefined);
      const [authorization] = signRequest({ method, uri: path, origin: serverName, destination, content }, [key]);
      const response = await fetch(baseUrlOf(destination) + path, {
        method,
        headers: { authorization: authorization!, ...(content !== undefined ? { "content-type": "application/json" } : {}) },
        ...(content !== undefined ? { body: JSON.stringify(content) } : {}),
      });
      const text = await response.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = text;
      }
      return { status: response.status, json, bytes: Buffer.byteLength(text) };
    },
    lpdu(draft, hubServer) {
      return buildLpdu(draft, hubServer, identity, LM_RULES);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return fake;
}

/** Starts `count` fake servers. */
export async function startFakeServers(count: number): Promise<FakeServer[]> {
  const servers: FakeServer[] = [];
  for (let i = 0; i < count; i++) servers.push(await startFakeServer());
  return servers;
}

/**
 * Joins `userId` (a user of `fake`) to `roomId` on `hub` with the make/send handshake (LM draft
 * "Make and Send Handshake", `GET /make_join`, `POST /send_join`). Returns the send_join answer.
 */
export async function joinViaHandshake(fake: FakeServer, hub: string, roomId: string, userId: string): Promise<FederationReply> {
  const make = await fake.request(hub, "GET", `/_matrix/federation/v1/make_join/${encodeURIComponent(roomId)}/${encodeURIComponent(userId)}?ver=${encodeURIComponent(LM_VERSION)}`);
  if (make.status !== 200) throw new Error(`make_join for ${userId}: ${make.status} ${JSON.stringify(make.json)}`);
  // The draft answers the template itself; Matrix (and the brief of this bench) wraps it as {event, room_version}.
  const template = (make.json.event ?? make.json) as JsonObject;
  const roomVersion = make.json.room_version ?? LM_VERSION;
  if (roomVersion !== LM_VERSION) throw new Error(`make_join: room version ${roomVersion}`);
  // "The sending server SHOULD remove all other fields" than type, state_key, sender, content.
  const lpdu = fake.lpdu(
    { room_id: roomId, type: "m.room.member", state_key: userId, sender: userId, content: { ...(template.content as JsonObject), membership: "join" }, origin_server_ts: Date.now() },
    hub,
  );
  const txnId = `join${randomBytes(6).toString("hex")}`;
  const joined = await fake.request(hub, "POST", `${LM_PREFIX}/send_join/${txnId}`, lpdu as unknown as JsonObject);
  if (joined.status !== 200) throw new Error(`send_join for ${userId}: ${joined.status} ${JSON.stringify(joined.json).slice(0, 500)}`);
  return joined;
}

/** Sends one `/send` transaction of PDUs/LPDUs to `destination`; throws on anything but 200. */
export async function sendTxn(fake: FakeServer, destination: string, txnId: string, pdus: JsonObject[]): Promise<FederationReply> {
  // `origin` and `origin_server_ts` are Matrix's; LM receivers ignore them, and Bobbin sends them too.
  const sent = await fake.request(destination, "PUT", `${LM_PREFIX}/send/${txnId}`, { origin: fake.serverName, origin_server_ts: Date.now(), pdus });
  if (sent.status !== 200) throw new Error(`send ${txnId}: ${sent.status} ${JSON.stringify(sent.json).slice(0, 500)}`);
  return sent;
}
