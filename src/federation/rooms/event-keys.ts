// Fetching the keys an incoming event's checks need before the pure pipeline runs (LM draft
// "Checking Signatures"): the sender's server and the hub, each key the event names, valid at the
// event's `origin_server_ts`. The pipeline then looks them up synchronously.
import { serverNameOf } from "../../core/identifiers.js";
import { isJsonObject, type JsonValue } from "../../core/json.js";
import type { VerifyKeyLookup } from "../../core/signing.js";
import type { KeyRequirement, KeyRing } from "../keys/key-ring.js";

/** Fetches what checking `events` needs and returns the lookup that then answers from the cache. */
export async function prefetchEventKeys(keyRing: KeyRing, events: readonly JsonValue[]): Promise<VerifyKeyLookup> {
  const requirements = new Map<string, KeyRequirement>();
  for (const event of events) {
    if (!isJsonObject(event) || !isJsonObject(event.signatures)) continue;
    const servers = new Set<string>();
    const sender = typeof event.sender === "string" ? serverNameOf(event.sender) : undefined;
    if (sender !== undefined) servers.add(sender);
    if (typeof event.hub_server === "string") servers.add(event.hub_server);
    for (const server of servers) {
      const byKey = event.signatures[server];
      if (!isJsonObject(byKey)) continue;
      for (const keyId of Object.keys(byKey)) {
        const id = `${server} ${keyId}`;
        if (!requirements.has(id)) requirements.set(id, { serverName: server, keyId });
      }
    }
  }
  await keyRing.prefetch([...requirements.values()]);
  return keyRing.lookup;
}
