// Rate limits and application services (registration `rate_limited`): a service registered with
// `rate_limited: false` is never limited; one with the default is limited for the users it
// masquerades as, but not for its own sender. Both services here are send-only (`url: null`).
import { parseRegistration, type AppserviceRegistration } from "../../src/appservice/registration.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

let server: TestServer;
let clock = 1_000_000;

function sendOnly(id: string, prefix: string, extra = ""): AppserviceRegistration {
  const text = `id: ${id}\nurl: null\nas_token: as_${id}\nhs_token: hs_${id}\nsender_localpart: ${prefix}bot\nnamespaces:\n  users:\n    - exclusive: true\n      regex: "@${prefix}.*"\n${extra}`;
  const verdict = parseRegistration(text, `${id}.yaml`);
  if (!verdict.ok) throw new Error(verdict.problems.join("; "));
  return verdict.registration;
}

beforeAll(async () => {
  server = await startTestServer({
    appservices: [sendOnly("free", "_free_", "rate_limited: false\n"), sendOnly("limited", "_lim_")],
    rateLimits: { message: { perSecond: 0.001, burst: 2 } },
    now: () => clock,
  });
});
afterAll(async () => server?.close());

async function as(token: string, method: string, path: string, body: unknown, userId?: string) {
  const url = new URL(server.baseUrl + path);
  if (userId) url.searchParams.set("user_id", userId);
  const response = await fetch(url, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Registers the ghost, creates a room as it and sends `count` messages; returns the statuses. */
async function burst(token: string, localpart: string, count: number): Promise<number[]> {
  const registered = await as(token, "POST", "/_matrix/client/v3/register", { type: "m.login.application_service", username: localpart, inhibit_login: true });
  expect(registered.status).toBe(200);
  const userId = `@${localpart}:localhost`;
  const room = await as(token, "POST", "/_matrix/client/v3/createRoom", {}, userId);
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) statuses.push((await as(token, "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(String(room.body.room_id))}/send/m.room.message/t${i}`, { msgtype: "m.text", body: `${i}` }, userId)).status);
  return statuses;
}

test("rate_limited: false exempts the service's users from the limits", async () => {
  expect(await burst("as_free", "_free_ghost", 6)).toEqual([200, 200, 200, 200, 200, 200]);
});

test("by default a masqueraded user is limited like anyone", async () => {
  expect(await burst("as_limited", "_lim_ghost", 4)).toEqual([200, 200, 429, 429]);
});

test("a send-only service's sender exists from start-up and is never limited", async () => {
  expect((await server.homeserver.storage.accounts.getUser("@_lim_bot:localhost"))?.appserviceId).toBe("limited");
  const room = await as("as_limited", "POST", "/_matrix/client/v3/createRoom", {});
  expect(room.status).toBe(200);
  for (let i = 0; i < 5; i++) expect((await as("as_limited", "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(String(room.body.room_id))}/send/m.room.message/s${i}`, { msgtype: "m.text", body: "x" })).status).toBe(200);
  // No url: nothing to ping.
  const ping = await as("as_limited", "POST", "/_matrix/client/v1/appservice/limited/ping", {});
  expect(ping.status).toBe(400);
  expect(ping.body.errcode).toBe("M_URL_NOT_SET");
});
