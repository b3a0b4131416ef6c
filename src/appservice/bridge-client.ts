// Requests from the homeserver to an application service (Application Service API "Homeserver ->
// Application Service API"): transactions, user and alias queries, ping. Every request carries the
// service's `hs_token` as `Authorization: Bearer` (spec v1.4 "Authorization").
import type { JsonObject } from "../core/json.js";
import type { AppserviceRegistration } from "./registration.js";

/** How a request to the service ended: its status and body text, or no answer at all. */
export type BridgeAnswer = { kind: "status"; status: number; body: string } | { kind: "failed"; reason: string } | { kind: "timeout" };

export interface BridgeClient {
  /**
   * `PUT /_matrix/app/v1/transactions/{txnId}` with the body as given (the same bytes on every
   * retry). `signal` abandons it (shutdown): the answer is then `failed`.
   */
  putTransaction(registration: AppserviceRegistration, txnId: string, body: string, signal?: AbortSignal): Promise<BridgeAnswer>;
  /** `GET /_matrix/app/v1/users/{userId}` */
  queryUser(registration: AppserviceRegistration, userId: string): Promise<BridgeAnswer>;
  /** `GET /_matrix/app/v1/rooms/{roomAlias}` */
  queryAlias(registration: AppserviceRegistration, alias: string): Promise<BridgeAnswer>;
  /** `POST /_matrix/app/v1/ping` */
  ping(registration: AppserviceRegistration, transactionId: string | undefined): Promise<BridgeAnswer>;
}

export interface BridgeClientSettings {
  /** Transactions: a bridge may take a while to process a full one. */
  transactionTimeoutMs: number;
  /** Queries block the client request that caused them (spec "Querying"). */
  queryTimeoutMs: number;
  pingTimeoutMs: number;
}

export const DEFAULT_BRIDGE_CLIENT_SETTINGS: BridgeClientSettings = { transactionTimeoutMs: 60_000, queryTimeoutMs: 10_000, pingTimeoutMs: 10_000 };

export function createBridgeClient(settings: BridgeClientSettings = DEFAULT_BRIDGE_CLIENT_SETTINGS): BridgeClient {
  async function call(registration: AppserviceRegistration, method: string, path: string, body: string | undefined, timeoutMs: number, abandon?: AbortSignal): Promise<BridgeAnswer> {
    if (registration.url === null) return { kind: "failed", reason: "the application service has no url" };
    const headers: Record<string, string> = { authorization: `Bearer ${registration.hsToken}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    try {
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = abandon ? AbortSignal.any([timeout, abandon]) : timeout;
      const response = await fetch(registration.url + path, { method, headers, ...(body !== undefined ? { body } : {}), signal });
      return { kind: "status", status: response.status, body: await response.text() };
    } catch (error) {
      const name = (error as Error).name;
      if (abandon?.aborted) return { kind: "failed", reason: "abandoned" };
      if (name === "TimeoutError" || name === "AbortError") return { kind: "timeout" };
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      return { kind: "failed", reason: cause?.code ?? cause?.message ?? (error as Error).message };
    }
  }

  return {
    putTransaction: (registration, txnId, body, signal) => call(registration, "PUT", `/_matrix/app/v1/transactions/${encodeURIComponent(txnId)}`, body, settings.transactionTimeoutMs, signal),
    queryUser: (registration, userId) => call(registration, "GET", `/_matrix/app/v1/users/${encodeURIComponent(userId)}`, undefined, settings.queryTimeoutMs),
    queryAlias: (registration, alias) => call(registration, "GET", `/_matrix/app/v1/rooms/${encodeURIComponent(alias)}`, undefined, settings.queryTimeoutMs),
    ping(registration, transactionId) {
      const body: JsonObject = transactionId !== undefined ? { transaction_id: transactionId } : {};
      return call(registration, "POST", "/_matrix/app/v1/ping", JSON.stringify(body), settings.pingTimeoutMs);
    },
  };
}
