// One HTTP request/response exchange with a resolved server, over TLS (node:https) or, only when
// allowed, plain HTTP. The certificate is checked against the name resolution chose (LM draft
// "Resolving Server Names": the TLS name can differ from the host connected to), with SNI set to it.
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import tls from "node:tls";
import { FederationRequestError } from "./errors.js";

/** Where and how to connect: resolve.ts's answer for a server name. */
export interface ConnectTarget {
  /** Host name or IP address to connect to. */
  host: string;
  port: number;
  /** The name the server's certificate must be valid for (an IP address for IP literals). */
  tlsServerName: string;
  /** The `Host` header to send. */
  hostHeader: string;
}

export interface ExchangeRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  headers?: Record<string, string | string[]>;
  body?: Buffer;
  timeoutMs: number;
  maxResponseBytes: number;
  /** Names the server in errors (the destination's server name). */
  label: string;
}

export interface ExchangeResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Sends requests to resolved servers; holds the connection pools. */
export interface HttpExchanger {
  exchange(target: ConnectTarget, request: ExchangeRequest, scheme?: "https" | "http"): Promise<ExchangeResponse>;
  /** Closes pooled connections. */
  close(): void;
}

export interface HttpExchangerOptions {
  /** PEM certificates trusted in addition to the system's (a private or test CA). */
  extraCa?: string | Buffer | Array<string | Buffer>;
  /**
   * Connects somewhere else than `host:port` while keeping the TLS name and Host header, as curl's
   * `--connect-to` does: lets tests give servers real names on loopback.
   */
  connectTo?: (host: string, port: number) => { host: string; port: number } | undefined;
}

const TLS_ERROR = /CERT|SSL|TLS|EPROTO|SIGNATURE|ISSUER|ALTNAME|HANDSHAKE/i;

export function createHttpExchanger(options: HttpExchangerOptions = {}): HttpExchanger {
  const extra = options.extraCa === undefined ? [] : Array.isArray(options.extraCa) ? options.extraCa : [options.extraCa];
  // `ca` replaces Node's root store, so the system roots are listed with the extra ones.
  const ca = extra.length > 0 ? [...tls.rootCertificates, ...extra] : undefined;
  const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 32, ...(ca !== undefined ? { ca } : {}) });
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });

  return {
    exchange(target, request, scheme = "https") {
      const secure = scheme === "https";
      const dial = options.connectTo?.(target.host, target.port) ?? { host: target.host, port: target.port };
      const headers = { ...request.headers, host: target.hostHeader };
      if (request.body !== undefined) Object.assign(headers, { "content-length": String(request.body.length) });
      const common = { host: dial.host, port: dial.port, method: request.method, path: request.path, headers };
      return new Promise<ExchangeResponse>((resolve, reject) => {
        let settled = false;
        const fail = (error: FederationRequestError) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          req.destroy();
          reject(error);
        };
        const req = secure
          ? https.request({
              ...common,
              agent: httpsAgent,
              // SNI cannot carry an IP address (RFC 6066 section 3).
              ...(isIP(target.tlsServerName) === 0 ? { servername: target.tlsServerName } : {}),
              checkServerIdentity: (_host: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(target.tlsServerName, cert),
            })
          : http.request({ ...common, agent: httpAgent });
        const timer = setTimeout(() => fail(new FederationRequestError(request.label, "timeout", `no response within ${request.timeoutMs} ms`)), request.timeoutMs);
        req.on("error", (error: NodeJS.ErrnoException) => {
          const tlsFailure = secure && TLS_ERROR.test(`${error.code ?? ""} ${error.message}`);
          fail(new FederationRequestError(request.label, tlsFailure ? "tls" : "connect", `${request.method} ${request.path}: ${error.message}`, { cause: error }));
        });
        req.on("response", (res) => {
          const declared = Number(res.headers["content-length"]);
          if (Number.isFinite(declared) && declared > request.maxResponseBytes) {
            fail(new FederationRequestError(request.label, "too_large", `response of ${declared} bytes exceeds ${request.maxResponseBytes}`));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > request.maxResponseBytes) {
              fail(new FederationRequestError(request.label, "too_large", `response exceeds ${request.maxResponseBytes} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on("error", (error) => fail(new FederationRequestError(request.label, "bad_response", error.message, { cause: error })));
          res.on("end", () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
          });
        });
        req.end(request.body);
      });
    },
    close() {
      httpsAgent.destroy();
      httpAgent.destroy();
    },
  };
}
