// The application services' queues as an operator sees them: `GET /_bobbin/admin/v1/appservices`
// (server admins only) lists each service's cursor, how far behind it is, the transaction in
// flight, its failures and next retry; and each change of state (backing off, delivering again)
// is one info line in the log.
import { jest } from "@jest/globals";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { startHomeserver, type Homeserver } from "../../src/app/homeserver.js";
import { parseRegistration } from "../../src/appservice/registration.js";
import { freePort, sqliteHomeserverSettings } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";
import { EchoBridge, echoRegistration } from "./echo-bridge.js";

jest.setTimeout(60_000);

let homeserver: Homeserver;
let baseUrl: string;
let dataDir: string;
let bridge: EchoBridge;
const logLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  const port = await freePort();
  const echo = echoRegistration({ port, serverName: "localhost" });
  const sendOnly = parseRegistration(
    ["id: notices", "url: null", "as_token: notices-as-token", "hs_token: notices-hs-token", "sender_localpart: notices", "namespaces: { users: [], aliases: [], rooms: [] }"].join("\n"),
    "notices.yaml",
  );
  if (!sendOnly.ok) throw new Error(sendOnly.problems.join("; "));
  dataDir = mkdtempSync(join(tmpdir(), "bobbin-as-admin-"));
  // The real server with a logger whose lines the test reads.
  homeserver = await startHomeserver(sqliteHomeserverSettings(dataDir, {
    logger: pino({ level: "info" }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) }),
    appservices: [echo.loaded, sendOnly.registration],
    appservicePusher: { backoff: { initialMs: 100, maxMs: 400, jitter: 0.2 } },
  }));
  baseUrl = homeserver.urls[0]!;
  // Not started yet: the first transaction fails.
  bridge = new EchoBridge(echo.loaded, baseUrl, { port, serverName: "localhost" });
});

afterAll(async () => {
  await bridge?.stop();
  await homeserver?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function call(method: string, path: string, token: string | undefined, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(baseUrl + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: response.status, body: await response.json() };
}

async function register(localpart: string): Promise<{ userId: string; token: string }> {
  const password = "correct horse battery staple";
  const first = await call("POST", "/_matrix/client/v3/register", undefined, { username: localpart, password });
  const done = await call("POST", "/_matrix/client/v3/register", undefined, { username: localpart, password, auth: { type: "m.login.dummy", session: first.body.session } });
  if (done.status !== 200) throw new Error(`register ${localpart}: ${done.status}`);
  return { userId: done.body.user_id, token: done.body.access_token };
}

type Listed = { id: string; url: string | null; state?: string; stream_pos?: number; behind?: number; txn_in_flight?: string | null; failures?: number; last_error?: string | null; next_retry_ts?: number | null };

test("admins see each queue, backing off while the bridge is down and delivering once it is back; each change of state is logged at info", async () => {
  const admin = await register("operator");
  await homeserver.storage.accounts.updateUser(admin.userId, { isAdmin: true });
  const alice = await register("alice");
  expect((await call("GET", "/_bobbin/admin/v1/appservices", alice.token)).status).toBe(403);

  const idle = await call("GET", "/_bobbin/admin/v1/appservices", admin.token);
  expect(idle.status).toBe(200);
  expect(idle.body.total).toBe(2);
  expect(idle.body.appservices[0]).toMatchObject({ id: "echo", url: bridge.registration.url, state: "delivering", failures: 0, txn_in_flight: null, next_retry_ts: null });
  // A send-only service has no queue.
  expect(idle.body.appservices[1]).toEqual({ id: "notices", url: null });

  // An invite of the bot is for the bridge, which is down.
  const created = await call("POST", "/_matrix/client/v3/createRoom", alice.token, { invite: [bridge.botUserId] });
  expect(created.status).toBe(200);
  const down = await waitFor("the queue backing off", async () => {
    const listed = (await call("GET", "/_bobbin/admin/v1/appservices", admin.token)).body.appservices[0] as Listed;
    return listed.state === "backing_off" ? listed : undefined;
  });
  expect(down.failures).toBeGreaterThanOrEqual(1);
  expect(down.txn_in_flight).toBe("1");
  expect(down.last_error).toEqual(expect.any(String));
  expect(down.next_retry_ts).toBeGreaterThan(Date.now() - 1_000);
  expect(down.behind).toBeGreaterThan(0);
  const backingOff = logLines.find((l) => l.appservice === "echo" && l.state === "backing_off");
  expect(backingOff).toMatchObject({ level: 30, previous_state: "delivering", txn_id: "1" });

  await bridge.start();
  const back = await waitFor("the queue delivering again", async () => {
    const listed = (await call("GET", "/_bobbin/admin/v1/appservices", admin.token)).body.appservices[0] as Listed;
    return listed.state === "delivering" && listed.txn_in_flight === null ? listed : undefined;
  });
  expect(back).toMatchObject({ failures: 0, last_error: null, next_retry_ts: null });
  expect(bridge.events.some((e) => e.type === "m.room.member" && e.state_key === bridge.botUserId)).toBe(true);
  expect(logLines.find((l) => l.appservice === "echo" && l.state === "delivering")).toMatchObject({ level: 30, previous_state: "backing_off" });
  // One line per change, not per retry.
  expect(logLines.filter((l) => l.appservice === "echo" && l.state === "backing_off")).toHaveLength(1);
});
