// The federation HTTP client: resolves a destination's server name, signs the request with X-Matrix
// and sends it over HTTPS with the certificate checked for the name resolution chose (LM draft
// "Transport", "Resolving Server Names", "Request Authentication").
import type { Logger } from "pino";
import type { JsonObject, JsonValue } from "../../core/json.js";
import type { KeyOrder } from "../../core/room-versions.js";
import type { SigningKey } from "../../core/signing.js";
import { FederationRequestError } from "./errors.js";
import type { HttpExchanger } from "./http-exchange.js";
import type { ServerResolver } from "./resolve.js";
import { signCanonicalRequest, signRequest, type BodylessContent } from "./x-matrix.js";

export type QueryValue = string | number | boolean;

export interface FederationRequestOptions {
  /** JSON body; sent and signed as is. POST and PUT without one send `{}` (the draft requires a body). */
  body?: JsonValue;
  /** Query parameters, percent-encoded and appended in the order given (arrays repeat the name). */
  query?: Record<string, QueryValue | readonly QueryValue[] | undefined>;
  timeoutMs?: number;
  /** Overrides the client's choice for this request (e.g. a classic Matrix peer that omits content). */
  bodyless?: BodylessContent;
  /** A body already encoded as canonical JSON (instead of `body`): sent and signed as is. */
  canonicalBody?: string;
}

export interface FederationResponse {
  status: number;
  /** The parsed JSON body; undefined when an error response is empty or not JSON. */
  json: JsonValue | undefined;
}

/** Fetches key endpoints (`/_matrix/key/v2/...`), which need no request signature. */
export type KeyFetcher = (serverName: string, path: string, init?: { method?: "GET" | "POST"; body?: JsonObject }) => Promise<FederationResponse>;

export interface FederationClient {
  /**
   * Sends a signed request to `destination` (a server name). `path` is already percent-encoded.
   * An HTTP error status is returned, not thrown; FederationRequestError means no usable answer.
   */
  request(destination: string, method: string, path: string, options?: FederationRequestOptions): Promise<FederationResponse>;
  keyFetcher(): KeyFetcher;
  close(): void;
}

export interface FederationClientOptions {
  serverName: string;
  /** Every current signing key: one Authorization header each. */
  signingKeys: readonly SigningKey[];
  resolver: ServerResolver;
  exchanger: HttpExchanger;
  /** Plain HTTP instead of HTTPS, for loopback tests only (`federation.allow_insecure_http`). */
  allowInsecureHttp?: boolean;
  timeoutMs?: number;
  maxResponseBytes?: number;
  /** How body-less requests are signed; the draft's `content: {}` by default. */
  bodyless?: BodylessContent;
  keyOrder?: KeyOrder;
  logger?: Logger;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 50 * 1024 * 1024;

/** `path?a=1&b=2`, percent-encoding names and values. */
export function withQuery(path: string, query: FederationRequestOptions["query"]): string {
  if (query === undefined) return path;
  const parts: string[] = [];
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined) continue;
    const values: readonly QueryValue[] = Array.isArray(value) ? (value as readonly QueryValue[]) : [value as QueryValue];
    for (const item of values) parts.push(`${encodeURIComponent(name)}=${encodeURIComponent(String(item))}`);
  }
  if (parts.length === 0) return path;
  return `${path}${path.includes("?") ? "&" : "?"}${parts.join("&")}`;
}

export function createFederationClient(options: FederationClientOptions): FederationClient {
  const scheme = options.allowInsecureHttp === true ? "http" : "https";
  const defaultTimeout = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;

  async function send(destination: string, method: string, uri: string, body: JsonValue | string | undefined, headers: Record<string, string | string[]>, timeoutMs: number) {
    const target = await options.resolver.resolve(destination);
    const payload = body === undefined ? undefined : Buffer.from(typeof body === "string" ? body : JSON.stringify(body), "utf8");
    if (payload !== undefined) headers["content-type"] = "application/json";
    const started = Date.now();
    const response = await options.exchanger.exchange(target, { method, path: uri, headers, ...(payload !== undefined ? { body: payload } : {}), timeoutMs, maxResponseBytes, label: destination }, scheme);
    options.logger?.debug({ destination, method, uri, status: response.status, ms: Date.now() - started }, "federation request");
    const text = response.body.toString("utf8");
    let json: JsonValue | undefined;
    if (text.trim() !== "") {
      try {
        json = JSON.parse(text) as JsonValue;
      } catch {
        json = undefined;
      }
    }
    if (json === undefined && response.status >= 200 && response.status < 300) {
      throw new FederationRequestError(destination, "bad_response", `${method} ${uri}: ${response.status} response is not JSON`);
    }
    return { status: response.status, json };
  }

  return {
    async request(destination, method, path, requestOptions = {}) {
      const upper = method.toUpperCase();
      const uri = withQuery(path, requestOptions.query);
      if (requestOptions.canonicalBody !== undefined) {
        const authorization = signCanonicalRequest({ method: upper, uri, origin: options.serverName, destination }, requestOptions.canonicalBody, options.signingKeys);
        return send(destination, upper, uri, requestOptions.canonicalBody, { authorization, accept: "application/json" }, requestOptions.timeoutMs ?? defaultTimeout);
      }
      const body = requestOptions.body ?? (upper === "POST" || upper === "PUT" ? {} : undefined);
      const authorization = signRequest({ method: upper, uri, origin: options.serverName, destination, content: body }, options.signingKeys, {
        bodyless: requestOptions.bodyless ?? options.bodyless ?? "empty-object",
        ...(options.keyOrder !== undefined ? { keyOrder: options.keyOrder } : {}),
      });
      return send(destination, upper, uri, body, { authorization, accept: "application/json" }, requestOptions.timeoutMs ?? defaultTimeout);
    },
    keyFetcher(): KeyFetcher {
      return (serverName, path, init = {}) => {
        const method = init.method ?? (init.body !== undefined ? "POST" : "GET");
        return send(serverName, method, path, init.body ?? (method === "POST" ? {} : undefined), { accept: "application/json" }, defaultTimeout);
      };
    },
    close() {
      options.exchanger.close();
    },
  };
}
