// Building and reading the JSON that carries MLS messages (Bobbin's MLS wire contract sections 4
// and 5): `m.mls.commit` and `m.room.encrypted` room events, the Welcome to-device message, and
// the `/commit` request body. All binary values are unpadded standard base64 of full MLSMessage
// encodings. Pure: parsers return undefined for anything that is not what they read.
import { decodeMlsMessage, encodeMlsMessage, type MLSMessage, type MlsGroupInfo, type MlsPrivateMessage, type MlsPublicMessage, type MlsWelcome } from "ts-mls";
import { decodeBase64, encodeBase64 } from "../core/base64.js";
import { ROOM_ALGORITHM, WELCOME_ALGORITHM } from "./algorithms.js";

export type PublicMessageMls = MLSMessage & MlsPublicMessage;
export type PrivateMessageMls = MLSMessage & MlsPrivateMessage;
export type GroupInfoMls = MLSMessage & MlsGroupInfo;
export type WelcomeMls = MLSMessage & MlsWelcome;

type Wireformat = MLSMessage["wireformat"];
type MlsOf<W extends Wireformat> = MLSMessage & { wireformat: W };

/** Base64 of an MLSMessage encoding. */
export function encodeMlsBase64(message: MLSMessage): string {
  return encodeBase64(encodeMlsMessage(message));
}

/**
 * Decodes base64 of an MLSMessage of the given wireformat, consuming every byte (ts-mls ignores
 * trailing bytes and may throw on garbage: both are caught here).
 */
export function decodeMlsBase64<W extends Wireformat>(text: unknown, wireformat: W): MlsOf<W> | undefined {
  if (typeof text !== "string") return undefined;
  const bytes = decodeBase64(text);
  if (!bytes) return undefined;
  let decoded: ReturnType<typeof decodeMlsMessage>;
  try {
    decoded = decodeMlsMessage(bytes, 0);
  } catch {
    return undefined;
  }
  if (!decoded) return undefined;
  const [message, consumed] = decoded;
  if (consumed !== bytes.length || message.wireformat !== wireformat) return undefined;
  return message as MlsOf<W>;
}

export interface CommitEventContent {
  message: string;
  public_group_state: string;
  prev_commit_event_id?: string;
}

/** A commit read from an `m.mls.commit` event: the commit, its GroupInfo, the epoch it was made in. */
export interface ParsedCommit {
  commit: PublicMessageMls;
  groupInfo: GroupInfoMls;
  /** The epoch the commit was made in (the new epoch is one more). */
  epoch: bigint;
}

/** Reads `m.mls.commit` content (contract section 4); undefined unless both messages decode exactly and it is a commit. */
export function parseCommitContent(content: unknown): ParsedCommit | undefined {
  if (typeof content !== "object" || content === null) return undefined;
  const { message, public_group_state } = content as Record<string, unknown>;
  const commit = decodeMlsBase64(message, "mls_public_message");
  const groupInfo = decodeMlsBase64(public_group_state, "mls_group_info");
  if (!commit || !groupInfo || commit.publicMessage.content.contentType !== "commit") return undefined;
  return { commit, groupInfo, epoch: commit.publicMessage.content.epoch };
}

export interface EncryptedEventContent {
  algorithm: string;
  ciphertext: string;
  commit_event_id: string;
}

/** `m.room.encrypted` content for an application message made in the epoch `commitEventId` started. */
export function buildEncryptedContent(message: PrivateMessageMls, commitEventId: string): EncryptedEventContent {
  return { algorithm: ROOM_ALGORITHM, ciphertext: encodeMlsBase64(message), commit_event_id: commitEventId };
}

export interface ParsedEncrypted {
  message: PrivateMessageMls;
  commitEventId: string;
  epoch: bigint;
}

/** Reads `m.room.encrypted` room-event content; undefined unless it is an MLS application ciphertext. */
export function parseEncryptedContent(content: unknown): ParsedEncrypted | undefined {
  if (typeof content !== "object" || content === null) return undefined;
  const { algorithm, ciphertext, commit_event_id } = content as Record<string, unknown>;
  if (algorithm !== ROOM_ALGORITHM || typeof commit_event_id !== "string") return undefined;
  const message = decodeMlsBase64(ciphertext, "mls_private_message");
  if (!message || message.privateMessage.contentType !== "application") return undefined;
  return { message, commitEventId: commit_event_id, epoch: message.privateMessage.epoch };
}

export interface ParsedWelcome {
  welcome: WelcomeMls;
  commitEventId: string;
}

/** Reads the content of a to-device `m.room.encrypted` carrying a Welcome (contract section 5). */
export function parseWelcomeContent(content: unknown): ParsedWelcome | undefined {
  if (typeof content !== "object" || content === null) return undefined;
  const { algorithm, ciphertext, commit_event_id } = content as Record<string, unknown>;
  if (algorithm !== WELCOME_ALGORITHM || typeof commit_event_id !== "string") return undefined;
  const welcome = decodeMlsBase64(ciphertext, "mls_welcome");
  return welcome ? { welcome, commitEventId: commit_event_id } : undefined;
}

export interface CommitRequestBody {
  commit: string;
  group_info: string;
  welcome?: string;
  prev_commit_event_id?: string;
}

/** The body of `POST .../rooms/{roomId}/commit`: commit, GroupInfo and Welcome stapled together. */
export function buildCommitRequest(commit: PublicMessageMls, groupInfo: GroupInfoMls, welcome: WelcomeMls | undefined, prevCommitEventId: string | undefined): CommitRequestBody {
  return {
    commit: encodeMlsBase64(commit),
    group_info: encodeMlsBase64(groupInfo),
    ...(welcome ? { welcome: encodeMlsBase64(welcome) } : {}),
    ...(prevCommitEventId ? { prev_commit_event_id: prevCommitEventId } : {}),
  };
}

/**
 * What an application message carries: the event a client would otherwise have sent in clear,
 * as UTF-8 JSON `{"type", "content"}` (the same shape Matrix's other encryption schemes use).
 */
export interface DecryptedEvent {
  type: string;
  content: Record<string, unknown>;
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

export function encodePlaintext(event: DecryptedEvent): Uint8Array {
  return utf8.encode(JSON.stringify({ type: event.type, content: event.content }));
}

export function decodePlaintext(bytes: Uint8Array): DecryptedEvent | undefined {
  try {
    const parsed: unknown = JSON.parse(strictUtf8.decode(bytes));
    if (typeof parsed !== "object" || parsed === null) return undefined;
    const { type, content } = parsed as Record<string, unknown>;
    if (typeof type !== "string" || typeof content !== "object" || content === null || Array.isArray(content)) return undefined;
    return { type, content: content as Record<string, unknown> };
  } catch {
    return undefined;
  }
}

/** The MLS group ID of a room: the UTF-8 bytes of its room ID (contract section 1). */
export function groupIdOf(roomId: string): Uint8Array {
  return utf8.encode(roomId);
}
