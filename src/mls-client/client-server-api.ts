// The Client-Server API calls the MLS client makes, over `fetch` (Matrix Client-Server API;
// Bobbin's MLS endpoints, contract section 5). One method per request; no MLS logic here.
import { MLS_CLIENT_PREFIX } from "./algorithms.js";
import type { CommitRequestBody } from "./event-content.js";
import type { DeviceObject } from "./device-object.js";

/** A Matrix error answer: HTTP status, `errcode` and the whole body (409 carries `current_epoch`). */
export class MatrixApiError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    readonly body: Record<string, unknown>,
    what: string,
  ) {
    super(`${what}: ${status} ${errcode} ${typeof body.error === "string" ? body.error : ""}`.trim());
    this.name = "MatrixApiError";
  }
}

export interface Session {
  readonly userId: string;
  readonly deviceId: string;
  readonly accessToken: string;
}

/** A room or to-device event as /sync and /messages return it (only the fields the client reads). */
export interface ClientEvent {
  type: string;
  sender: string;
  content: Record<string, unknown>;
  event_id?: string;
  state_key?: string;
  origin_server_ts?: number;
}

export interface JoinedRoomSync {
  timeline?: { events?: ClientEvent[]; limited?: boolean; prev_batch?: string };
  [field: string]: unknown;
}

export interface SyncResponse {
  next_batch: string;
  rooms?: { join?: Record<string, JoinedRoomSync>; invite?: Record<string, unknown>; leave?: Record<string, unknown> };
  to_device?: { events?: ClientEvent[] };
  device_one_time_keys_count?: Record<string, number>;
}

export interface CommitAccepted {
  event_id: string;
  epoch: number;
}

export interface StoredGroupInfo {
  group_info: string;
  epoch: number;
  commit_event_id: string;
}

export interface DepartedDevices {
  epoch: number;
  departed: Record<string, string[]>;
}

/** `{user: {device: algorithm}}` for keys/claim. */
export type ClaimRequest = Record<string, Record<string, string>>;
/** `{user: {device: {keyId: key}}}` from keys/claim. */
export type ClaimedKeys = Record<string, Record<string, Record<string, unknown>>>;

type Fetch = typeof fetch;

const encode = encodeURIComponent;

export class ClientServerApi {
  private txnCounter = 0;

  constructor(
    readonly baseUrl: string,
    readonly session: Session,
    private readonly fetchImpl: Fetch = fetch,
  ) {}

  /** `POST /login` with a password; the session of a new (or the named) device. */
  static async login(baseUrl: string, user: string, password: string, options: { deviceId?: string; fetchImpl?: Fetch } = {}): Promise<Session> {
    const body = {
      type: "m.login.password",
      identifier: { type: "m.id.user", user },
      password,
      ...(options.deviceId ? { device_id: options.deviceId } : {}),
    };
    const answer = await request(options.fetchImpl ?? fetch, baseUrl, "POST", "/_matrix/client/v3/login", undefined, body);
    return { userId: String(answer.user_id), deviceId: String(answer.device_id), accessToken: String(answer.access_token) };
  }

  /** `GET /account/whoami`: the session an access token belongs to. */
  static async whoami(baseUrl: string, accessToken: string, fetchImpl: Fetch = fetch): Promise<Session> {
    const answer = await request(fetchImpl, baseUrl, "GET", "/_matrix/client/v3/account/whoami", accessToken);
    if (typeof answer.device_id !== "string") throw new Error("the access token has no device");
    return { userId: String(answer.user_id), deviceId: answer.device_id, accessToken };
  }

  private call(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    return request(this.fetchImpl, this.baseUrl, method, path, this.session.accessToken, body);
  }

  /** `POST /keys/upload`: device object and/or KeyPackages; returns `one_time_key_counts`. */
  async uploadKeys(body: { device_keys?: DeviceObject; one_time_keys?: Record<string, string>; fallback_keys?: Record<string, string> }): Promise<Record<string, number>> {
    const answer = await this.call("POST", "/_matrix/client/v3/keys/upload", body);
    return (answer.one_time_key_counts ?? {}) as Record<string, number>;
  }

  /** `POST /keys/query`: device objects of `userIds`. */
  async queryKeys(userIds: string[]): Promise<Record<string, Record<string, DeviceObject>>> {
    const answer = await this.call("POST", "/_matrix/client/v3/keys/query", { device_keys: Object.fromEntries(userIds.map((u) => [u, []])) });
    return (answer.device_keys ?? {}) as Record<string, Record<string, DeviceObject>>;
  }

  /** `POST /keys/claim`: one KeyPackage per named device, many users in one request. */
  async claimKeys(claims: ClaimRequest): Promise<ClaimedKeys> {
    const answer = await this.call("POST", "/_matrix/client/v3/keys/claim", { one_time_keys: claims });
    return (answer.one_time_keys ?? {}) as ClaimedKeys;
  }

  async createRoom(body: Record<string, unknown>): Promise<string> {
    return String((await this.call("POST", "/_matrix/client/v3/createRoom", body)).room_id);
  }

  async invite(roomId: string, userId: string): Promise<void> {
    await this.call("POST", `/_matrix/client/v3/rooms/${encode(roomId)}/invite`, { user_id: userId });
  }

  async join(roomIdOrAlias: string): Promise<string> {
    return String((await this.call("POST", `/_matrix/client/v3/join/${encode(roomIdOrAlias)}`, {})).room_id);
  }

  async kick(roomId: string, userId: string, reason?: string): Promise<void> {
    await this.call("POST", `/_matrix/client/v3/rooms/${encode(roomId)}/kick`, { user_id: userId, ...(reason ? { reason } : {}) });
  }

  async leave(roomId: string): Promise<void> {
    await this.call("POST", `/_matrix/client/v3/rooms/${encode(roomId)}/leave`, {});
  }

  /** `PUT /rooms/{roomId}/send/{type}/{txnId}`; returns the event ID. */
  async sendEvent(roomId: string, type: string, content: unknown): Promise<string> {
    const txnId = `mls${Date.now().toString(36)}.${this.txnCounter++}`;
    return String((await this.call("PUT", `/_matrix/client/v3/rooms/${encode(roomId)}/send/${encode(type)}/${encode(txnId)}`, content)).event_id);
  }

  /** `GET /sync`. */
  async sync(since: string | undefined, timeoutMs: number, filter: unknown): Promise<SyncResponse> {
    const query = new URLSearchParams({ timeout: String(timeoutMs), filter: JSON.stringify(filter) });
    if (since !== undefined) query.set("since", since);
    return (await this.call("GET", `/_matrix/client/v3/sync?${query}`)) as unknown as SyncResponse;
  }

  /** `GET /rooms/{roomId}/messages` backwards from `from`. */
  async messagesBefore(roomId: string, from: string, limit: number): Promise<{ chunk: ClientEvent[]; end?: string }> {
    const query = new URLSearchParams({ from, dir: "b", limit: String(limit) });
    return (await this.call("GET", `/_matrix/client/v3/rooms/${encode(roomId)}/messages?${query}`)) as unknown as { chunk: ClientEvent[]; end?: string };
  }

  /** `POST {MLS prefix}/rooms/{roomId}/commit`: commit + GroupInfo + Welcome, stapled (contract section 5). */
  async submitCommit(roomId: string, body: CommitRequestBody): Promise<CommitAccepted> {
    return (await this.call("POST", `${MLS_CLIENT_PREFIX}/rooms/${encode(roomId)}/commit`, body)) as unknown as CommitAccepted;
  }

  /** `GET {MLS prefix}/rooms/{roomId}/group_info`: the GroupInfo of the room's current epoch. */
  async groupInfo(roomId: string): Promise<StoredGroupInfo> {
    return (await this.call("GET", `${MLS_CLIENT_PREFIX}/rooms/${encode(roomId)}/group_info`)) as unknown as StoredGroupInfo;
  }

  /** `GET {MLS prefix}/rooms/{roomId}/devices`: devices still in the group whose user left. */
  async departedDevices(roomId: string): Promise<DepartedDevices> {
    return (await this.call("GET", `${MLS_CLIENT_PREFIX}/rooms/${encode(roomId)}/devices`)) as unknown as DepartedDevices;
  }
}

async function request(fetchImpl: Fetch, baseUrl: string, method: string, path: string, token: string | undefined, body?: unknown): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetchImpl(baseUrl + path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await response.text();
  let parsed: Record<string, unknown> = {};
  try {
    const value: unknown = text.length > 0 ? JSON.parse(text) : {};
    if (typeof value === "object" && value !== null) parsed = value as Record<string, unknown>;
  } catch {
    parsed = { error: text.slice(0, 200) };
  }
  if (!response.ok) throw new MatrixApiError(response.status, typeof parsed.errcode === "string" ? parsed.errcode : "M_UNKNOWN", parsed, `${method} ${path.split("?")[0]}`);
  return parsed;
}
