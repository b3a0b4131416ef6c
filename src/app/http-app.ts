// The HTTP application: CORS, request logging with request IDs, body parsing, the API routers
// compiled into one route table (http/dispatch.ts), and the one error handler that turns
// MatrixError into `{errcode, error}`.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from "node:http";
import bodyParser from "body-parser";
import type { Logger } from "pino";
import proxyAddr from "proxy-addr";
import { Errcode, MatrixError } from "../core/errors.js";
import { createDispatcher } from "./http/dispatch.js";
import type { NextFunction, Request, RequestHandler, Response, Router } from "./http/router.js";

export interface HttpAppOptions {
  logger: Logger;
  /** Largest JSON request body accepted, in bytes (M_TOO_LARGE above it). */
  maxRequestBytes: number;
  /** Times every request (admin/metrics.ts); absent when metrics are disabled. */
  observeRequest?: RequestHandler;
  /** Routers mounted under their prefix, e.g. ["/_matrix/client", clientRouter]. */
  mounts: Array<[string, Router]>;
  /**
   * Reverse proxies whose X-Forwarded-For names the client (config `trusted_proxies`: addresses,
   * subnets, or loopback, linklocal, uniquelocal); absent: the connection's address is the client's.
   */
  trustedProxies?: readonly string[];
}

/** A request listener for node's HTTP(S) servers, and a shortcut to listen on one (tests). */
export type HttpApp = RequestListener & { listen(port: number, host: string, listening?: () => void): Server };

export function createHttpApp(options: HttpAppOptions): HttpApp {
  // Clients do not always send a JSON content type; every request body the API takes is JSON.
  // The Federation API reads its bodies itself, strictly (canonical-JSON numbers), inside the
  // X-Matrix check (federation/transport/require-auth.ts).
  const parseJson = bodyParser.json({ limit: options.maxRequestBytes, strict: false, type: () => true }) as unknown as RequestHandler;
  const jsonBody: RequestHandler = (req, res, next) => (req.path.startsWith("/_matrix/federation/") ? next() : parseJson(req, res, next));
  const trust = options.trustedProxies && options.trustedProxies.length > 0 ? proxyAddr.compile([...options.trustedProxies]) : undefined;
  const dispatch = createDispatcher({
    before: [...(options.observeRequest ? [options.observeRequest] : []), cors, requestLogging(options.logger), jsonBody],
    mounts: options.mounts,
    clientAddress: (req) => (trust ? proxyAddr(req, trust) : (req.socket.remoteAddress ?? "")),
    onError: errorHandler(options.logger),
  });
  const app = (req: IncomingMessage, res: ServerResponse): void => dispatch(req, res);
  return Object.assign(app, {
    listen(port: number, host: string, listening?: () => void): Server {
      return createServer(app).listen(port, host, listening);
    },
  });
}

/** Browsers' clients need CORS on every Matrix endpoint (Client-Server API "Web Browser Clients"). */
function cors(req: Request, res: Response, next: NextFunction): void {
  res.setHeader("Access-Control-Allow-Origin", "*");
  res.setHeader("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
  res.setHeader("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization");
  if (req.method === "OPTIONS") {
    res.status(204).end();
    return;
  }
  next();
}

/**
 * Request IDs are this process's random prefix and a counter (unique across restarts, and cheaper
 * than a UUID per request); the request's child logger is made only when something logs with it.
 */
function requestLogging(logger: Logger) {
  const prefix = randomBytes(4).toString("hex");
  let counter = 0;
  const debug = logger.isLevelEnabled("debug");
  return (req: Request, res: Response, next: NextFunction): void => {
    counter += 1;
    const requestId = `${prefix}-${counter.toString(36)}`;
    const started = process.hrtime.bigint();
    let log: Logger | undefined;
    Object.defineProperty(res.locals, "log", { get: () => (log ??= logger.child({ request_id: requestId })), enumerable: true });
    res.setHeader("X-Request-Id", requestId);
    res.on("finish", () => {
      if (!debug && res.statusCode < 500) return;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const line = { request_id: requestId, method: req.method, path: req.path, status: res.statusCode, ms: Math.round(ms * 10) / 10 };
      if (res.statusCode >= 500) logger.warn(line, "request failed");
      else logger.debug(line, "request");
    });
    next();
  };
}

/** Body-parser failures carry a `type`; everything else unexpected is a 500 with no details. */
function errorHandler(logger: Logger) {
  return (error: unknown, req: Request, res: Response): void => {
    let matrixError: MatrixError;
    if (error instanceof MatrixError) {
      matrixError = error;
    } else if (isBodyParserError(error, "entity.parse.failed")) {
      matrixError = new MatrixError(Errcode.NOT_JSON, 400, "Content not JSON");
    } else if (isBodyParserError(error, "entity.too.large")) {
      matrixError = new MatrixError(Errcode.TOO_LARGE, 413, "Request body too large");
    } else if (isBodyParserError(error, "encoding.unsupported") || isBodyParserError(error, "charset.unsupported")) {
      matrixError = new MatrixError(Errcode.NOT_JSON, 400, "Unsupported request body encoding");
    } else {
      const log = (res.locals.log as Logger | undefined) ?? logger;
      log.error({ err: error, method: req.method, path: req.path }, "unhandled error");
      matrixError = new MatrixError(Errcode.UNKNOWN, 500, "Internal server error");
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    const retryAfterMs = matrixError.extra.retry_after_ms;
    if (typeof retryAfterMs === "number") res.setHeader("Retry-After", String(Math.ceil(retryAfterMs / 1000)));
    res.status(matrixError.httpStatus).json(matrixError.toJSON());
  };
}

function isBodyParserError(error: unknown, type: string): boolean {
  return typeof error === "object" && error !== null && (error as { type?: unknown }).type === type;
}
