// The middleware in front of every authenticated federation endpoint (LM draft "Request
// Authentication"): verifies the X-Matrix headers over the request as received and puts the proven
// origin in `res.locals.origin`.
import type { NextFunction, Request, RequestHandler, Response } from "../../app/http/router.js";
import { parseStrictJson } from "../../core/canonical-json.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import type { JsonValue } from "../../core/json.js";
import type { KeyOrder } from "../../core/room-versions.js";
import { verifyRequest, type RequestKeyLookup } from "./x-matrix.js";

export interface FederationAuthDeps {
  serverName: string;
  lookupKey: RequestKeyLookup;
  /** Largest body read when no body parser ran before this middleware. */
  maxRequestBytes: number;
  keyOrder?: KeyOrder;
}

/**
 * Rejects the request with 401 M_FORBIDDEN unless its X-Matrix headers verify. The signature covers
 * the JSON-parsed body: the app's JSON body parser has usually parsed it already; if not, the body is
 * read here and parsed strictly (M_NOT_JSON when it is not JSON).
 */
export function requireFederationAuth(deps: FederationAuthDeps): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    authenticate(req, deps)
      .then((origin) => {
        res.locals.origin = origin;
        next();
      })
      .catch(next);
  };
}

async function authenticate(req: Request, deps: FederationAuthDeps): Promise<string> {
  const content = req.body !== undefined ? (req.body as JsonValue) : await readJsonBody(req, deps.maxRequestBytes);
  if (content !== undefined) req.body = content;
  const { origin } = await verifyRequest(
    // originalUrl is the request target as received, before any router stripped its mount path.
    { method: req.method, uri: req.originalUrl, authorization: authorizationHeaders(req), content },
    { serverName: deps.serverName, lookupKey: deps.lookupKey, ...(deps.keyOrder !== undefined ? { keyOrder: deps.keyOrder } : {}) },
  );
  return origin;
}

/** Every `Authorization` header: node keeps only the first in `req.headers`, so read the raw list. */
export function authorizationHeaders(req: Pick<Request, "rawHeaders">): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if ((req.rawHeaders[i] as string).toLowerCase() === "authorization") values.push(req.rawHeaders[i + 1] as string);
  }
  return values;
}

async function readJsonBody(req: Request, limit: number): Promise<JsonValue | undefined> {
  if (req.readableEnded) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new MatrixError(Errcode.TOO_LARGE, 413, "Request body too large");
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const parsed = parseStrictJson(Buffer.concat(chunks).toString("utf8"));
  if (!parsed.ok) throw new MatrixError(Errcode.NOT_JSON, 400, `Content not JSON: ${parsed.reason}`);
  return parsed.value;
}
