// The notary side of key exchange: answering `GET /_matrix/key/v2/query/{serverName}` and
// `POST /_matrix/key/v2/query` (LM draft "Retrieving Server Keys"; Matrix Server-Server API
// "Querying Keys Through Another Server"). "The notary server MUST sign each key returned in
// server_keys by at least one of its own signing keys": every response keeps its original
// signatures and gains ours.
import type { JsonObject } from "../../core/json.js";
import { signJson } from "../../core/signing.js";
import type { KeyRing } from "./key-ring.js";
import { buildServerKeyResponse, type OwnKeys } from "./server-keys.js";

/** One server of a query, as the caller sent it; an absent minimum means now (the spec's default). */
export interface ServerKeyQuery {
  readonly serverName: string;
  /** Key ID → minimum validity asked for it; empty: every key. */
  readonly keyIds: ReadonlyMap<string, number | undefined>;
  readonly minimumValidUntilTs?: number;
}

export interface KeyNotary {
  /** Our own key response, freshly signed (`GET /_matrix/key/v2/server`). */
  ownKeyResponse(): JsonObject;
  /** The co-signed key responses for every server queried, as one `server_keys` list. */
  query(queries: readonly ServerKeyQuery[]): Promise<JsonObject[]>;
}

export function createKeyNotary(options: { own: OwnKeys; keyRing: KeyRing; now: () => number }): KeyNotary {
  const { own, keyRing, now } = options;
  const ownKeyResponse = (): JsonObject => buildServerKeyResponse(own, now());

  return {
    ownKeyResponse,

    async query(queries) {
      const at = now();
      const perServer = await Promise.all(
        queries.map(async (query) => {
          const keyIds = new Map([...query.keyIds].map(([keyId, minimum]) => [keyId, minimum ?? at] as const));
          const minimumValidUntilTs = query.minimumValidUntilTs ?? at;
          if (query.serverName === own.serverName) {
            // Ours is valid for the next 12 hours: a minimum beyond that cannot be met.
            const response = ownKeyResponse();
            const validUntil = response.valid_until_ts as number;
            return [minimumValidUntilTs, ...keyIds.values()].every((minimum) => minimum <= validUntil) ? [response] : [];
          }
          const responses = await keyRing.getKeyResponses(query.serverName, { keyIds, minimumValidUntilTs });
          return responses.map((response) => signJson(response, own.serverName, own.signingKey, "utf16"));
        }),
      );
      return perServer.flat();
    },
  };
}
