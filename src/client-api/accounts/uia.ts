// User-Interactive Authentication (Client-Server API "User-Interactive Authentication API").
// The server offers flows of stages; the client submits `auth` dicts stage by stage within one
// session, and every unfinished attempt is answered 401 with the flows, the completed stages and
// the session ID. Sessions live in memory (a restart only makes a client start over), bounded in
// number and age, and are bound to the operation and user they were opened for.
import { randomBytes } from "node:crypto";
import { Errcode, MatrixError } from "../../core/errors.js";
import { isJsonObject, type JsonObject } from "../../core/json.js";

/** The 401 answer of an endpoint protected by UIA; with errcode/error only when a stage failed. */
export class UiaRequired extends MatrixError {
  constructor(
    readonly flows: string[][],
    readonly session: string,
    readonly completed: string[],
    readonly failure?: { errcode: Errcode; error: string },
  ) {
    super(failure?.errcode ?? Errcode.UNAUTHORIZED, 401, failure?.error ?? "Additional authentication required");
  }

  override toJSON(): Record<string, unknown> {
    return {
      ...(this.failure ? { errcode: this.failure.errcode, error: this.failure.error } : {}),
      ...(this.completed.length > 0 ? { completed: this.completed } : {}),
      flows: this.flows.map((stages) => ({ stages })),
      params: {},
      session: this.session,
    };
  }
}

/** Checks one stage's credentials; true when they are right. */
export type StageVerifier = (stage: string, auth: JsonObject) => Promise<boolean>;

export interface UiaRequest {
  /** What the session authorises, e.g. "register", "delete_devices"; a session serves one purpose. */
  purpose: string;
  /** The authenticated user, when there is one; a session is bound to it. */
  userId: string | null;
  auth: JsonObject | undefined;
  flows: string[][];
  verify: StageVerifier;
}

export interface Uia {
  /** Returns when a flow is complete; otherwise throws UiaRequired (401). */
  authenticate(request: UiaRequest): Promise<void>;
}

interface UiaSession {
  purpose: string;
  userId: string | null;
  completed: string[];
  createdMs: number;
}

const MAX_SESSIONS = 10_000;
const SESSION_TTL_MS = 30 * 60 * 1000;

export function createUia(now: () => number): Uia {
  const sessions = new Map<string, UiaSession>();

  function open(purpose: string, userId: string | null): string {
    const at = now();
    if (sessions.size >= MAX_SESSIONS) {
      for (const [id, s] of sessions) if (at - s.createdMs > SESSION_TTL_MS) sessions.delete(id);
      // Still full: drop the oldest (Map iteration follows insertion order).
      while (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value as string);
    }
    const id = randomBytes(18).toString("base64url");
    sessions.set(id, { purpose, userId, completed: [], createdMs: at });
    return id;
  }

  function find(id: unknown, purpose: string, userId: string | null): UiaSession | undefined {
    if (typeof id !== "string") return undefined;
    const session = sessions.get(id);
    if (!session) return undefined;
    if (now() - session.createdMs > SESSION_TTL_MS) {
      sessions.delete(id);
      return undefined;
    }
    return session.purpose === purpose && session.userId === userId ? session : undefined;
  }

  return {
    async authenticate({ purpose, userId, auth, flows, verify }: UiaRequest): Promise<void> {
      if (auth === undefined) throw new UiaRequired(flows, open(purpose, userId), []);
      let sessionId = auth.session;
      let session = find(sessionId, purpose, userId);
      if (!session) {
        if (sessionId !== undefined) {
          const fresh = open(purpose, userId);
          throw new UiaRequired(flows, fresh, [], { errcode: Errcode.UNKNOWN, error: "Unknown or expired UIA session" });
        }
        // The client went straight to a stage without asking first: open its session now.
        sessionId = open(purpose, userId);
        session = sessions.get(sessionId)!;
      }
      const id = sessionId as string;
      const type = auth.type;
      // Only a session key: the client asks where it stands.
      if (type === undefined) throw new UiaRequired(flows, id, session.completed);
      const offered = flows.some(
        (stages) => session.completed.every((done, i) => stages[i] === done) && stages[session.completed.length] === type,
      );
      if (typeof type !== "string" || !offered) {
        throw new UiaRequired(flows, id, session.completed, { errcode: Errcode.UNRECOGNIZED, error: "Authentication stage not offered here" });
      }
      if (!(await verify(type, auth))) {
        throw new UiaRequired(flows, id, session.completed, { errcode: Errcode.FORBIDDEN, error: "Invalid credentials" });
      }
      session.completed.push(type);
      const done = flows.some((stages) => stages.length === session.completed.length && stages.every((s, i) => s === session.completed[i]));
      if (!done) throw new UiaRequired(flows, id, session.completed);
      sessions.delete(id);
    },
  };
}

/** The `auth` dict of a request body: undefined when absent, M_BAD_JSON when not an object. */
export function authDictOf(body: JsonObject): JsonObject | undefined {
  const auth = body.auth;
  if (auth === undefined || auth === null) return undefined;
  if (!isJsonObject(auth)) throw new MatrixError(Errcode.BAD_JSON, 400, "auth must be an object");
  return auth;
}
