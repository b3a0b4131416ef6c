// Federation over real TLS (DESIGN.md "TLS": at least one test federates over HTTPS with a test CA;
// LM draft "TLS Certificates"). Two servers without `allowInsecureHttp`, each named
// `localhost:<tls port>` and serving the federation API on a TLS listener whose certificate is for
// `localhost`, issued by a throwaway CA that both trust through `federation.extraCaPath`. Key
// fetches, make_join/send_join and the hub's fan-out all go over HTTPS; the client APIs stay on
// the plain loopback listener the tests talk to.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { jest } from "@jest/globals";
import type { FederationSettings } from "../../src/federation/transport/settings.js";
import { waitFor } from "../support/wait.js";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { createTestPki, type TestPki } from "./transport/test-pki.js";

jest.setTimeout(60_000);

let pki: TestPki;
let a: TestServer;
let b: TestServer;

/** Federation settings with a TLS listener on `port` for a certificate for localhost. */
function tlsFederation(name: string, port: number): FederationSettings {
  const certificate = pki.issue(["DNS:localhost", "IP:127.0.0.1"]);
  const certificatePath = join(pki.dir, `${name}.crt`);
  const privateKeyPath = join(pki.dir, `${name}-tls.key`);
  writeFileSync(certificatePath, certificate.cert);
  writeFileSync(privateKeyPath, certificate.key);
  return {
    allowInsecureHttp: false,
    trustedKeyServers: [],
    extraCaPath: pki.caPath,
    tls: { certificatePath, privateKeyPath, host: "127.0.0.1", port },
    outbound: { backoff: { initialMs: 100, maxMs: 1_000 } },
  };
}

beforeAll(async () => {
  pki = createTestPki();
  const [tlsA, tlsB] = [await freePort(), await freePort()];
  a = await startTestServer({ serverName: `localhost:${tlsA}`, federation: tlsFederation("a", tlsA) });
  b = await startTestServer({ serverName: `localhost:${tlsB}`, federation: tlsFederation("b", tlsB) });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  pki?.remove();
});

test("a user of B joins a public room on A over HTTPS, and A's message reaches B", async () => {
  // The federation port is TLS only: nothing there speaks plain HTTP, so the join below cannot
  // have gone over plain HTTP to it.
  const plain = await fetch(`http://127.0.0.1:${a.serverName.split(":")[1]}/_matrix/federation/v1/version`).then(
    (response) => response.status,
    () => "refused",
  );
  expect(plain).not.toBe(200);

  const alice = await a.register("alice");
  const bob = await b.register("bob");
  const created = await a.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat", name: "over TLS" } });
  expect(created.status).toBe(200);
  const roomId: string = created.body.room_id;

  const joined = await b.request("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: bob.accessToken, body: {} });
  expect(joined.body).toEqual({ room_id: roomId });
  expect(joined.status).toBe(200);
  // B learned A's key over HTTPS and A learned B's (A checked B's signature on the join LPDU).
  expect((await b.homeserver.storage.serverKeys.getServerKeys(a.serverName)).length).toBeGreaterThan(0);
  expect((await a.homeserver.storage.serverKeys.getServerKeys(b.serverName)).length).toBeGreaterThan(0);

  const sent = await a.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/tls1`, { token: alice.accessToken, body: { msgtype: "m.text", body: "hello over TLS" } });
  expect(sent.status).toBe(200);
  const onB = await waitFor("A's message on B", async () => (await b.homeserver.storage.events.getEvent(sent.body.event_id)) ?? undefined, 15_000);
  expect(onB.pdu.content.body).toBe("hello over TLS");

  // And B's client sees it.
  const messages = await b.request("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=5`, { token: bob.accessToken });
  expect(messages.status).toBe(200);
  expect(messages.body.chunk.map((e: { content: { body?: string } }) => e.content.body)).toContain("hello over TLS");
});
