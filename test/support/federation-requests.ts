// Federation requests the way a remote server sends them, for tests that talk to a real Bobbin
// server as another server: X-Matrix signed (or deliberately not), over plain node:http so the
// request target goes out byte for byte as signed (fetch would normalise `..` and friends) and
// bodies may be anything, including invalid JSON and bodies over the size limit.
import { request as httpRequest } from "node:http";
import type { JsonValue } from "../../src/core/json.js";
import type { SigningKey } from "../../src/core/signing.js";
import { signRequest } from "../../src/federation/transport/x-matrix.js";

export interface RawResponse {
  status: number;
  /** The body as text. */
  text: string;
  /** The parsed body, or undefined when it is not JSON. `any`: tests assert on arbitrary JSON. */
  body: any;
}

export interface RawRequestOptions {
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  timeoutMs?: number;
}

/** One HTTP request to `baseUrl` (`http://host:port`) with `path` sent exactly as given. */
export function rawRequest(baseUrl: string, method: string, path: string, options: RawRequestOptions = {}): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[] | number> = { ...(options.headers ?? {}) };
    if (options.body !== undefined) {
      headers["content-type"] ??= "application/json";
      headers["content-length"] = Buffer.byteLength(options.body);
    }
    const req = httpRequest(
      { host: url.hostname, port: Number(url.port), method, path, headers, agent: false, timeout: options.timeoutMs ?? 20_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown;
          try {
            body = text.length > 0 ? JSON.parse(text) : undefined;
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, body });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${path.slice(0, 200)}: no answer within the timeout`)));
    req.on("error", reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** A server the test signs requests as: its name and signing key (e.g. a running TestServer). */
export interface RequestSigner {
  readonly serverName: string;
  readonly signingKey: SigningKey;
}

/** A server the test sends requests to. */
export interface RequestTarget {
  readonly serverName: string;
  readonly baseUrl: string;
}

/**
 * A federation request from `origin` to `target`, signed with the origin's key over `path` and
 * `body` (LM draft "Request Authentication"). `path` is the full request target, query included.
 */
export function signedRequest(target: RequestTarget, origin: RequestSigner, method: string, path: string, body?: JsonValue): Promise<RawResponse> {
  const [authorization] = signRequest({ method, uri: path, origin: origin.serverName, destination: target.serverName, content: body }, [origin.signingKey]);
  return rawRequest(target.baseUrl, method, path, {
    headers: { authorization: authorization as string },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}
