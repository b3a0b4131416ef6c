// The server-default push rules (Client-Server API "Predefined Rules"), as a pure function of the
// user. Bobbin advertises spec versions up to v1.11, so the set is that version's: it still holds
// the rules deprecated in v1.7 (.m.rule.contains_display_name, .m.rule.roomnotif and the content
// rule .m.rule.contains_user_name), which the spec removed in v1.17.
import type { JsonObject } from "../../core/json.js";
import { localpartOf } from "./usernames.js";

export const PUSH_RULE_KINDS = ["override", "content", "room", "sender", "underride"] as const;
export type PushRuleKind = (typeof PUSH_RULE_KINDS)[number];

const sound = (value: string): JsonObject => ({ set_tweak: "sound", value });
const highlight: JsonObject = { set_tweak: "highlight" };
const eventMatch = (key: string, pattern: string): JsonObject => ({ kind: "event_match", key, pattern });

function rule(ruleId: string, conditions: JsonObject[], actions: Array<string | JsonObject>, enabled = true): JsonObject {
  return { rule_id: ruleId, default: true, enabled, conditions, actions };
}

/** The default ruleset (`global` scope) of `userId`. */
export function defaultPushRules(userId: string): Record<PushRuleKind, JsonObject[]> {
  return {
    override: [
      // The master rule is the only one that outranks user-defined rules; off by default.
      rule(".m.rule.master", [], [], false),
      rule(".m.rule.suppress_notices", [eventMatch("content.msgtype", "m.notice")], []),
      rule(
        ".m.rule.invite_for_me",
        [eventMatch("type", "m.room.member"), eventMatch("content.membership", "invite"), eventMatch("state_key", userId)],
        ["notify", sound("default")],
      ),
      rule(".m.rule.member_event", [eventMatch("type", "m.room.member")], []),
      rule(
        ".m.rule.is_user_mention",
        [{ kind: "event_property_contains", key: "content.m\\.mentions.user_ids", value: userId }],
        ["notify", sound("default"), highlight],
      ),
      rule(".m.rule.contains_display_name", [{ kind: "contains_display_name" }], ["notify", sound("default"), highlight]),
      rule(
        ".m.rule.is_room_mention",
        [
          { kind: "event_property_is", key: "content.m\\.mentions.room", value: true },
          { kind: "sender_notification_permission", key: "room" },
        ],
        ["notify", highlight],
      ),
      rule(".m.rule.roomnotif", [eventMatch("content.body", "@room"), { kind: "sender_notification_permission", key: "room" }], ["notify", highlight]),
      rule(".m.rule.tombstone", [eventMatch("type", "m.room.tombstone"), eventMatch("state_key", "")], ["notify", highlight]),
      rule(".m.rule.reaction", [eventMatch("type", "m.reaction")], []),
      rule(".m.rule.room.server_acl", [eventMatch("type", "m.room.server_acl"), eventMatch("state_key", "")], []),
      rule(".m.rule.suppress_edits", [{ kind: "event_property_is", key: "content.m\\.relates_to.rel_type", value: "m.replace" }], []),
    ],
    content: [
      // Content rules carry a `pattern` instead of conditions.
      {
        rule_id: ".m.rule.contains_user_name",
        default: true,
        enabled: true,
        pattern: localpartOf(userId),
        actions: ["notify", sound("default"), highlight],
      },
    ],
    room: [],
    sender: [],
    underride: [
      rule(".m.rule.call", [eventMatch("type", "m.call.invite")], ["notify", sound("ring")]),
      rule(
        ".m.rule.encrypted_room_one_to_one",
        [{ kind: "room_member_count", is: "2" }, eventMatch("type", "m.room.encrypted")],
        ["notify", sound("default")],
      ),
      rule(".m.rule.room_one_to_one", [{ kind: "room_member_count", is: "2" }, eventMatch("type", "m.room.message")], ["notify", sound("default")]),
      rule(".m.rule.message", [eventMatch("type", "m.room.message")], ["notify"]),
      rule(".m.rule.encrypted", [eventMatch("type", "m.room.encrypted")], ["notify"]),
    ],
  };
}
