// GET /health for load balancers and orchestrators (issue 7 "Observability"): 200 while the
// database answers and takes writes, 503 when it does not, so a broken instance is taken out of
// rotation. No authentication: it tells nothing beyond up or down.
import { Router, type Request, type Response } from "../app/http/router.js";
import type { Logger } from "pino";
import type { Storage } from "../storage/ports.js";

/** Longer than a healthy database ever takes; a probe that waits longer counts as down. */
export const HEALTH_QUERY_TIMEOUT_MS = 2_000;

export function healthRoutes(deps: { storage: Pick<Storage, "maxStreamPos" | "writeFailure">; logger: Logger; timeoutMs?: number }): Router {
  const router = new Router();
  const timeoutMs = deps.timeoutMs ?? HEALTH_QUERY_TIMEOUT_MS;
  // GET /health
  router.get("/health", (_req: Request, res: Response) => {
    // A failed WAL sync: reads still answer, but nothing can be stored until a restart.
    const writeFailure = deps.storage.writeFailure();
    if (writeFailure) {
      deps.logger.error({ err: writeFailure }, "health check: the database refuses writes; restart to recover");
      res.status(503).json({ status: "unavailable", reason: "database refuses writes" });
      return;
    }
    probeDatabase(deps.storage, timeoutMs).then(
      () => res.status(200).json({ status: "ok" }),
      (error: unknown) => {
        deps.logger.warn({ err: error }, "health check: the database did not answer");
        res.status(503).json({ status: "unavailable", reason: "database" });
      },
    );
  });
  return router;
}

/** One cheap read (the highest stream position, an indexed maximum), bounded in time. */
async function probeDatabase(storage: Pick<Storage, "maxStreamPos">, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([storage.maxStreamPos(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
