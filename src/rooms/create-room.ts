// Room creation (Client-Server API POST /createRoom): validating the request and planning the
// state events it implies, in the order the spec fixes: create, the creator's join, power levels,
// canonical alias, the preset's events, initial_state, name and topic, then invites.
import { Errcode, MatrixError } from "../core/errors.js";
import { isValidUserId } from "../core/identifiers.js";
import { isJsonObject, type JsonObject } from "../core/json.js";
import { ROOM_ALGORITHM } from "../core/mls-wire.js";

export type Preset = "private_chat" | "trusted_private_chat" | "public_chat";

export interface CreateRoomRequest {
  preset: Preset;
  visibility: "public" | "private";
  roomAliasName?: string;
  name?: string;
  topic?: string;
  invite: string[];
  initialState: Array<{ type: string; stateKey: string; content: JsonObject }>;
  powerLevelContentOverride?: JsonObject;
  roomVersion?: string;
  creationContent: JsonObject;
  isDirect: boolean;
}

function bad(message: string, errcode: Errcode = Errcode.BAD_JSON): MatrixError {
  return new MatrixError(errcode, 400, message);
}

function optionalStringField(body: JsonObject, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw bad(`${key} must be a string`, Errcode.INVALID_PARAM);
  return value;
}

export function parseCreateRoomRequest(body: JsonObject): CreateRoomRequest {
  const visibility = optionalStringField(body, "visibility") ?? "private";
  if (visibility !== "public" && visibility !== "private") throw bad("visibility must be public or private", Errcode.INVALID_PARAM);
  const presetRaw = optionalStringField(body, "preset") ?? (visibility === "public" ? "public_chat" : "private_chat");
  if (presetRaw !== "private_chat" && presetRaw !== "trusted_private_chat" && presetRaw !== "public_chat") {
    throw bad(`unknown preset ${presetRaw}`, Errcode.INVALID_PARAM);
  }
  const inviteRaw = body.invite ?? [];
  if (!Array.isArray(inviteRaw) || inviteRaw.some((id) => typeof id !== "string" || !isValidUserId(id))) {
    throw bad("invite must be a list of user IDs", Errcode.INVALID_PARAM);
  }
  const initialRaw = body.initial_state ?? [];
  if (!Array.isArray(initialRaw)) throw bad("initial_state must be a list");
  const initialState = initialRaw.map((item) => {
    if (!isJsonObject(item) || typeof item.type !== "string" || !isJsonObject(item.content)) {
      throw bad("initial_state entries need a string type and an object content");
    }
    const stateKey = item.state_key ?? "";
    if (typeof stateKey !== "string") throw bad("initial_state state_key must be a string");
    return { type: item.type, stateKey, content: item.content };
  });
  const override = body.power_level_content_override;
  if (override !== undefined && override !== null && !isJsonObject(override)) throw bad("power_level_content_override must be an object");
  const creation = body.creation_content;
  if (creation !== undefined && creation !== null && !isJsonObject(creation)) throw bad("creation_content must be an object");
  // Encryption is chosen at creation, MLS only, and can never be switched off (MLS wire contract section 1).
  const encryption = isJsonObject(creation) ? creation.encryption : undefined;
  if (encryption !== undefined && (!isJsonObject(encryption) || encryption.algorithm !== ROOM_ALGORITHM)) {
    throw bad(`creation_content.encryption must be {"algorithm": "${ROOM_ALGORITHM}"}`, Errcode.INVALID_PARAM);
  }
  const isDirect = body.is_direct ?? false;
  if (typeof isDirect !== "boolean") throw bad("is_direct must be a boolean", Errcode.INVALID_PARAM);

  const request: CreateRoomRequest = {
    preset: presetRaw,
    visibility,
    invite: [...new Set(inviteRaw as string[])],
    initialState,
    creationContent: isJsonObject(creation) ? creation : {},
    isDirect,
  };
  const aliasName = optionalStringField(body, "room_alias_name");
  if (aliasName !== undefined) {
    if (aliasName.length === 0 || /[:\s#]/.test(aliasName)) throw bad("room_alias_name is not a valid alias localpart", Errcode.INVALID_PARAM);
    request.roomAliasName = aliasName;
  }
  const name = optionalStringField(body, "name");
  if (name !== undefined) request.name = name;
  const topic = optionalStringField(body, "topic");
  if (topic !== undefined) request.topic = topic;
  const roomVersion = optionalStringField(body, "room_version");
  if (roomVersion !== undefined) request.roomVersion = roomVersion;
  if (isJsonObject(override)) request.powerLevelContentOverride = override;
  return request;
}

export interface PlannedStateEvent {
  type: string;
  stateKey: string;
  content: JsonObject;
}

export interface CreationPlanInput {
  creator: string;
  roomVersion: string;
  /** Full alias (`#name:server`) when room_alias_name was given. */
  alias?: string;
  /** Membership content extras of the creator (displayname, avatar_url). */
  creatorProfile: JsonObject;
  /** Profile extras per invitee, when known. */
  inviteeProfiles: Map<string, JsonObject>;
}

const PRESET_STATE: Record<Preset, { joinRule: string; historyVisibility: string; guestAccess: string }> = {
  private_chat: { joinRule: "invite", historyVisibility: "shared", guestAccess: "can_join" },
  trusted_private_chat: { joinRule: "invite", historyVisibility: "shared", guestAccess: "can_join" },
  public_chat: { joinRule: "public", historyVisibility: "shared", guestAccess: "forbidden" },
};

function defaultPowerLevels(request: CreateRoomRequest, creator: string): JsonObject {
  const users: JsonObject = { [creator]: 100 };
  // trusted_private_chat: invitees get the creator's level.
  if (request.preset === "trusted_private_chat") for (const invitee of request.invite) users[invitee] = 100;
  return {
    users,
    users_default: 0,
    events: {
      "m.room.name": 50,
      "m.room.power_levels": 100,
      "m.room.history_visibility": 100,
      "m.room.canonical_alias": 50,
      "m.room.avatar": 50,
      "m.room.tombstone": 100,
      "m.room.server_acl": 100,
      "m.room.encryption": 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: request.preset === "public_chat" ? 50 : 0,
    notifications: { room: 50 },
  };
}

/** The state events of a new room after `m.room.create`, in the spec's order. */
export function planRoomCreation(request: CreateRoomRequest, input: CreationPlanInput): { createContent: JsonObject; events: PlannedStateEvent[] } {
  // The server overwrites `creator` (absent since room v11, which LM follows) and `room_version`.
  const { creator: _creator, ...extra } = request.creationContent;
  const createContent: JsonObject = { ...extra, room_version: input.roomVersion };

  const events: PlannedStateEvent[] = [];
  events.push({ type: "m.room.member", stateKey: input.creator, content: { ...input.creatorProfile, membership: "join" } });
  events.push({
    type: "m.room.power_levels",
    stateKey: "",
    content: { ...defaultPowerLevels(request, input.creator), ...(request.powerLevelContentOverride ?? {}) },
  });
  if (input.alias !== undefined) events.push({ type: "m.room.canonical_alias", stateKey: "", content: { alias: input.alias } });

  // initial_state takes precedence over the preset; name and topic over initial_state.
  const initial = request.initialState.filter(
    (event) => !(event.stateKey === "" && ((event.type === "m.room.name" && request.name !== undefined) || (event.type === "m.room.topic" && request.topic !== undefined))),
  );
  const inInitial = (type: string): boolean => initial.some((event) => event.type === type && event.stateKey === "");
  const preset = PRESET_STATE[request.preset];
  if (!inInitial("m.room.join_rules")) events.push({ type: "m.room.join_rules", stateKey: "", content: { join_rule: preset.joinRule } });
  if (!inInitial("m.room.history_visibility")) {
    events.push({ type: "m.room.history_visibility", stateKey: "", content: { history_visibility: preset.historyVisibility } });
  }
  if (!inInitial("m.room.guest_access")) events.push({ type: "m.room.guest_access", stateKey: "", content: { guest_access: preset.guestAccess } });
  events.push(...initial);

  if (request.name !== undefined) events.push({ type: "m.room.name", stateKey: "", content: { name: request.name } });
  if (request.topic !== undefined) {
    events.push({
      type: "m.room.topic",
      stateKey: "",
      content: { topic: request.topic, "m.topic": { "m.text": [{ body: request.topic, mimetype: "text/plain" }] } },
    });
  }
  for (const invitee of request.invite) {
    const content: JsonObject = { ...(input.inviteeProfiles.get(invitee) ?? {}), membership: "invite" };
    if (request.isDirect) content.is_direct = true;
    events.push({ type: "m.room.member", stateKey: invitee, content });
  }
  return { createContent, events };
}
