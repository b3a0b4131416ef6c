// How Bobbin's HTTP routes are declared: each API area builds a Router of routes and middleware
// ((deps) => Router), and app.ts compiles every mounted Router into one route table (dispatch.ts).
//
// The surface is the small part of express's that the route modules use — `(req, res, next)`
// handlers, `res.json`, `res.status`, `res.locals`, `req.params`, `req.query`, `req.body` — so that
// handlers read as they did; what is gone is express's per-request walk over every layer with a
// regular expression each, which cost more CPU than most handlers (docs/benchmarks.md).
import type { IncomingMessage, ServerResponse } from "node:http";

export interface Request extends IncomingMessage {
  method: string;
  url: string;
  /** The request target as received (path and query): what an X-Matrix signature covers. */
  originalUrl: string;
  /** The path of the request target, still percent-encoded. */
  path: string;
  /** The matched route's path parameters, percent-decoded. */
  params: Record<string, string>;
  /** The query string as node:querystring parses it: a repeated key gives an array. */
  query: Record<string, string | string[] | undefined>;
  /** The JSON body, once the app's body parser (or the X-Matrix check) has read it. */
  body: unknown;
  /** The client's address: the connection's, or what a trusted proxy's X-Forwarded-For names. */
  ip: string;
  /** The matched route's pattern under its mount (`/_matrix/client/v3/sync`): a metrics label. */
  routePattern?: string;
  /**
   * Set when no route serves this path with this method: the methods that routes do serve it
   * with (Client-Server API: a known path with the wrong method is 405, an unknown one 404).
   */
  allowedMethods?: string[];
}

export interface Response extends ServerResponse {
  /** What middleware hands on to the handlers (the requester, the X-Matrix origin, a logger). */
  locals: Record<string, unknown>;
  status(code: number): this;
  /** Sends `body` as JSON and ends the response. */
  json(body: unknown): void;
}

export type NextFunction = (error?: unknown) => void;

/** A middleware or route handler. A returned promise that rejects is passed on as an error. */
export type RequestHandler = (req: Request, res: Response, next: NextFunction) => unknown;

export type Method = "GET" | "PUT" | "POST" | "DELETE";

export type RouterLayer =
  | { kind: "use"; handler: RequestHandler | Router }
  | { kind: "route"; method: Method; path: string; handlers: RequestHandler[] };

/**
 * Routes and middleware in the order they are declared, which is the order a request meets them:
 * a middleware (`use`) runs for every request under the router's mount that reaches it, i.e. before
 * the routes declared after it and before the 404 of a path no route serves.
 *
 * Paths are relative to the mount, with `:name` parameters and optional `{/:name}` segments.
 */
export class Router {
  readonly layers: RouterLayer[] = [];
  /** [from, to]: paths under `to` are served under `from` too (see alias). */
  readonly aliases: Array<[string, string]> = [];

  use(...handlers: Array<RequestHandler | Router>): this {
    for (const handler of handlers) this.layers.push({ kind: "use", handler });
    return this;
  }

  get(path: string | readonly string[], ...handlers: RequestHandler[]): this {
    return this.route("GET", path, handlers);
  }

  put(path: string | readonly string[], ...handlers: RequestHandler[]): this {
    return this.route("PUT", path, handlers);
  }

  post(path: string | readonly string[], ...handlers: RequestHandler[]): this {
    return this.route("POST", path, handlers);
  }

  delete(path: string | readonly string[], ...handlers: RequestHandler[]): this {
    return this.route("DELETE", path, handlers);
  }

  /**
   * Serves every route of this router whose path starts with `to` under `from` as well (the
   * Client-Server API's `r0` paths are its `v3` paths under their pre-v1.1 name).
   */
  alias(from: string, to: string): this {
    this.aliases.push([from, to]);
    return this;
  }

  private route(method: Method, path: string | readonly string[], handlers: RequestHandler[]): this {
    for (const one of typeof path === "string" ? [path] : path) this.layers.push({ kind: "route", method, path: one, handlers });
    return this;
  }
}
