// Redaction algorithms as data (LM draft "Event Redactions"; Matrix room versions 10 and 11,
// "Redactions"). A room version picks one RedactionRules value; `redact` interprets it.
import { isJsonObject, type JsonObject, type JsonValue } from "./json.js";

/** Content keys kept per event type: a list of paths (dot-separated for nested keys) or everything. */
export type ContentKeepList = readonly string[] | "all";

export interface RedactionRules {
  readonly name: string;
  /** Top-level keys kept. */
  readonly keepTopLevel: readonly string[];
  /** Per event type, the content keys kept; types not listed keep an empty content. */
  readonly keepContent: Readonly<Record<string, ContentKeepList>>;
}

/** LM (draft-ralston-mimi-linearized-matrix, "Event Redactions"): v11 minus `depth`, plus `hub_server`,
 *  with the draft's narrower content lists (no `allow`, no `join_authorised_via_users_server`,
 *  no `redacts`). */
export const linearizedRedaction: RedactionRules = {
  name: "linearized",
  keepTopLevel: [
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "origin_server_ts",
    "hashes",
    "signatures",
    "prev_events",
    "auth_events",
    "hub_server",
  ],
  keepContent: {
    "m.room.create": "all",
    "m.room.member": ["membership"],
    "m.room.join_rules": ["join_rule"],
    "m.room.power_levels": [
      "ban",
      "events",
      "events_default",
      "kick",
      "redact",
      "state_default",
      "users",
      "users_default",
      "invite",
    ],
    "m.room.history_visibility": ["history_visibility"],
  },
};

/** Matrix room versions 9 and 10 (unchanged since v9). */
export const v10Redaction: RedactionRules = {
  name: "v10",
  keepTopLevel: [
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "prev_state",
    "auth_events",
    "origin",
    "origin_server_ts",
    "membership",
  ],
  keepContent: {
    "m.room.member": ["membership", "join_authorised_via_users_server"],
    "m.room.create": ["creator"],
    "m.room.join_rules": ["join_rule", "allow"],
    "m.room.power_levels": ["ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"],
    "m.room.aliases": ["aliases"],
    "m.room.history_visibility": ["history_visibility"],
  },
};

/** Matrix room version 11 (MSC2176, MSC3821, MSC3989): v10 with changes. */
export const v11Redaction: RedactionRules = {
  name: "v11",
  keepTopLevel: v10Redaction.keepTopLevel.filter((k) => k !== "origin" && k !== "membership" && k !== "prev_state"),
  keepContent: {
    "m.room.member": ["membership", "join_authorised_via_users_server", "third_party_invite.signed"],
    "m.room.create": "all",
    "m.room.join_rules": ["join_rule", "allow"],
    "m.room.power_levels": [
      "ban",
      "events",
      "events_default",
      "invite",
      "kick",
      "redact",
      "state_default",
      "users",
      "users_default",
    ],
    "m.room.history_visibility": ["history_visibility"],
    "m.room.redaction": ["redacts"],
  },
};

/**
 * Returns the redacted copy of `event` under `rules`. The input is not modified; kept values are
 * shared with it, not copied. `content` is always present in the result (an absent or non-object
 * content becomes `{}`), as every implementation's signatures assume.
 */
export function redact(event: JsonObject, rules: RedactionRules): JsonObject {
  const redacted: JsonObject = {};
  for (const key of rules.keepTopLevel) {
    const value = event[key];
    if (value !== undefined) redacted[key] = value;
  }
  const content = isJsonObject(event.content) ? event.content : {};
  // Own keys only: an event type such as "constructor" or "__proto__" must not reach
  // Object.prototype's members through the lookup.
  const keep = typeof event.type === "string" && Object.hasOwn(rules.keepContent, event.type) ? rules.keepContent[event.type] : undefined;
  redacted.content = keep === "all" ? content : keep === undefined ? {} : pickPaths(content, keep);
  return redacted;
}

function pickPaths(content: JsonObject, paths: readonly string[]): JsonObject {
  const picked: JsonObject = {};
  for (const path of paths) {
    const dot = path.indexOf(".");
    if (dot < 0) {
      const value = content[path];
      if (value !== undefined) picked[path] = value;
      continue;
    }
    // Nested path such as v11's `third_party_invite.signed`: keep only that sub-key.
    const head = path.slice(0, dot);
    const inner = content[head];
    if (!isJsonObject(inner)) continue;
    const sub = pickPaths(inner, [path.slice(dot + 1)]);
    if (Object.keys(sub).length > 0) {
      const existing: JsonValue | undefined = picked[head];
      picked[head] = isJsonObject(existing) ? { ...existing, ...sub } : sub;
    }
  }
  return picked;
}
