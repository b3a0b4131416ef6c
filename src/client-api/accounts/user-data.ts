// Per-user data: account data (global and per room), filters and push rules. Push rules live in
// the user's `m.push_rules` account data, which the server alone writes (clients change it through
// the push rules API), so syncs deliver the ruleset like any account data.
import { Errcode, MatrixError } from "../../core/errors.js";
import { isJsonObject, type JsonObject, type JsonValue } from "../../core/json.js";
import type { ClientApiContext } from "../contracts.js";
import { defaultPushRules, PUSH_RULE_KINDS, type PushRuleKind } from "./push-rules.js";

/** Account data types only the server sets (Client-Server API "Client Config": 405 M_BAD_JSON). */
const SERVER_MANAGED_TYPES = new Set(["m.fully_read", "m.push_rules"]);

export interface UserData {
  putAccountData(userId: string, roomId: string | null, type: string, content: JsonObject): Promise<void>;
  getAccountData(userId: string, roomId: string | null, type: string): Promise<JsonObject>;
  createFilter(userId: string, filter: JsonObject): Promise<string>;
  getFilter(userId: string, filterId: string): Promise<JsonObject>;
  /** The `global` ruleset: stored, or the defaults. */
  getPushRules(userId: string): Promise<Record<PushRuleKind, JsonObject[]>>;
  getPushRule(userId: string, kind: string, ruleId: string): Promise<JsonObject>;
  setPushRuleAttribute(userId: string, kind: string, ruleId: string, attribute: "enabled" | "actions", value: JsonValue): Promise<void>;
  addPushRule(userId: string, kind: string, ruleId: string, rule: JsonObject, position: { before?: string; after?: string }): Promise<void>;
  deletePushRule(userId: string, kind: string, ruleId: string): Promise<void>;
}

function isPushRuleKind(kind: string): kind is PushRuleKind {
  return (PUSH_RULE_KINDS as readonly string[]).includes(kind);
}

export function createUserData(ctx: ClientApiContext): UserData {
  async function writeAccountData(userId: string, roomId: string | null, type: string, content: JsonObject): Promise<void> {
    const pos = await ctx.streams.withPositions(1, async ([streamPos]) => {
      ctx.notifier.recordChange("account_data", [userId], streamPos!);
      await ctx.storage.transaction((tx) => tx.accountData.put(userId, roomId, type, content, streamPos!));
      return streamPos!;
    });
    ctx.notifier.notifyUsers([userId], pos);
  }

  async function loadRules(userId: string): Promise<Record<PushRuleKind, JsonObject[]>> {
    const stored = await ctx.storage.accountData.get(userId, null, "m.push_rules");
    const global = stored?.global;
    if (!isJsonObject(global)) return defaultPushRules(userId);
    const rules = defaultPushRules(userId);
    for (const kind of PUSH_RULE_KINDS) {
      const list = global[kind];
      if (Array.isArray(list)) rules[kind] = list.filter(isJsonObject);
    }
    return rules;
  }

  function saveRules(userId: string, rules: Record<PushRuleKind, JsonObject[]>): Promise<void> {
    return writeAccountData(userId, null, "m.push_rules", { global: rules as unknown as JsonObject });
  }

  function findRule(rules: Record<PushRuleKind, JsonObject[]>, kind: string, ruleId: string): { list: JsonObject[]; index: number } {
    if (!isPushRuleKind(kind)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `Unknown push rule kind ${kind}`);
    const list = rules[kind];
    const index = list.findIndex((r) => r.rule_id === ruleId);
    if (index < 0) throw new MatrixError(Errcode.NOT_FOUND, 404, "Push rule not found");
    return { list, index };
  }

  return {
    async putAccountData(userId, roomId, type, content) {
      if (SERVER_MANAGED_TYPES.has(type)) throw new MatrixError(Errcode.BAD_JSON, 405, `Cannot set ${type} through this API`);
      await writeAccountData(userId, roomId, type, content);
    },

    async getAccountData(userId, roomId, type) {
      const content = await ctx.storage.accountData.get(userId, roomId, type);
      if (!content) throw new MatrixError(Errcode.NOT_FOUND, 404, "Account data not found");
      return content;
    },

    async createFilter(userId, filter) {
      return ctx.storage.transaction((tx) => tx.filters.create(userId, filter));
    },

    async getFilter(userId, filterId) {
      const filter = await ctx.storage.filters.get(userId, filterId);
      if (!filter) throw new MatrixError(Errcode.NOT_FOUND, 404, "No such filter");
      return filter;
    },

    getPushRules: loadRules,

    async getPushRule(userId, kind, ruleId) {
      const { list, index } = findRule(await loadRules(userId), kind, ruleId);
      return list[index]!;
    },

    async setPushRuleAttribute(userId, kind, ruleId, attribute, value) {
      const rules = await loadRules(userId);
      const { list, index } = findRule(rules, kind, ruleId);
      list[index] = { ...list[index]!, [attribute]: value };
      await saveRules(userId, rules);
    },

    async addPushRule(userId, kind, ruleId, rule, position) {
      if (!isPushRuleKind(kind)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `Unknown push rule kind ${kind}`);
      // Rule IDs starting with "." are the server's (spec "Predefined Rules").
      if (ruleId.startsWith(".")) throw new MatrixError(Errcode.INVALID_PARAM, 400, "Rule IDs starting with '.' are reserved for server-default rules");
      const rules = await loadRules(userId);
      const list = rules[kind].filter((r) => r.rule_id !== ruleId);
      const anchor = position.before ?? position.after;
      // User rules outrank the server's, except `.m.rule.master`, which stays first; a rule
      // without a position goes first among the user's rules.
      let at = kind === "override" && list[0]?.rule_id === ".m.rule.master" ? 1 : 0;
      if (anchor !== undefined) {
        const anchorIndex = list.findIndex((r) => r.rule_id === anchor);
        if (anchorIndex < 0 || list[anchorIndex]!.default === true) throw new MatrixError(Errcode.NOT_FOUND, 404, `No user-defined rule ${anchor}`);
        at = position.before !== undefined ? anchorIndex : anchorIndex + 1;
      }
      list.splice(at, 0, { ...rule, rule_id: ruleId, default: false, enabled: true });
      rules[kind] = list;
      await saveRules(userId, rules);
    },

    async deletePushRule(userId, kind, ruleId) {
      const rules = await loadRules(userId);
      const { list, index } = findRule(rules, kind, ruleId);
      if (list[index]!.default === true) throw new MatrixError(Errcode.FORBIDDEN, 403, "Server-default rules cannot be deleted");
      list.splice(index, 1);
      await saveRules(userId, rules);
    },
  };
}
