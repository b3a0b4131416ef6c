// Compiles mounted Routers (router.ts) into one route table and answers requests from it: one
// radix-tree lookup (find-my-way) finds the route and its path parameters, then the handlers run in
// a chain computed once at start-up — the app's middleware, the middleware of the route's routers
// declared before it, the route's own handlers. A path no route serves runs the middleware its
// mounts declare (authentication before a 404, as in the admin API) and then the 404/405.
import type { IncomingMessage, ServerResponse } from "node:http";
import { parse as parseQuery } from "node:querystring";
import findMyWay from "find-my-way";
import { Errcode, MatrixError } from "../../core/errors.js";
import { Router, type Method, type NextFunction, type Request, type RequestHandler, type Response } from "./router.js";

const METHODS: readonly Method[] = ["GET", "PUT", "POST", "DELETE"];

export interface DispatchOptions {
  /** Middleware every request meets first, in order. */
  before: readonly RequestHandler[];
  /** Routers under their mount path ("/" for the root), in the order requests meet them. */
  mounts: ReadonlyArray<[string, Router]>;
  /** The client address of a request (`req.ip`). */
  clientAddress: (req: IncomingMessage) => string;
  /** Any error a handler throws, rejects with or passes to `next`; also the final 404 or 405. */
  onError: (error: unknown, req: Request, res: Response) => void;
}

/** A middleware declared with `use`, for the requests under `prefix` ("" for all). */
interface Middleware {
  prefix: string;
  handler: RequestHandler;
}

type Entry = ({ kind: "use" } & Middleware) | { kind: "route"; method: Method; pattern: string; handlers: RequestHandler[] };

/** What the route table holds for one route. */
interface CompiledRoute {
  pattern: string;
  /** Everything that runs for it, in order. */
  chain: RequestHandler[];
  /** The middleware after it: what a `next()` from its last handler reaches before the 404. */
  after: RequestHandler[];
}

export function createDispatcher(options: DispatchOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const entries: Entry[] = [];
  for (const [mount, router] of options.mounts) flatten(router, mount === "/" ? "" : mount, entries);
  const middleware = entries.filter((entry): entry is { kind: "use" } & Middleware => entry.kind === "use");

  // Matrix paths are case-sensitive; a trailing slash is the same path (as express's non-strict routing).
  const table = findMyWay({ caseSensitive: true, ignoreTrailingSlash: true });
  entries.forEach((entry, index) => {
    if (entry.kind !== "route") return;
    // Two routers serving the same route: the first declared wins, as the request would meet it first.
    if (table.hasRoute(entry.method, entry.pattern)) return;
    const under = (m: Middleware) => covers(m.prefix, entry.pattern);
    const compiled: CompiledRoute = {
      pattern: entry.pattern,
      chain: [...options.before, ...entries.slice(0, index).filter((e): e is { kind: "use" } & Middleware => e.kind === "use" && under(e)).map((m) => m.handler), ...entry.handlers],
      after: entries.slice(index + 1).filter((e): e is { kind: "use" } & Middleware => e.kind === "use" && under(e)).map((m) => m.handler),
    };
    table.on(entry.method, entry.pattern, () => undefined, compiled);
  });

  const find = (method: string, path: string): { store: CompiledRoute; params: Record<string, string | undefined> } | undefined => {
    const found = table.find(method as Method, path);
    return found ? { store: found.store as CompiledRoute, params: found.params } : undefined;
  };

  return (incoming, outgoing) => {
    const req = incoming as Request;
    const res = outgoing as Response;
    const url = req.url ?? "/";
    const queryAt = url.indexOf("?");
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    req.originalUrl = url;
    req.path = path;
    req.query = queryAt === -1 ? {} : parseQuery(url.slice(queryAt + 1));
    req.params = {};
    req.body = undefined;
    req.ip = options.clientAddress(req);
    res.locals = {};
    res.json = sendJson;
    res.status = setStatus;
    const fail = (error: unknown): void => options.onError(error, req, res);
    const notFound = (): void => fail(unrecognized(req));

    // HEAD is GET without the body (node leaves the body out of a HEAD response itself).
    const found = find(req.method, path) ?? (req.method === "HEAD" ? find("GET", path) : undefined);
    if (found) {
      req.params = found.params as Record<string, string>;
      req.routePattern = found.store.pattern;
      run(found.store.chain, req, res, (error) => (error === undefined ? run(found.store.after, req, res, (later) => (later === undefined ? notFound() : fail(later))) : fail(error)));
      return;
    }
    // A route's path with a parameter that does not percent-decode (`%ZZ`, `%E2%82`): the request
    // is bad, not unknown. (The table finds no route for it: it cannot decode the parameter.)
    const decodable = decodableSegments(path);
    if (decodable !== path && find(req.method, decodable)) {
      fail(new MatrixError(Errcode.INVALID_PARAM, 400, "The request path is not valid percent-encoding"));
      return;
    }
    req.allowedMethods = METHODS.filter((method) => method !== req.method && find(method, path) !== undefined);
    const chain = [...options.before, ...middleware.filter((m) => covers(m.prefix, path)).map((m) => m.handler)];
    run(chain, req, res, (error) => (error === undefined ? notFound() : fail(error)));
  };
}

/** The 404 or 405 (M_UNRECOGNIZED) of a request no route served. */
export function unrecognized(req: Request): MatrixError {
  return req.allowedMethods !== undefined && req.allowedMethods.length > 0
    ? new MatrixError(Errcode.UNRECOGNIZED, 405, `Method ${req.method} is not allowed on ${req.path}`)
    : new MatrixError(Errcode.UNRECOGNIZED, 404, `Unrecognized request: ${req.method} ${req.path}`);
}

/** Appends the router's routes and middleware, with `mount` in front of their paths. */
function flatten(router: Router, mount: string, entries: Entry[]): void {
  for (const layer of router.layers) {
    if (layer.kind === "use") {
      // A router used as middleware: its own layers, in place.
      if (layer.handler instanceof Router) flatten(layer.handler, mount, entries);
      else entries.push({ kind: "use", prefix: mount, handler: layer.handler });
      continue;
    }
    const paths = withOptionalSegments(layer.path);
    for (const [from, to] of router.aliases) for (const path of [...paths]) if (path.startsWith(to)) paths.push(from + path.slice(to.length));
    for (const path of paths) entries.push({ kind: "route", method: layer.method, pattern: mount + path, handlers: layer.handlers });
  }
}

/** `/state/:eventType{/:stateKey}` is served as `/state/:eventType` and `/state/:eventType/:stateKey`. */
function withOptionalSegments(path: string): string[] {
  const optional = /\{([^{}]*)\}/.exec(path);
  if (!optional) return [path];
  const before = path.slice(0, optional.index);
  const after = path.slice(optional.index + optional[0].length);
  return [...withOptionalSegments(before + after), ...withOptionalSegments(before + (optional[1] ?? "") + after)];
}

/** `path` with every segment that does not percent-decode replaced by `_`. */
function decodableSegments(path: string): string {
  if (!path.includes("%")) return path;
  return path
    .split("/")
    .map((segment) => {
      try {
        decodeURIComponent(segment);
        return segment;
      } catch {
        return "_";
      }
    })
    .join("/");
}

/** Whether a middleware declared under `prefix` sees requests for `path` (whole segments only). */
function covers(prefix: string, path: string): boolean {
  return prefix === "" || path === prefix || path.startsWith(`${prefix}/`);
}

/**
 * Runs `chain` as express would: each handler gets a `next` that runs the following one, and a
 * throw, a rejected promise or `next(error)` skips to `done(error)`. `done` runs at most once.
 */
function run(chain: readonly RequestHandler[], req: Request, res: Response, done: (error?: unknown) => void): void {
  let index = 0;
  let finished = false;
  const finish = (error?: unknown): void => {
    if (finished) return;
    finished = true;
    done(error);
  };
  const next: NextFunction = (error?: unknown) => {
    if (error !== undefined && error !== null && error !== false) {
      finish(error);
      return;
    }
    const handler = chain[index++];
    if (handler === undefined) {
      finish();
      return;
    }
    let result: unknown;
    try {
      result = handler(req, res, next);
    } catch (thrown) {
      finish(thrown ?? new Error("a handler threw without a value"));
      return;
    }
    if (result instanceof Promise) result.then(undefined, (rejected: unknown) => finish(rejected ?? new Error("a handler's promise was rejected without a reason")));
  };
  next();
}

function sendJson(this: Response, body: unknown): void {
  const text = JSON.stringify(body) ?? "";
  if (!this.hasHeader("Content-Type")) this.setHeader("Content-Type", "application/json; charset=utf-8");
  this.setHeader("Content-Length", Buffer.byteLength(text));
  this.end(text);
}

function setStatus(this: Response, code: number): Response {
  this.statusCode = code;
  return this;
}
