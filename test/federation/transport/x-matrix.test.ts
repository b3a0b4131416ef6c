import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { Router } from "../../../src/app/http/router.js";
import pino from "pino";
import { createHttpApp } from "../../../src/app/http-app.js";
import { encodeBase64 } from "../../../src/core/base64.js";
import { encodeCanonicalJson } from "../../../src/core/canonical-json.js";
import { nativeEd25519, type Ed25519Verifier } from "../../../src/core/ed25519.js";
import { MatrixError } from "../../../src/core/errors.js";
import type { JsonValue } from "../../../src/core/json.js";
import type { SigningKey } from "../../../src/core/signing.js";
import { requireFederationAuth } from "../../../src/federation/transport/require-auth.js";
import {
  parseAuthorization,
  requestSigningObject,
  signRequest,
  verifyRequest,
  xMatrixParams,
  type ReceivedRequest,
  type RequestKeyLookup,
} from "../../../src/federation/transport/x-matrix.js";

function newKey(version: string): SigningKey {
  return { keyId: `ed25519:${version}`, signer: nativeEd25519.signerFromSeed(randomBytes(32)) };
}

const ORIGIN = "origin.example.org";
const US = "dest.example.org";
const keyA = newKey("a");
const keyB = newKey("b");

/** The origin's published keys; anything else is unknown. */
const lookupKey: RequestKeyLookup = async (server, keyId) => {
  if (server !== ORIGIN) return undefined;
  const key = keyId === keyA.keyId ? keyA : keyId === keyB.keyId ? keyB : undefined;
  return key && (nativeEd25519.verifierFromPublicKey(key.signer.publicKey) as Ed25519Verifier);
};

const PATH = "/_matrix/federation/v1/make_join/!room%3Aexample.org/%40alice%3Aorigin.example.org?ver=11&ver=I.1";
const BODY: JsonValue = { pdus: [{ type: "m.room.message", content: { body: "hi" } }], origin_server_ts: 5 };

function signed(overrides: Partial<ReceivedRequest> = {}, keys = [keyA]): ReceivedRequest {
  const method = "PUT";
  const uri = "/_matrix/federation/v2/send/txn1";
  const authorization = signRequest({ method, uri, origin: ORIGIN, destination: US, content: BODY }, keys);
  return { method, uri, authorization, content: BODY, ...overrides };
}

async function rejection(request: ReceivedRequest): Promise<MatrixError> {
  try {
    await verifyRequest(request, { serverName: US, lookupKey });
  } catch (error) {
    expect(error).toBeInstanceOf(MatrixError);
    const matrixError = error as MatrixError;
    expect(matrixError.errcode).toBe("M_FORBIDDEN");
    expect(matrixError.httpStatus).toBe(401);
    return matrixError;
  }
  throw new Error("expected the request to be refused");
}

describe("signing", () => {
  it("signs the draft's object: method, uri with query, origin, destination, content", () => {
    const headers = signRequest({ method: "PUT", uri: "/x?a=1", origin: ORIGIN, destination: US, content: { k: 1 } }, [keyA]);
    expect(headers).toHaveLength(1);
    const params = parseAuthorization(headers[0] as string);
    if (!params.ok) throw new Error(params.reason);
    const credentials = params.value[0]!;
    expect(credentials.scheme).toBe("X-Matrix");
    expect(Object.fromEntries(credentials.params)).toEqual({
      origin: ORIGIN,
      destination: US,
      key: "ed25519:a",
      sig: encodeBase64(keyA.signer.sign(new TextEncoder().encode('{"content":{"k":1},"destination":"dest.example.org","method":"PUT","origin":"origin.example.org","uri":"/x?a=1"}'))),
    });
  });

  it("a request without a body signs content {} (draft), or no content when asked (Matrix)", () => {
    const base = { method: "GET", uri: "/x", origin: ORIGIN, destination: US };
    expect(requestSigningObject(base)).toEqual({ ...base, content: {} });
    expect(requestSigningObject(base, "absent")).toEqual(base);
  });

  it("writes one header per key, every one verifying", async () => {
    const request = signed({}, [keyA, keyB]);
    expect(request.authorization).toHaveLength(2);
    await expect(verifyRequest(request, { serverName: US, lookupKey })).resolves.toEqual({ origin: ORIGIN, keyIds: ["ed25519:a", "ed25519:b"] });
  });
});

describe("verification", () => {
  it("accepts a correctly signed request and returns its origin", async () => {
    await expect(verifyRequest(signed(), { serverName: US, lookupKey })).resolves.toMatchObject({ origin: ORIGIN });
  });

  it("accepts a body-less GET signed either with content {} or without content", async () => {
    for (const bodyless of ["empty-object", "absent"] as const) {
      const authorization = signRequest({ method: "GET", uri: PATH, origin: ORIGIN, destination: US }, [keyA], { bodyless });
      await expect(verifyRequest({ method: "GET", uri: PATH, authorization, content: undefined }, { serverName: US, lookupKey })).resolves.toMatchObject({ origin: ORIGIN });
    }
  });

  it("refuses a request with a body signed as if it had none", async () => {
    const authorization = signRequest({ method: "PUT", uri: "/x", origin: ORIGIN, destination: US }, [keyA], { bodyless: "absent" });
    await rejection({ method: "PUT", uri: "/x", authorization, content: { a: 1 } });
  });

  it("refuses a request without Authorization header", async () => {
    expect((await rejection(signed({ authorization: [] }))).message).toMatch(/no Authorization header/);
  });

  it("refuses a request addressed to another server", async () => {
    const authorization = signRequest({ method: "PUT", uri: "/x", origin: ORIGIN, destination: "other.example.org", content: {} }, [keyA]);
    expect((await rejection({ method: "PUT", uri: "/x", authorization, content: {} })).message).toMatch(/destination/);
  });

  it("refuses a header without destination (required by the draft)", async () => {
    const request = signed();
    const header = (request.authorization[0] as string).replace(/destination="[^"]*",/, "");
    expect((await rejection({ ...request, authorization: [header] })).message).toMatch(/no destination/);
  });

  it("refuses a key the origin is not known to hold", async () => {
    const stranger = newKey("zzz");
    expect((await rejection(signed({}, [stranger]))).message).toMatch(/unknown key ed25519:zzz/);
  });

  it("refuses a signature by the right key ID but another private key", async () => {
    const impostor: SigningKey = { keyId: keyA.keyId, signer: nativeEd25519.signerFromSeed(randomBytes(32)) };
    expect((await rejection(signed({}, [impostor]))).message).toMatch(/does not verify/);
  });

  it("refuses a tampered method, uri or body", async () => {
    await rejection(signed({ method: "POST" }));
    await rejection(signed({ uri: "/_matrix/federation/v2/send/txn2" }));
    await rejection(signed({ uri: "/_matrix/federation/v2/send/txn1?extra=1" }));
    await rejection(signed({ content: { ...(BODY as object), origin_server_ts: 6 } }));
    await rejection(signed({ content: undefined }));
  });

  it("refuses an origin that is not a valid server name, even if it signed", async () => {
    const authorization = signRequest({ method: "GET", uri: "/x", origin: "bad_name!", destination: US }, [keyA]);
    expect((await rejection({ method: "GET", uri: "/x", authorization, content: undefined })).message).toMatch(/not a valid server name/);
  });

  it("refuses malformed headers", async () => {
    const good = signed().authorization[0] as string;
    for (const header of [
      "",
      "X-Matrix",
      "Bearer abc",
      'X-Matrix origin="unterminated',
      good.replace("X-Matrix ", "Basic "),
      good.replace(/sig="[^"]*"/, 'sig="!!notbase64!!"'),
      good.replace(/key="[^"]*"/, 'key="rsa:a"'),
      `${good},origin="${ORIGIN}"`,
      good.replace(/,sig="[^"]*"/, ""),
    ]) {
      await rejection(signed({ authorization: [header] }));
    }
  });

  it("refuses the whole request when one header of two fails", async () => {
    const request = signed({}, [keyA, keyB]);
    const [first, second] = request.authorization as [string, string];
    await rejection({ ...request, authorization: [first, second.replace(/sig="[^"]*"/, `sig="${"A".repeat(86)}"`)] });
    await rejection({ ...request, authorization: [first, "X-Matrix garbage"] });
    const unknown = signed({}, [newKey("unknown")]).authorization[0] as string;
    await rejection({ ...request, authorization: [first, unknown] });
  });

  it("refuses headers from two different origins", async () => {
    const other = signRequest({ method: "PUT", uri: "/_matrix/federation/v2/send/txn1", origin: "other.example.org", destination: US, content: BODY }, [keyB]);
    expect((await rejection({ ...signed(), authorization: [...signed().authorization, ...other] })).message).toMatch(/different origins/);
  });
});

describe("Authorization header parsing", () => {
  const parse = (header: string) => {
    const result = parseAuthorization(header);
    if (!result.ok) throw new Error(result.reason);
    return result.value.map((credentials) => ({ scheme: credentials.scheme, params: Object.fromEntries(credentials.params) }));
  };

  it("reads quoted and unquoted values, any name case, spaces around commas and =", () => {
    expect(parse('x-matrix  Origin=origin.example.org:8448 ,  DESTINATION = "dest.example.org", key=ed25519:a,sig=abc+/def')).toEqual([
      { scheme: "x-matrix", params: { origin: "origin.example.org:8448", destination: "dest.example.org", key: "ed25519:a", sig: "abc+/def" } },
    ]);
  });

  it("unescapes backslashes in quoted values and keeps commas inside quotes", () => {
    expect(parse('X-Matrix origin="a\\"b\\\\c",extra="x, y=z"')[0]?.params).toEqual({ origin: 'a"b\\c', extra: "x, y=z" });
  });

  it("ignores empty list elements and unknown parameters", () => {
    expect(parse("X-Matrix ,origin=a,,key=b, ,foo=bar")[0]?.params).toEqual({ origin: "a", key: "b", foo: "bar" });
  });

  it("splits two credentials joined into one header by a proxy", () => {
    expect(parse('X-Matrix origin=a,key="k1", X-Matrix origin=a,key="k2"').map((c) => c.params.key)).toEqual(["k1", "k2"]);
  });

  it("accepts the draft's `signature` name for `sig`, refusing a disagreeing pair", () => {
    const credentials = parseAuthorization('X-Matrix origin=a,destination=b,key="ed25519:k",signature=c2ln');
    expect(credentials.ok && xMatrixParams(credentials.value[0]!)).toEqual({ ok: true, value: { origin: "a", destination: "b", key: "ed25519:k", sig: "c2ln" } });
    const both = parseAuthorization("X-Matrix origin=a,destination=b,key=ed25519:k,sig=AAAA,signature=BBBB");
    expect(both.ok && xMatrixParams(both.value[0]!)).toEqual({ ok: false, reason: "sig and signature differ" });
  });

  it("refuses duplicated names, missing values, junk after a value and a missing scheme", () => {
    for (const header of ["X-Matrix origin=a,origin=b", "X-Matrix origin=", "X-Matrix origin", 'X-Matrix origin="a"b', "origin=a", "X-Matrix=a"]) {
      expect(parseAuthorization(header).ok).toBe(false);
    }
  });
});

describe("requireFederationAuth on a real socket", () => {
  let server: http.Server;
  let port: number;
  const seen: Array<{ origin: unknown; body: unknown }> = [];

  beforeAll(async () => {
    const router = new Router();
    router.use(requireFederationAuth({ serverName: US, lookupKey, maxRequestBytes: 65536 }));
    // Every path under the mount: the last middleware answers.
    router.use((req, res) => {
      seen.push({ origin: res.locals.origin, body: req.body });
      res.json({ origin: res.locals.origin });
    });
    const app = createHttpApp({ logger: pino({ level: "silent" }), maxRequestBytes: 65536, mounts: [["/_matrix/federation", router]] });
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  function send(method: string, path: string, authorization: string[], body?: string): Promise<{ status: number; json: unknown }> {
    return new Promise((resolve, reject) => {
      // Node's header types allow one Authorization value; an array sends one header line each.
      const headers: Record<string, string | string[]> = { authorization, ...(body !== undefined ? { "content-type": "application/json" } : {}) };
      const req = http.request(
        { host: "127.0.0.1", port, method, path, headers },
        (res) => {
          let text = "";
          res.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  it("passes a signed PUT with its body and puts the origin in res.locals", async () => {
    const uri = "/_matrix/federation/v2/send/t%201?x=%2F";
    const authorization = signRequest({ method: "PUT", uri, origin: ORIGIN, destination: US, content: BODY }, [keyA, keyB]);
    // Key order and spacing of the body on the wire do not matter: the parsed object is signed.
    const response = await send("PUT", uri, authorization, JSON.stringify({ origin_server_ts: 5, pdus: (BODY as { pdus: unknown }).pdus }, null, 2));
    expect(response).toEqual({ status: 200, json: { origin: ORIGIN } });
    expect(seen.at(-1)).toEqual({ origin: ORIGIN, body: BODY });
  });

  it("passes a signed GET without body, signed the draft's way or the Matrix/eigen-server way", async () => {
    for (const bodyless of ["empty-object", "absent"] as const) {
      const authorization = signRequest({ method: "GET", uri: PATH, origin: ORIGIN, destination: US }, [keyA], { bodyless });
      expect(await send("GET", PATH, authorization)).toEqual({ status: 200, json: { origin: ORIGIN } });
    }
  });

  it("answers 401 M_FORBIDDEN when the second of two headers is bad (node keeps only the first in req.headers)", async () => {
    const uri = "/_matrix/federation/v1/query/profile";
    const [good] = signRequest({ method: "GET", uri, origin: ORIGIN, destination: US }, [keyA]);
    const response = await send("GET", uri, [good as string, (good as string).replace('key="ed25519:a"', 'key="ed25519:b"')]);
    expect(response.status).toBe(401);
    expect(response.json).toMatchObject({ errcode: "M_FORBIDDEN" });
  });

  it("answers 401 M_FORBIDDEN for a body changed after signing", async () => {
    const uri = "/_matrix/federation/v2/send/t2";
    const authorization = signRequest({ method: "PUT", uri, origin: ORIGIN, destination: US, content: BODY }, [keyA]);
    const response = await send("PUT", uri, authorization, JSON.stringify({ ...(BODY as object), extra: true }));
    expect(response).toMatchObject({ status: 401, json: { errcode: "M_FORBIDDEN" } });
  });

  it("reads bodies strictly: a number canonical JSON forbids is 400 M_NOT_JSON, before any signature check", async () => {
    const uri = "/_matrix/federation/v2/send/t3";
    const authorization = signRequest({ method: "PUT", uri, origin: ORIGIN, destination: US, content: BODY }, [keyA]);
    for (const body of ['{"origin_server_ts": 5.0}', '{"n": 1e3}', '{"n": 9007199254740992}']) {
      expect(await send("PUT", uri, authorization, body)).toMatchObject({ status: 400, json: { errcode: "M_NOT_JSON" } });
    }
  });

  it("answers 401 M_FORBIDDEN without an Authorization header", async () => {
    expect(await send("GET", "/_matrix/federation/v1/version", [])).toMatchObject({ status: 401, json: { errcode: "M_FORBIDDEN" } });
  });

  it("canonical JSON of the signed object is what the signature covers", () => {
    const object = requestSigningObject({ method: "GET", uri: "/x", origin: ORIGIN, destination: US });
    expect(encodeCanonicalJson(object, "utf16")).toBe('{"content":{},"destination":"dest.example.org","method":"GET","origin":"origin.example.org","uri":"/x"}');
  });
});
