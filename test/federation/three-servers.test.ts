// Three Bobbin servers on loopback (LM draft "Sending Events"): the hub A runs as its own process
// (the real `bobbin start`, so it can be killed with SIGKILL), the participants B and C in this
// process. A room on A gets users of B and C; 1,000 messages from all three servers end in the
// same order with the same event IDs on every server; the hub dies mid-stream and comes back
// without losing an accepted event; a kicked server's last user stops the flow to that server.
import { jest } from "@jest/globals";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { openStorage } from "../../src/storage/index.js";
import { waitFor } from "../support/wait.js";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";

jest.setTimeout(180_000);

const root = fileURLToPath(new URL("../..", import.meta.url));
const tsx = pathToFileURL(createRequire(join(root, "package.json")).resolve("tsx")).href;
const federation = { allowInsecureHttp: true, trustedKeyServers: [], outbound: { backoff: { initialMs: 100, maxMs: 500 } } };

/** The hub as a child process on a fixed port and data directory, restartable. */
class HubProcess {
  readonly dataDir = mkdtempSync(join(tmpdir(), "bobbin-hub-"));
  readonly serverName: string;
  readonly baseUrl: string;
  private child: ChildProcess | undefined;

  constructor(readonly port: number) {
    this.serverName = `localhost:${port}`;
    this.baseUrl = `http://127.0.0.1:${port}`;
    const config = [
      `server_name: "${this.serverName}"`,
      `listeners: [{ host: 127.0.0.1, port: ${port} }]`,
      `data_dir: "${this.dataDir}"`,
      "database: { engine: sqlite }",
      "registration: { enabled: true, allow_guests: false }",
      "rate_limits: { login: { per_second: 1000, burst: 1000 }, register: { per_second: 1000, burst: 1000 }, message: { per_second: 100000, burst: 100000 } }",
      "federation: { allow_insecure_http: true }",
      "log_level: warn",
    ].join("\n");
    writeFileSync(join(this.dataDir, "bobbin.yaml"), `${config}\n`);
  }

  async start(): Promise<void> {
    this.child = spawn(process.execPath, ["--import", tsx, join(root, "src", "main.ts"), "start", "--config", join(this.dataDir, "bobbin.yaml")], {
      cwd: this.dataDir,
      env: { PATH: process.env.PATH ?? "", HOME: this.dataDir },
      stdio: ["ignore", "ignore", "inherit"],
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const up = await fetch(`${this.baseUrl}/_matrix/federation/v1/version`).then((r) => r.ok, () => false);
      if (up) return;
      if (Date.now() > deadline) throw new Error("the hub did not start");
      await sleep(100);
    }
  }

  kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
  }

  stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  }

  async request(method: string, path: string, options: { token?: string; body?: unknown } = {}): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const response = await fetch(this.baseUrl + path, { method, headers, ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}) });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  }

  async register(localpart: string): Promise<{ userId: string; accessToken: string }> {
    const password = "correct horse battery staple";
    const first = await this.request("POST", "/_matrix/client/v3/register", { body: { username: localpart, password } });
    const done = await this.request("POST", "/_matrix/client/v3/register", { body: { username: localpart, password, auth: { type: "m.login.dummy", session: first.body.session } } });
    if (done.status !== 200) throw new Error(`register ${localpart}: ${done.status}`);
    return { userId: done.body.user_id, accessToken: done.body.access_token };
  }

  /** The hub's log of a room, read from its database once it is stopped. */
  async log(roomId: string): Promise<string[]> {
    const storage = await openStorage({ engine: "sqlite", path: join(this.dataDir, "homeserver.db") });
    try {
      return (await storage.events.getRoomEvents(roomId, { direction: "forward", limit: 100_000 })).map((e) => e.eventId);
    } finally {
      await storage.close();
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function logOf(server: TestServer, roomId: string): Promise<string[]> {
  return (await server.homeserver.storage.events.getRoomEvents(roomId, { direction: "forward", limit: 100_000 })).map((e) => e.eventId);
}

let hub: HubProcess;
let b: TestServer;
let c: TestServer;

beforeAll(async () => {
  const [portA, portB, portC] = [await freePort(), await freePort(), await freePort()];
  hub = new HubProcess(portA);
  await hub.start();
  b = await startTestServer({ serverName: `localhost:${portB}`, port: portB, federation });
  c = await startTestServer({ serverName: `localhost:${portC}`, port: portC, federation });
});
afterAll(async () => {
  await hub?.kill();
  await b?.close();
  await c?.close();
  if (hub) rmSync(hub.dataDir, { recursive: true, force: true });
});

test("hub and two participants: 1,000 messages, a hub SIGKILL, a kick", async () => {
  const alice = await hub.register("alice");
  const bob = await b.register("bob");
  const carol = await c.register("carol");
  const created = await hub.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat" } });
  expect(created.status).toBe(200);
  const roomId: string = created.body.room_id;
  const room = encodeURIComponent(roomId);
  for (const [server, user] of [[b, bob], [c, carol]] as const) {
    const joined = await server.request("POST", `/_matrix/client/v3/join/${room}`, { token: user.accessToken, body: {} });
    expect(joined.status).toBe(200);
  }
  const carolJoin = (await logOf(c, roomId)).at(-1) as string;

  // 1,000 messages from the three servers, five at a time per sender.
  type Sender = (txn: string, body: string) => Promise<{ status: number; body: any }>;
  const senders: Array<[string, Sender]> = [
    ["A", (txn, body) => hub.request("PUT", `/_matrix/client/v3/rooms/${room}/send/m.room.message/${txn}`, { token: alice.accessToken, body: { msgtype: "m.text", body } })],
    ["B", (txn, body) => b.request("PUT", `/_matrix/client/v3/rooms/${room}/send/m.room.message/${txn}`, { token: bob.accessToken, body: { msgtype: "m.text", body } })],
    ["C", (txn, body) => c.request("PUT", `/_matrix/client/v3/rooms/${room}/send/m.room.message/${txn}`, { token: carol.accessToken, body: { msgtype: "m.text", body } })],
  ];
  const accepted: string[] = [];
  let failures = 0;
  const sendAll = async (prefix: string, total: number, tolerateFailures: boolean): Promise<void> => {
    await Promise.all(
      senders.map(async ([name, send], s) => {
        const mine = Array.from({ length: Math.floor(total / 3) + (s < total % 3 ? 1 : 0) }, (_, i) => i);
        for (let i = 0; i < mine.length; i += 5) {
          const results = await Promise.all(mine.slice(i, i + 5).map((n) => send(`${prefix}-${n}`, `${prefix} ${name} ${n}`).catch(() => ({ status: 0, body: undefined }))));
          for (const result of results) {
            if (result.status === 200) accepted.push(result.body.event_id);
            else if (tolerateFailures) failures++;
            else throw new Error(`send from ${name} failed: ${result.status} ${JSON.stringify(result.body)}`);
          }
        }
      }),
    );
  };
  await sendAll("m", 1000, false);
  expect(accepted).toHaveLength(1000);
  await waitFor("B and C to hold every message", async () => {
    const [logB, logC] = [await logOf(b, roomId), await logOf(c, roomId)];
    return accepted.every((id) => logB.includes(id) && logC.includes(id)) ? true : undefined;
  }, 60_000);

  // The hub dies with SIGKILL while all three keep sending, and comes back.
  const before = accepted.length;
  const streaming = sendAll("k", 600, true);
  await sleep(200);
  await hub.kill();
  await sleep(500);
  await hub.start();
  await streaming;
  // The kill did land mid-stream: some sends had succeeded, some failed (the hub's own clients).
  expect(accepted.length).toBeGreaterThan(before);
  expect(failures).toBeGreaterThan(0);
  // Sends that failed while the hub was down are retried by their clients (same txnId).
  await sendAll("k", 600, false);
  await waitFor("the participants to converge", async () => {
    const [logB, logC] = [await logOf(b, roomId), await logOf(c, roomId)];
    return accepted.every((id) => logB.includes(id) && logC.includes(id)) && logB.at(-1) === logC.at(-1) ? true : undefined;
  }, 60_000);

  // Alice kicks Carol, C's only user: C hears of the kick, and of nothing after it.
  const kicked = await hub.request("POST", `/_matrix/client/v3/rooms/${room}/kick`, { token: alice.accessToken, body: { user_id: carol.userId } });
  expect(kicked.status).toBe(200);
  await waitFor("the kick on C", async () => {
    const member = await c.homeserver.storage.events.getCurrentStateEvent(roomId, "m.room.member", carol.userId);
    return member?.pdu.content.membership === "leave" ? true : undefined;
  }, 60_000);
  const after = await hub.request("PUT", `/_matrix/client/v3/rooms/${room}/send/m.room.message/after-kick`, { token: alice.accessToken, body: { msgtype: "m.text", body: "after" } });
  await waitFor("the message after the kick on B", async () => ((await b.homeserver.storage.events.getEvent(after.body.event_id)) ? true : undefined), 60_000);
  await sleep(500);
  expect(await c.homeserver.storage.events.getEvent(after.body.event_id)).toBeUndefined();

  // Every log agrees from Carol's join to the kick: same events, same order; nothing accepted was lost.
  await hub.stop();
  const [logA, logB, logC] = [await hub.log(roomId), await logOf(b, roomId), await logOf(c, roomId)];
  for (const id of accepted) expect(logA).toContain(id);
  const from = (log: string[]): string[] => log.slice(log.indexOf(carolJoin), log.indexOf(carolJoin) + logC.length - logC.indexOf(carolJoin));
  expect(from(logA)).toEqual(logC.slice(logC.indexOf(carolJoin)));
  expect(from(logB)).toEqual(logC.slice(logC.indexOf(carolJoin)));
  expect(logB.slice(logB.indexOf(carolJoin))).toEqual(logA.slice(logA.indexOf(carolJoin)));
});
