// A plain-HTTP proxy on 127.0.0.1 that forwards every request to another local port and records
// the exchange. Each server's name advertises the proxy's port, so every federation request
// between Bobbin and eigen passes through one of these and can be quoted when a test fails.
import { createServer, request, type IncomingHttpHeaders, type Server } from "node:http";

export interface Exchange {
  /** Which server was called ("bobbin" or "eigen"). */
  to: string;
  method: string;
  path: string;
  authorization?: string;
  requestBody: string;
  /** 0 while (or if) no answer came. */
  status: number;
  responseBody: string;
}

export interface RecordingProxy {
  readonly port: number;
  readonly exchanges: Exchange[];
  close(): Promise<void>;
}

async function readBody(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

/** Listens on `port` and forwards to `targetPort`, recording into the shared `exchanges` list. */
export async function startRecordingProxy(options: { port: number; targetPort: number; label: string; exchanges: Exchange[] }): Promise<RecordingProxy> {
  const { port, targetPort, label, exchanges } = options;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const requestBody = await readBody(req);
      const headers: IncomingHttpHeaders = { ...req.headers, "content-length": String(requestBody.length) };
      // Recorded when the request arrives, so a request that never gets an answer shows as status 0.
      const exchange: Exchange = {
        to: label,
        method: req.method ?? "",
        path: req.url ?? "",
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        requestBody: requestBody.toString("utf8"),
        status: 0,
        responseBody: "",
      };
      exchanges.push(exchange);
      const upstream = request({ host: "127.0.0.1", port: targetPort, method: req.method, path: req.url, headers }, async (upstreamRes) => {
        const responseBody = await readBody(upstreamRes);
        exchange.status = upstreamRes.statusCode ?? 0;
        exchange.responseBody = responseBody.toString("utf8");
        const { "transfer-encoding": _chunked, ...responseHeaders } = upstreamRes.headers;
        res.writeHead(upstreamRes.statusCode ?? 502, { ...responseHeaders, "content-length": String(responseBody.length) });
        res.end(responseBody);
      });
      upstream.on("error", (error) => {
        exchange.status = 502;
        exchange.responseBody = String(error);
        res.writeHead(502).end();
      });
      upstream.end(requestBody);
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return {
    port,
    exchanges,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The recorded exchanges as short lines (bodies cut to `limit` characters), for failure messages and reports. */
export function describeExchanges(exchanges: readonly Exchange[], limit = 600): string {
  const cut = (text: string): string => (text.length > limit ? `${text.slice(0, limit)}…(${text.length} chars)` : text);
  return exchanges
    .map((e) => `→ ${e.to}: ${e.method} ${e.path}\n   request: ${cut(e.requestBody) || "(empty)"}\n   ${e.status === 0 ? "no answer (yet)" : `${e.status}: ${cut(e.responseBody) || "(empty)"}`}`)
    .join("\n");
}
