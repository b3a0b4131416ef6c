// End-to-end keys and device lists of this server's users, served to other servers (Server-Server
// API "End-to-End Encryption" and "Device Management"; LM draft "One Time Key Claiming"). The keys
// come from the same service the Client-Server API uses, so a one-time key claimed over federation
// is the same storage claim as a local one and is never handed out twice.
import type { RequestHandler, Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { isValidUserId, serverNameOf } from "../../core/identifiers.js";
import type { JsonObject, JsonValue } from "../../core/json.js";
import { mountUserDevicesRoute } from "./user-devices.js";
import { mountUserKeysClaimRoute } from "./user-keys-claim.js";
import { mountUserKeysQueryRoute } from "./user-keys-query.js";

/** This server's users' keys (implemented by the client API's keys service; app/ wires it). */
export interface LocalUserKeys {
  /** user -> device IDs (empty: all) to user -> device -> device keys with `unsigned.device_display_name`. */
  queryLocal(wanted: Map<string, string[]>): Promise<Record<string, Record<string, JsonObject>>>;
  /** user -> device -> algorithm to user -> device -> `<algorithm>:<key id>` -> key; users of other servers are skipped. */
  claimLocal(wanted: Map<string, Map<string, string>>): Promise<Record<string, Record<string, Record<string, JsonValue>>>>;
}

export interface UserKeyRoutesDeps {
  serverName: string;
  keys: LocalUserKeys;
  /** Milliseconds since the epoch: the devices answer's `stream_id` (see user-devices.ts). */
  now: () => number;
}

/** Rejects a user ID that is malformed or not of this server (the Server-Server API asks for local users only). */
export function requireLocalUser(userId: string, serverName: string): void {
  if (!isValidUserId(userId)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${userId} is not a user ID`);
  if (serverNameOf(userId) !== serverName) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${userId} is not a user of ${serverName}`);
}

export function mountUserKeyRoutes(api: Router, auth: RequestHandler, deps: UserKeyRoutesDeps): void {
  mountUserKeysQueryRoute(api, auth, deps);
  mountUserKeysClaimRoute(api, auth, deps);
  mountUserDevicesRoute(api, auth, deps);
}
