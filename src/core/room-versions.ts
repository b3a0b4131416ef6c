// The room-version table: each version spells out every rule flag (as Synapse's room_versions.py
// does). Algorithms take the flag values they need, never the version string.
import { linearizedRedaction, v10Redaction, v11Redaction, type RedactionRules } from "./redaction.js";

export type KeyOrder = "utf16" | "codepoint";

export interface RoomVersionRules {
  /** The identifier as it appears in `m.room.create` content. */
  readonly id: string;
  readonly stability: "stable" | "unstable";
  /** Event format: LM events (no `depth`, `hub_server`, `hashes.lpdu`) or Matrix v4+ events. */
  readonly eventFormat: "linearized" | "matrix-v4";
  /** Whether LPDUs and `hub_server` apply (LM draft "Linearized PDU"). */
  readonly linearized: boolean;
  /** Which authorization rules apply. Only "linearized" is implemented so far. */
  readonly authRules: "linearized" | "matrix-v10" | "matrix-v11";
  readonly redaction: RedactionRules;
  /** Canonical JSON key order: RFC 8785 sorts by UTF-16 code units, classic Matrix by code point. */
  readonly canonicalJsonKeyOrder: KeyOrder;
  /** Integers outside ±(2^53−1), floats, exponents and -0 are refused in events. */
  readonly strictCanonicalJson: boolean;
  /** Maximum size of an event in canonical JSON, signatures included. */
  readonly maxEventBytes: number;
}

export const LINEARIZED_02 = "org.matrix.i-d.ralston-mimi-linearized-matrix.02";
export const LINEARIZED_I1 = "I.1";

/** Room version used for new rooms (DESIGN.md: what LM peers implement). */
export const DEFAULT_ROOM_VERSION = LINEARIZED_02;

const linearized02: RoomVersionRules = {
  id: LINEARIZED_02,
  stability: "unstable",
  eventFormat: "linearized",
  linearized: true,
  authRules: "linearized",
  redaction: linearizedRedaction,
  canonicalJsonKeyOrder: "utf16",
  strictCanonicalJson: true,
  maxEventBytes: 65536,
};

/** `I.1` is the draft's own name for the same algorithms. */
const linearizedI1: RoomVersionRules = { ...linearized02, id: LINEARIZED_I1, stability: "stable" };

const matrixV10: RoomVersionRules = {
  id: "10",
  stability: "stable",
  eventFormat: "matrix-v4",
  linearized: false,
  authRules: "matrix-v10",
  redaction: v10Redaction,
  canonicalJsonKeyOrder: "codepoint",
  strictCanonicalJson: true,
  maxEventBytes: 65536,
};

const matrixV11: RoomVersionRules = { ...matrixV10, id: "11", authRules: "matrix-v11", redaction: v11Redaction };

const ROOM_VERSIONS: ReadonlyMap<string, RoomVersionRules> = new Map(
  [linearized02, linearizedI1, matrixV10, matrixV11].map((v) => [v.id, v]),
);

export function getRoomVersion(id: string): RoomVersionRules | undefined {
  return ROOM_VERSIONS.get(id);
}

export function knownRoomVersions(): RoomVersionRules[] {
  return [...ROOM_VERSIONS.values()];
}

/**
 * The rules for a room version named in `m.room.create` content or a request; never throws.
 * Unknown or ill-typed versions come back with the errcode the APIs answer with.
 */
export function resolveRoomVersion(
  id: unknown,
): { ok: true; rules: RoomVersionRules } | { ok: false; errcode: "M_UNSUPPORTED_ROOM_VERSION"; reason: string } {
  if (typeof id !== "string") return { ok: false, errcode: "M_UNSUPPORTED_ROOM_VERSION", reason: "room version must be a string" };
  const rules = ROOM_VERSIONS.get(id);
  return rules ? { ok: true, rules } : { ok: false, errcode: "M_UNSUPPORTED_ROOM_VERSION", reason: `room version ${JSON.stringify(id)} is not supported` };
}
