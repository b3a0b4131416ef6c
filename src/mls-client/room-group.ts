// One room's MLS group as seen by one device (RFC 9420; Bobbin's MLS wire contract sections 1 and
// 4): the ts-mls client state, the commit event that started its current epoch, and the MLS
// operations on it. No HTTP here: building a commit does not change the state; it is applied only
// once the hub has accepted it (`applyOwnCommit`), and other devices' commits are processed in the
// room's timeline order (`processCommit`).
import {
  acceptAll,
  createApplicationMessage,
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  defaultKeyPackageEqualityConfig,
  defaultKeyRetentionConfig,
  defaultLifetimeConfig,
  defaultPaddingConfig,
  emptyPskIndex,
  joinGroup,
  joinGroupExternal,
  processPrivateMessage,
  processPublicMessage,
  type CiphersuiteImpl,
  type ClientConfig,
  type ClientState,
  type GroupInfo,
  type Proposal,
} from "ts-mls";
import { identityOfCredential, deviceAuthenticationService, type DeviceIdentity } from "./identity.js";
import {
  decodePlaintext,
  encodePlaintext,
  groupIdOf,
  type DecryptedEvent,
  type GroupInfoMls,
  type ParsedCommit,
  type PrivateMessageMls,
  type PublicMessageMls,
  type WelcomeMls,
} from "./event-content.js";
import type { OwnKeyPackage } from "./key-packages.js";

/** ts-mls's defaults, with the credential check that binds identity to signature key. */
export const clientConfig: ClientConfig = {
  keyRetentionConfig: defaultKeyRetentionConfig,
  lifetimeConfig: defaultLifetimeConfig,
  keyPackageEqualityConfig: defaultKeyPackageEqualityConfig,
  paddingConfig: defaultPaddingConfig,
  authService: deviceAuthenticationService,
};

/** A commit built on the group's current epoch and not yet accepted by the hub. */
export interface PendingCommit {
  readonly commit: PublicMessageMls;
  /** GroupInfo of the new epoch, with ratchet_tree and external_pub (contract section 4). */
  readonly groupInfo: GroupInfoMls;
  readonly welcome: WelcomeMls | undefined;
  /** The epoch the commit was made in. */
  readonly epoch: bigint;
  readonly newState: ClientState;
}

export interface GroupMember {
  readonly leafIndex: number;
  readonly identity: DeviceIdentity;
}

export class RoomGroup {
  private constructor(
    readonly roomId: string,
    private state: ClientState,
    private readonly cs: CiphersuiteImpl,
    /** The `m.mls.commit` event that started the current epoch (none before the first commit). */
    private commitEventId: string | undefined,
  ) {}

  /** A new group of one (epoch 0) for the room's creator device (contract section 1). */
  static async create(roomId: string, own: OwnKeyPackage, cs: CiphersuiteImpl): Promise<RoomGroup> {
    const state = await createGroup(groupIdOf(roomId), own.publicPackage, own.privatePackage, [], cs, clientConfig);
    return new RoomGroup(roomId, state, cs, undefined);
  }

  /**
   * Joins from a Welcome addressed to `own` (the tree comes from its ratchet_tree extension). The
   * room is the one whose ID the group ID spells (contract section 1).
   */
  static async joinFromWelcome(welcome: WelcomeMls, own: OwnKeyPackage, commitEventId: string, cs: CiphersuiteImpl): Promise<RoomGroup> {
    const state = await joinGroup(welcome.welcome, own.publicPackage, own.privatePackage, emptyPskIndex, cs, undefined, undefined, clientConfig);
    const roomId = roomIdOfGroup(state.groupContext.groupId);
    if (roomId === undefined) throw new Error("the Welcome's group ID is not a room ID");
    return new RoomGroup(roomId, state, cs, commitEventId);
  }

  /**
   * An external commit (RFC 9420 section 12.4.3.2) joining the group the stored GroupInfo
   * describes. Nothing is joined until the hub accepts it: then `fromExternalJoin`.
   */
  static async prepareExternalJoin(groupInfo: GroupInfo, own: OwnKeyPackage, cs: CiphersuiteImpl): Promise<PendingCommit> {
    const { publicMessage, newState } = await joinGroupExternal(groupInfo, own.publicPackage, own.privatePackage, false, cs, undefined, clientConfig);
    return {
      commit: { version: "mls10", wireformat: "mls_public_message", publicMessage },
      groupInfo: await groupInfoMessageOf(newState, cs),
      welcome: undefined,
      epoch: groupInfo.groupContext.epoch,
      newState,
    };
  }

  /** The group an accepted external commit (event `eventId`) joined. */
  static fromExternalJoin(roomId: string, pending: PendingCommit, eventId: string, cs: CiphersuiteImpl): RoomGroup {
    if (!sameGroup(pending.newState, roomId)) throw new Error(`the GroupInfo is for another group than ${roomId}`);
    return new RoomGroup(roomId, pending.newState, cs, eventId);
  }

  get epoch(): bigint {
    return this.state.groupContext.epoch;
  }

  /** The commit event that started the current epoch (`prev_commit_event_id`, `commit_event_id`). */
  get currentCommitEventId(): string | undefined {
    return this.commitEventId;
  }

  /** False once a processed commit removed this device from the group. */
  get active(): boolean {
    return this.state.groupActiveState.kind === "active";
  }

  get ownLeafIndex(): number {
    return this.state.privatePath.leafIndex;
  }

  /** Every occupied leaf and the device its credential names (leaves with unreadable credentials are skipped). */
  members(): GroupMember[] {
    const members: GroupMember[] = [];
    this.state.ratchetTree.forEach((node, nodeIndex) => {
      // Leaves sit at even node indices (RFC 9420 appendix C): leaf i is node 2i.
      if (nodeIndex % 2 !== 0 || node?.nodeType !== "leaf") return;
      const identity = identityOfCredential(node.leaf.credential);
      if (identity) members.push({ leafIndex: nodeIndex / 2, identity });
    });
    return members;
  }

  /** Leaf indices of `userId`'s devices (all of them, or only `deviceIds`). */
  leavesOf(userId: string, deviceIds?: readonly string[]): number[] {
    return this.members()
      .filter((m) => m.identity.userId === userId && (deviceIds === undefined || deviceIds.includes(m.identity.deviceId)))
      .map((m) => m.leafIndex);
  }

  hasDevice(userId: string, deviceId: string): boolean {
    return this.leavesOf(userId, [deviceId]).length > 0;
  }

  /**
   * A commit of `proposals` on the current epoch: a PublicMessage (the hub must read it), every
   * proposal inline (the hub cannot read proposals by reference), the tree in the Welcome, and the
   * new epoch's GroupInfo with ratchet_tree and external_pub. The group's state is unchanged.
   */
  async prepareCommit(proposals: Proposal[]): Promise<PendingCommit> {
    const result = await createCommit(
      { state: this.state, cipherSuite: this.cs },
      { extraProposals: proposals, wireAsPublicMessage: true, ratchetTreeExtension: true },
    );
    if (result.commit.wireformat !== "mls_public_message") throw new Error("ts-mls made a commit that is not a PublicMessage");
    return {
      commit: result.commit,
      groupInfo: await groupInfoMessageOf(result.newState, this.cs),
      welcome: result.welcome ? { version: "mls10", wireformat: "mls_welcome", welcome: result.welcome } : undefined,
      epoch: this.epoch,
      newState: result.newState,
    };
  }

  /** Moves to the epoch of our own commit, once the hub accepted it as `eventId`. */
  applyOwnCommit(pending: PendingCommit, eventId: string): void {
    if (pending.epoch !== this.epoch) throw new Error(`commit for epoch ${pending.epoch} applied at epoch ${this.epoch}`);
    this.state = pending.newState;
    this.commitEventId = eventId;
  }

  /**
   * Processes another device's commit from the timeline. Commits for earlier epochs (ours, or
   * those before we joined) are skipped: "skipped". A commit for a later epoch means one was
   * missed: "gap".
   */
  async processCommit(parsed: ParsedCommit, eventId: string): Promise<"applied" | "skipped" | "gap"> {
    if (parsed.epoch < this.epoch) return "skipped";
    if (parsed.epoch > this.epoch) return "gap";
    const { newState } = await processPublicMessage(this.state, parsed.commit.publicMessage, emptyPskIndex, this.cs, acceptAll);
    this.state = newState;
    this.commitEventId = eventId;
    return "applied";
  }

  /** `event` as an MLS application message of the current epoch. */
  async encrypt(event: DecryptedEvent): Promise<PrivateMessageMls> {
    const { newState, privateMessage } = await createApplicationMessage(this.state, encodePlaintext(event), this.cs);
    this.state = newState;
    return { version: "mls10", wireformat: "mls_private_message", privateMessage };
  }

  /** Decrypts an application message of this or a retained earlier epoch; throws if it cannot. */
  async decrypt(message: PrivateMessageMls): Promise<DecryptedEvent | undefined> {
    const result = await processPrivateMessage(this.state, message.privateMessage, emptyPskIndex, this.cs, acceptAll);
    this.state = result.newState;
    if (result.kind !== "applicationMessage") throw new Error("an m.room.encrypted event carried a handshake message");
    return decodePlaintext(result.message);
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The room ID a group ID spells, if it is UTF-8 of something shaped like one. */
export function roomIdOfGroup(groupId: Uint8Array): string | undefined {
  try {
    const roomId = strictUtf8.decode(groupId);
    return roomId.startsWith("!") ? roomId : undefined;
  } catch {
    return undefined;
  }
}

function sameGroup(state: ClientState, roomId: string): boolean {
  const expected = groupIdOf(roomId);
  const actual = state.groupContext.groupId;
  return actual.length === expected.length && actual.every((b, i) => b === expected[i]);
}

async function groupInfoMessageOf(state: ClientState, cs: CiphersuiteImpl): Promise<GroupInfoMls> {
  const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs);
  return { version: "mls10", wireformat: "mls_group_info", groupInfo };
}
