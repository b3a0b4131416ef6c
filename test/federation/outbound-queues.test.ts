// The outbound federation queues against real receivers: plain node:http servers on 127.0.0.1
// named `localhost:<port>`, reached through the real federation client (X-Matrix signed, plain
// HTTP allowed for loopback), over a real SQLite database holding real event and queue rows.
import { randomBytes } from "node:crypto";
import { promises as dns } from "node:dns";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it, jest } from "@jest/globals";
import pino from "pino";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import type { JsonObject } from "../../src/core/json.js";
import { retryDelayMs } from "../../src/federation/outbound/backoff.js";
import { PduCache } from "../../src/federation/outbound/pdu-cache.js";
import { createOutboundQueues, type OutboundQueuesDeps } from "../../src/federation/outbound/queues.js";
import { failedPdusOf, SEND_PATH_PREFIX } from "../../src/federation/outbound/transaction.js";
import type { OutboundQueues } from "../../src/federation/outbound/types.js";
import {
  createFederationClient,
  createHttpExchanger,
  createServerResolver,
  createWellKnownFetcher,
  FederationRequestError,
  type FederationClient,
} from "../../src/federation/transport/index.js";
import { openStorage } from "../../src/storage/index.js";
import type { Storage } from "../../src/storage/ports.js";
import { freePort } from "../support/test-server.js";
import { messageEvent, pdu, room, RoomLog } from "../storage/builders.js";

jest.setTimeout(20_000);

const ORIGIN = "origin.test";
const ROOM = "!r:origin.test";
const signingKey = { keyId: "ed25519:k1", signer: nativeEd25519.signerFromSeed(randomBytes(32)) };

/** A transaction as a receiver saw it. */
interface Received {
  txnId: string;
  url: string;
  body: JsonObject;
  authorization: string | undefined;
  at: number;
}

type Answer = { status: number; json: unknown } | "hang-up";

/** A plain HTTP server that records `PUT /send/{txnId}` requests and answers as the test says. */
class Receiver {
  readonly received: Received[] = [];
  inFlight = 0;
  maxInFlight = 0;
  respond: (txn: Received, n: number) => Answer | Promise<Answer> = () => ({ status: 200, json: {} });

  private constructor(
    private readonly server: http.Server,
    readonly port: number,
  ) {}

  get name(): string {
    return `localhost:${this.port}`;
  }

  /** Everything received, transaction after transaction. */
  pdus(): JsonObject[] {
    return this.received.flatMap((txn) => txn.body.pdus as JsonObject[]);
  }

  edus(): JsonObject[] {
    return this.received.flatMap((txn) => (txn.body.edus as JsonObject[] | undefined) ?? []);
  }

  static async start(port = 0): Promise<Receiver> {
    let receiver: Receiver | undefined;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => void (receiver as Receiver).handle(req, res, Buffer.concat(chunks).toString("utf8")));
    });
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    receiver = new Receiver(server, (server.address() as AddressInfo).port);
    return receiver;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, text: string): Promise<void> {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const url = req.url ?? "";
    const txn: Received = {
      txnId: decodeURIComponent(url.slice(url.lastIndexOf("/") + 1)),
      url,
      body: JSON.parse(text) as JsonObject,
      authorization: req.headers.authorization,
      at: Date.now(),
    };
    this.received.push(txn);
    const answer = await this.respond(txn, this.received.length);
    this.inFlight -= 1;
    if (answer === "hang-up") {
      req.socket.destroy();
      return;
    }
    res.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.json));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 8_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const bodiesOf = (pdus: JsonObject[]): string[] => pdus.map((p) => (p.content as JsonObject).body as string);

describe("outbound federation queues", () => {
  const dir = mkdtempSync(join(tmpdir(), "bobbin-outbound-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let dbCount = 0;
  let dbPath: string;
  let storage: Storage;
  let client: FederationClient;
  let log: RoomLog;
  let streamPos: number;
  let logs: Array<Record<string, unknown>>;
  const queues: OutboundQueues[] = [];
  const receivers: Receiver[] = [];

  function makeClient(): FederationClient {
    // Built as src/app/homeserver.ts builds it; `localhost:<port>` names skip SRV and .well-known.
    const exchanger = createHttpExchanger();
    return createFederationClient({
      serverName: ORIGIN,
      signingKeys: [signingKey],
      resolver: createServerResolver({ dns: new dns.Resolver(), fetchWellKnown: createWellKnownFetcher({ exchanger }) }),
      exchanger,
      allowInsecureHttp: true,
    });
  }

  function makeQueues(overrides: Partial<OutboundQueuesDeps> = {}): OutboundQueues {
    const logger = pino({ level: "debug" }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
    const created = createOutboundQueues({ serverName: ORIGIN, storage, client, logger, now: Date.now, random: () => 0.5, ...overrides });
    queues.push(created);
    return created;
  }

  async function receiver(port?: number): Promise<Receiver> {
    const started = await Receiver.start(port);
    receivers.push(started);
    return started;
  }

  /** Appends `count` messages (bodies `${prefix}0`…) and queues each for every destination. */
  async function queueMessages(count: number, destinations: string[], prefix = "m"): Promise<string[]> {
    const bodies = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
    const appended = await log.append(storage, bodies.map((body) => messageEvent(ROOM, body)));
    await storage.federation.enqueuePdus(appended.flatMap((event) => destinations.map((destination) => ({ destination, streamPos: event.streamPos, eventId: event.eventId }))));
    return bodies;
  }

  const failedTxnIds = (): string[] => logs.filter((l) => l.msg === "federation transaction failed").map((l) => l.txn_id as string);
  const failuresOf = async (destination: string): Promise<number> => (await storage.federation.getDestination(destination))?.failures ?? 0;

  beforeEach(async () => {
    dbPath = join(dir, `db-${++dbCount}.db`);
    storage = await openStorage({ engine: "sqlite", path: dbPath });
    client = makeClient();
    logs = [];
    streamPos = 0;
    await storage.events.createRoom(room(ROOM, { hubServer: ORIGIN }));
    log = new RoomLog(ROOM, () => ++streamPos);
  });

  afterEach(async () => {
    for (const queue of queues.splice(0)) await queue.close();
    for (const r of receivers.splice(0)) await r.stop();
    client.close();
    await storage.close();
  });

  it("sends queued PDUs in stream order, at most 50 per signed transaction, then acknowledges them", async () => {
    const hs = await receiver();
    const queue = makeQueues();
    const bodies = await queueMessages(120, [hs.name]);
    queue.wake([hs.name]);

    await waitFor("120 PDUs", () => hs.pdus().length >= 120);
    await waitFor("queue emptied", async () => (await storage.federation.countQueuedPdus(hs.name)) === 0);
    expect(hs.received.map((txn) => (txn.body.pdus as JsonObject[]).length)).toEqual([50, 50, 20]);
    expect(bodiesOf(hs.pdus())).toEqual(bodies);
    for (const txn of hs.received) {
      expect(txn.url.startsWith(SEND_PATH_PREFIX)).toBe(true);
      expect(txn.authorization).toMatch(/^X-Matrix origin="origin\.test",destination="localhost:\d+",key="ed25519:k1",sig="/);
      expect(txn.body.origin).toBe(ORIGIN);
      expect(typeof txn.body.origin_server_ts).toBe("number");
      // No EDUs: the field is left out (LM draft: MAY be excluded).
      expect("edus" in txn.body).toBe(false);
    }
    expect(new Set(hs.received.map((txn) => txn.txnId)).size).toBe(3);
    const row = await queue.destination(hs.name);
    expect(row).toMatchObject({ failures: 0, retryAtTs: null, lastError: null });
    expect(row?.lastSuccessTs).toEqual(expect.any(Number));
  });

  it("never has two transactions in flight to one destination, however often it is woken", async () => {
    const hs = await receiver();
    hs.respond = async () => {
      await sleep(25);
      return { status: 200, json: {} };
    };
    const queue = makeQueues();
    const expected = await queueMessages(60, [hs.name], "a");
    queue.wake([hs.name]);
    for (let round = 0; round < 5; round++) {
      expected.push(...(await queueMessages(20, [hs.name], `b${round}-`)));
      queue.wake([hs.name]);
      queue.wake([hs.name]);
      await sleep(10);
    }

    await waitFor("160 PDUs", () => hs.pdus().length >= 160);
    await waitFor("queue emptied", async () => (await storage.federation.countQueuedPdus(hs.name)) === 0);
    expect(hs.maxInFlight).toBe(1);
    expect(bodiesOf(hs.pdus())).toEqual(expected);
  });

  it("retries a transaction that got a 500 with the same txnId and the same body", async () => {
    const hs = await receiver();
    hs.respond = (_txn, n) => (n === 1 ? { status: 500, json: { errcode: "M_UNKNOWN", error: "boom" } } : { status: 200, json: {} });
    const queue = makeQueues({ settings: { backoff: { initialMs: 20 } } });
    await queueMessages(3, [hs.name]);
    queue.wake([hs.name]);

    await waitFor("queue emptied", async () => (await storage.federation.countQueuedPdus(hs.name)) === 0);
    expect(hs.received).toHaveLength(2);
    const [first, retry] = hs.received as [Received, Received];
    expect(retry.txnId).toBe(first.txnId);
    expect(retry.url).toBe(first.url);
    expect(retry.body).toEqual(first.body);
    expect(logs.find((l) => l.msg === "federation transaction failed")?.reason).toBe("HTTP 500 M_UNKNOWN");
    expect(await queue.destination(hs.name)).toMatchObject({ failures: 0, retryAtTs: null });
  });

  it("retries with the same txnId and body after the connection was dropped without an answer", async () => {
    const hs = await receiver();
    hs.respond = (_txn, n) => (n === 1 ? "hang-up" : { status: 200, json: {} });
    const queue = makeQueues({ settings: { backoff: { initialMs: 20 } } });
    await queueMessages(2, [hs.name]);
    queue.wake([hs.name]);

    await waitFor("two attempts", () => hs.received.length >= 2);
    expect(hs.received[1]?.txnId).toBe(hs.received[0]?.txnId);
    expect(hs.received[1]?.body).toEqual(hs.received[0]?.body);
    await waitFor("queue emptied", async () => (await storage.federation.countQueuedPdus(hs.name)) === 0);
  });

  it("retries after a refused connection with the same txnId once the destination is up", async () => {
    const port = await freePort();
    const destination = `localhost:${port}`;
    const queue = makeQueues({ settings: { backoff: { initialMs: 60_000 } } });
    const bodies = await queueMessages(3, [destination]);
    queue.wake([destination]);
    await waitFor("a failure", async () => (await failuresOf(destination)) === 1);
    const row = await queue.destination(destination);
    expect(row?.lastError).toMatch(/^connect: /);
    const [refusedTxnId] = failedTxnIds();

    const hs = await receiver(port);
    queue.markReachable(destination);
    await waitFor("delivery", () => hs.received.length === 1);
    expect(hs.received[0]?.txnId).toBe(refusedTxnId);
    expect(bodiesOf(hs.pdus())).toEqual(bodies);
    await waitFor("success recorded", async () => (await failuresOf(destination)) === 0);
  });

  it("backs off exponentially (with the jitter's middle value) and persists the retry state", async () => {
    const hs = await receiver();
    hs.respond = () => ({ status: 503, json: { errcode: "M_UNKNOWN" } });
    const queue = makeQueues({ settings: { backoff: { initialMs: 40, maxMs: 100_000 } } });
    await queueMessages(1, [hs.name]);
    queue.wake([hs.name]);

    await waitFor("five attempts", () => hs.received.length >= 5);
    const gaps = hs.received.slice(1, 5).map((txn, i) => txn.at - (hs.received[i] as Received).at);
    // random() = 0.5 is a jitter factor of exactly 1: 40, 80, 160, 320 ms.
    [40, 80, 160, 320].forEach((expected, i) => {
      expect(gaps[i]).toBeGreaterThanOrEqual(expected - 5);
      expect(gaps[i]).toBeLessThan(expected + 150);
    });
    expect(new Set(hs.received.map((txn) => txn.txnId)).size).toBe(1);
    await waitFor("fifth failure persisted", async () => (await failuresOf(hs.name)) === 5);
    const row = await queue.destination(hs.name);
    expect(row?.lastError).toBe("HTTP 503 M_UNKNOWN");
    expect(row?.retryAtTs).toBeGreaterThan(Date.now());
    expect(row?.retryAtTs).toBeLessThanOrEqual(Date.now() + 640);
  });

  it("markReachable cuts a backoff short, keeping the failure count; resetDestination clears it", async () => {
    const hs = await receiver();
    hs.respond = () => ({ status: 500, json: {} });
    const queue = makeQueues({ settings: { backoff: { initialMs: 60_000 } } });
    await queueMessages(2, [hs.name]);
    queue.wake([hs.name]);
    await waitFor("first failure", async () => (await failuresOf(hs.name)) === 1);
    expect(hs.received).toHaveLength(1);

    const before = Date.now();
    queue.markReachable(hs.name);
    await waitFor("second failure", async () => (await failuresOf(hs.name)) === 2, 2_000);
    expect(hs.received).toHaveLength(2);
    // The second failure doubles the minute: 120 s.
    expect((await queue.destination(hs.name))?.retryAtTs).toBeGreaterThanOrEqual(before + 120_000);
    // Still backing off: a wake does not send before the backoff ends.
    queue.wake([hs.name]);
    await sleep(50);
    expect(hs.received).toHaveLength(2);

    hs.respond = () => ({ status: 200, json: {} });
    await queue.resetDestination(hs.name);
    await waitFor("delivery", async () => (await storage.federation.countQueuedPdus(hs.name)) === 0, 2_000);
    expect(hs.received).toHaveLength(3);
    expect(await queue.destination(hs.name)).toMatchObject({ failures: 0, retryAtTs: null, lastError: null });
  });

  it("resumes after a restart, respecting the persisted retry time", async () => {
    const port = await freePort();
    const destination = `localhost:${port}`;
    const first = makeQueues({ settings: { backoff: { initialMs: 400 } } });
    const bodies = await queueMessages(70, [destination]);
    first.wake([destination]);
    await waitFor("a failure", async () => (await failuresOf(destination)) === 1);
    const retryAtTs = (await first.destination(destination))?.retryAtTs as number;
    await first.close();
    await storage.close();

    // A new process: new storage handle over the same file, new queues, the receiver now up.
    storage = await openStorage({ engine: "sqlite", path: dbPath });
    const hs = await receiver(port);
    const second = makeQueues();
    await second.start();
    await waitFor("delivery", async () => (await storage.federation.countQueuedPdus(destination)) === 0);
    expect(hs.received[0]?.at).toBeGreaterThanOrEqual(retryAtTs - 5);
    expect(bodiesOf(hs.pdus())).toEqual(bodies);
    expect(hs.received.map((txn) => (txn.body.pdus as JsonObject[]).length)).toEqual([50, 20]);
    expect(await second.destination(destination)).toMatchObject({ failures: 0, retryAtTs: null });
  });

  it("sends EDUs, at most 100 per transaction, alongside PDUs", async () => {
    const hs = await receiver();
    const queue = makeQueues();
    const edus = Array.from({ length: 150 }, (_, n): JsonObject => ({ edu_type: "m.typing", content: { room_id: ROOM, user_id: `@u${n}:origin.test`, typing: true } }));
    await queueMessages(2, [hs.name]);
    await queue.queueEdus(edus.map((edu) => ({ destination: hs.name, edu })));

    await waitFor("150 EDUs", () => hs.edus().length >= 150);
    expect(hs.edus()).toEqual(edus);
    expect(hs.received.map((txn) => [(txn.body.pdus as JsonObject[]).length, (txn.body.edus as JsonObject[]).length])).toEqual([
      [2, 100],
      [0, 50],
    ]);
    await waitFor("EDU queue emptied", async () => (await storage.federation.peekEdus(hs.name, 10)).length === 0);
  });

  it("sends LPDUs ahead of queued PDUs and resolves each with the hub's verdict from failed_pdus", async () => {
    const hub = await receiver();
    hub.respond = () => ({ status: 200, json: { failed_pdus: { "$lpdu-b": { error: "@alice:origin.test cannot send m.room.power_levels" } } } });
    const queue = makeQueues();
    await queueMessages(2, [hub.name], "queued");
    const lpdus = [pdu(ROOM, "m.room.message", { body: "lpdu-a" }), pdu(ROOM, "m.room.power_levels", { body: "lpdu-b" }, { stateKey: "" })] as unknown as JsonObject[];

    const results = await queue.sendLpdus(hub.name, lpdus, ["$lpdu-a", "$lpdu-b"], 5_000);
    expect(results).toEqual([{ ok: true }, { ok: false, error: "@alice:origin.test cannot send m.room.power_levels" }]);
    expect(hub.received).toHaveLength(1);
    expect(bodiesOf(hub.pdus())).toEqual(["lpdu-a", "lpdu-b", "queued0", "queued1"]);
    expect(logs.find((l) => l.msg === "destination refused a PDU")).toMatchObject({ level: 40, event_id: "$lpdu-b", lpdu: true });
  });

  it("sends queued PDUs after a transaction that LPDUs filled", async () => {
    const hub = await receiver();
    const queue = makeQueues();
    const queued = await queueMessages(3, [hub.name], "queued");
    const lpdus = Array.from({ length: 50 }, (_, n) => pdu(ROOM, "m.room.message", { body: `lpdu${n}` }) as unknown as JsonObject);

    const results = await queue.sendLpdus(hub.name, lpdus, lpdus.map((_, n) => `$lpdu${n}`), 5_000);
    expect(results.every((result) => result.ok)).toBe(true);
    await waitFor("queued PDUs", async () => (await storage.federation.countQueuedPdus(hub.name)) === 0);
    expect(hub.received.map((txn) => (txn.body.pdus as JsonObject[]).length)).toEqual([50, 3]);
    expect(bodiesOf(hub.pdus())).toEqual([...lpdus.map((l) => (l.content as JsonObject).body), ...queued]);
  });

  it("rejects only the caller when an LPDU is not delivered in time; it stays queued and goes out later", async () => {
    const port = await freePort();
    const hubName = `localhost:${port}`;
    const queue = makeQueues({ settings: { backoff: { initialMs: 60_000 } } });
    const lpdu = pdu(ROOM, "m.room.message", { body: "late" }) as unknown as JsonObject;

    const sent = queue.sendLpdus(hubName, [lpdu], ["$late"], 150);
    await expect(sent).rejects.toThrow(FederationRequestError);
    await expect(sent).rejects.toThrow(/within 150 ms/);

    const hub = await receiver(port);
    queue.markReachable(hubName);
    await waitFor("late delivery", () => hub.received.length === 1);
    expect(bodiesOf(hub.pdus())).toEqual(["late"]);
  });

  it("keeps destinations independent: one that is down does not hold up the others", async () => {
    const [b, c] = [await receiver(), await receiver()] as [Receiver, Receiver];
    // Probed after the receivers listen, so the OS cannot hand the probed port to one of them.
    const down = `localhost:${await freePort()}`;
    b.respond = async () => {
      await sleep(5);
      return { status: 200, json: {} };
    };
    const queue = makeQueues({ settings: { backoff: { initialMs: 60_000 } } });
    const bodies = await queueMessages(60, [down, b.name, c.name]);
    queue.wake([down, b.name, c.name]);

    await waitFor("both up servers served", () => b.pdus().length >= 60 && c.pdus().length >= 60);
    expect(bodiesOf(b.pdus())).toEqual(bodies);
    expect(bodiesOf(c.pdus())).toEqual(bodies);
    await waitFor("the down server's failure", async () => (await failuresOf(down)) === 1);
    expect(await storage.federation.countQueuedPdus(down)).toBe(60);
  });

  it("close waits for the transaction in flight, then sends nothing more", async () => {
    const hs = await receiver();
    hs.respond = async () => {
      await sleep(150);
      return { status: 200, json: {} };
    };
    const queue = makeQueues();
    await queueMessages(60, [hs.name]);
    queue.wake([hs.name]);
    await waitFor("a transaction in flight", () => hs.inFlight === 1);
    await queue.close();
    // The first transaction's 200 came back and was acknowledged before close resolved.
    expect(await storage.federation.countQueuedPdus(hs.name)).toBe(10);
    queue.wake([hs.name]);
    await sleep(50);
    expect(hs.received).toHaveLength(1);
  });
});

describe("backoff, failed_pdus and the PDU cache (units)", () => {
  it("doubles from the initial wait up to the maximum, within ±20% jitter", () => {
    const settings = { initialMs: 500, maxMs: 15 * 60_000 };
    expect([1, 2, 3, 4].map((f) => retryDelayMs(f, settings, () => 0.5))).toEqual([500, 1000, 2000, 4000]);
    expect(retryDelayMs(1, settings, () => 0)).toBe(400);
    expect(retryDelayMs(1, settings, () => 0.999_999)).toBe(600);
    expect(retryDelayMs(20, settings, () => 0.5)).toBe(15 * 60_000);
    expect(retryDelayMs(5_000, settings, () => 0.5)).toBe(15 * 60_000);
  });

  it("reads failed_pdus defensively", () => {
    expect([...failedPdusOf({ failed_pdus: { $a: { error: "bad" }, $b: {} } })]).toEqual([
      ["$a", "bad"],
      ["$b", "rejected without a reason"],
    ]);
    expect(failedPdusOf({}).size).toBe(0);
    expect(failedPdusOf([]).size).toBe(0);
    expect(failedPdusOf(undefined).size).toBe(0);
  });

  it("shares one PDU object per event, drops the least recently used, and never serves a copy from before a redaction", () => {
    const cache = new PduCache(2);
    const full = messageEvent(ROOM, "secret");
    expect(cache.intern("$1", full)).toBe(full);
    expect(cache.intern("$1", structuredClone(full))).toBe(full);
    const redacted = { ...full, content: {} };
    expect(cache.intern("$1", redacted)).toBe(redacted);
    cache.intern("$2", messageEvent(ROOM, "two"));
    cache.intern("$1", redacted);
    cache.intern("$3", messageEvent(ROOM, "three"));
    expect(cache.size).toBe(2);
    const fresh2 = messageEvent(ROOM, "two");
    // $2 was the least recently used: evicted, so the fresh copy is taken.
    expect(cache.intern("$2", fresh2)).toBe(fresh2);
  });
});
