// The running homeserver publishes its keys for federation: `GET /_matrix/key/v2/server` signed by
// the key it lists, with `m.linearized`, and the notary answering for us; `.well-known` is 404
// unless configured.
import { writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { join } from "node:path";
import { decodeBase64 } from "../../src/core/base64.js";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import type { JsonObject } from "../../src/core/json.js";
import { verifyJsonSignatures } from "../../src/core/signing.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { createTestPki } from "./transport/test-pki.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ serverName: "keys.test" });
});
afterAll(async () => {
  await server?.close();
});

function verifiesWithItsOwnKey(response: JsonObject): boolean {
  const verifyKeys = response.verify_keys as Record<string, { key: string }>;
  return verifyJsonSignatures(response, "keys.test", (_entity, keyId) => {
    const key = verifyKeys[keyId]?.key;
    return key ? nativeEd25519.verifierFromPublicKey(decodeBase64(key)!) : undefined;
  }, "utf16").ok;
}

test("GET /_matrix/key/v2/server is signed by the key it lists and says m.linearized", async () => {
  const { status, body } = await server.request("GET", "/_matrix/key/v2/server");
  expect(status).toBe(200);
  expect(body.server_name).toBe("keys.test");
  expect(body["m.linearized"]).toBe(true);
  expect(Object.keys(body.verify_keys)).toEqual(["ed25519:test"]);
  expect(body.valid_until_ts).toBeGreaterThan(Date.now() + 11 * 3600_000);
  expect(verifiesWithItsOwnKey(body)).toBe(true);
});

test("the notary answers for this server", async () => {
  const { status, body } = await server.request("POST", "/_matrix/key/v2/query", { body: { server_keys: { "keys.test": {} } } });
  expect(status).toBe(200);
  expect(body.server_keys).toHaveLength(1);
  expect(verifiesWithItsOwnKey(body.server_keys[0])).toBe(true);
});

test("bad notary queries get errcodes, not 500s", async () => {
  expect((await server.request("POST", "/_matrix/key/v2/query", { rawBody: "{not json" })).body.errcode).toBe("M_NOT_JSON");
  expect((await server.request("POST", "/_matrix/key/v2/query", { body: { server_keys: [] } })).status).toBe(400);
  expect((await server.request("GET", "/_matrix/key/v2/query/not a server")).status).toBe(400);
});

test(".well-known/matrix/server is 404 M_NOT_FOUND when not configured", async () => {
  const { status, body } = await server.request("GET", "/.well-known/matrix/server");
  expect(status).toBe(404);
  expect(body.errcode).toBe("M_NOT_FOUND");
});

describe("the TLS federation listener", () => {
  test("serves the key endpoint over HTTPS with the configured certificate", async () => {
    const pki = createTestPki();
    const certificate = pki.issue(["DNS:keys.test", "IP:127.0.0.1"]);
    const certificatePath = join(pki.dir, "server.crt");
    const privateKeyPath = join(pki.dir, "server.key");
    writeFileSync(certificatePath, certificate.cert);
    writeFileSync(privateKeyPath, certificate.key);
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port: free } = probe.address() as { port: number };
        probe.close(() => resolve(free));
      });
    });
    const tlsServer = await startTestServer({
      serverName: "keys.test",
      federation: { allowInsecureHttp: false, trustedKeyServers: [], tls: { certificatePath, privateKeyPath, host: "127.0.0.1", port } },
    });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port, path: "/_matrix/key/v2/server", servername: "keys.test", ca: pki.caPem }, (res) => {
          let text = "";
          res.on("data", (chunk) => (text += String(chunk)));
          res.on("end", () => resolve(text));
        });
        req.on("error", reject);
        req.end();
      });
      const keys = JSON.parse(body) as JsonObject;
      expect(keys.server_name).toBe("keys.test");
      expect(verifiesWithItsOwnKey(keys)).toBe(true);
    } finally {
      await tlsServer.close();
      pki.remove();
    }
  });
});
