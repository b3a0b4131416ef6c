// The one module that imports ts-mls 1.6.4 (notes: /work/shared/notes/ts-mls.md). It is loaded on
// first use with import(), so a server without encrypted rooms never pays its memory; the rest of
// the overlay sees only the functions below and re-exported types (type imports load nothing).
//
// Every decoder trap is caught here: ts-mls may return undefined, throw (CodecError, TypeError) or
// silently ignore trailing bytes; these wrappers answer undefined for all three.
import type {
  CiphersuiteImpl,
  FramedContent,
  FramedContentAuthData,
  GroupContext,
  GroupInfo,
  KeyPackage,
  LeafNode,
  MLSMessage,
  PrivateMessage,
  Proposal,
  PublicMessage,
  RatchetTree,
  UpdatePath,
  Welcome,
} from "ts-mls";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { CIPHERSUITE_NAME } from "../core/mls-wire.js";

export type { FramedContent, FramedContentAuthData, GroupContext, GroupInfo, KeyPackage, LeafNode, MLSMessage, PrivateMessage, Proposal, PublicMessage, RatchetTree, UpdatePath, Welcome };

/** How a commit changes the tree (RFC 9420 section 12.3: removes, then adds, then the path). */
export interface TreeChange {
  removes: number[];
  adds: LeafNode[];
  path: UpdatePath | undefined;
  /** A member's leaf index, or "external" for a new_member_commit (its path leaf is added first). */
  committer: number | "external";
}

/**
 * Encodings of a tree's nodes by node object (ts-mls keeps unchanged nodes' objects when it
 * derives a tree), so a commit re-encodes only the nodes it changed.
 */
export type NodeEncodings = WeakMap<object, Uint8Array>;

/** ts-mls behind the overlay's needs; obtained from MlsLoader.load(). */
export interface MlsLib {
  /** An MLSMessage that uses every byte; undefined otherwise. */
  decodeMessage(bytes: Uint8Array): MLSMessage | undefined;
  /** A bare KeyPackage (not wrapped in an MLSMessage) that uses every byte. */
  decodeKeyPackage(bytes: Uint8Array): KeyPackage | undefined;
  /** The KeyPackage signature and its leaf node's signature (RFC 9420 sections 10.1, 7.3). */
  verifyKeyPackage(keyPackage: KeyPackage): Promise<boolean>;
  /** RFC 9420 section 5.2 MakeKeyPackageRef. */
  keyPackageRef(keyPackage: KeyPackage): Promise<Uint8Array>;
  /** The FramedContent signature of a PublicMessage against the sender's key and the epoch's context (section 6.1). */
  verifyPublicMessageSignature(signatureKey: Uint8Array, content: FramedContent, auth: FramedContentAuthData, context: GroupContext): Promise<boolean>;
  verifyGroupInfoSignature(groupInfo: GroupInfo, signatureKey: Uint8Array): Promise<boolean>;
  /** A commit-source leaf node's signature, bound to the group and leaf index (section 7.3). */
  verifyLeafNodeSignature(leaf: LeafNode, groupId: Uint8Array, leafIndex: number): Promise<boolean>;
  /** The GroupInfo's ratchet_tree extension, decoded exactly; undefined when absent or malformed. */
  ratchetTreeOf(groupInfo: GroupInfo): RatchetTree | undefined;
  /** The GroupInfo's ratchet_tree extension bytes, undecoded. */
  ratchetTreeBytesOf(groupInfo: GroupInfo): Uint8Array | undefined;
  /** decodeRatchetTree, exactly. */
  decodeTree(bytes: Uint8Array): RatchetTree | undefined;
  /** Whether the GroupInfo carries an external_pub extension (external joins need it). */
  hasExternalPub(groupInfo: GroupInfo): boolean;
  /** Full validation of a received tree (section 12.4.3.1): leaf signatures, key uniqueness, parent hashes, tree hash. */
  validateRatchetTree(tree: RatchetTree, context: GroupContext): Promise<string | undefined>;
  /** The tree after a commit (without secrets); a reason when it cannot apply. */
  applyCommit(tree: RatchetTree, change: TreeChange): Promise<{ tree: RatchetTree; committerLeaf: number } | { error: string }>;
  /** Section 8.2: the next epoch's context from this one, the commit and the previous confirmation tag. */
  nextEpochContext(context: GroupContext, content: FramedContent, signature: Uint8Array, treeHash: Uint8Array, previousConfirmationTag: Uint8Array): Promise<GroupContext>;
  treeHash(tree: RatchetTree): Promise<Uint8Array>;
  encodeGroupContext(context: GroupContext): Uint8Array;
  /** The tree's wire encoding without trailing blank nodes (RFC 9420 section 12.4.3.3), reusing and filling `cache`. */
  encodeTree(tree: RatchetTree, cache?: NodeEncodings): Uint8Array;
  leafAt(tree: RatchetTree, leafIndex: number): LeafNode | undefined;
  /** Every non-blank leaf with its index. */
  leaves(tree: RatchetTree): Array<{ leafIndex: number; leaf: LeafNode }>;
}

export interface MlsLoader {
  /** Loads ts-mls on the first call; later calls return the same MlsLib. */
  load(): Promise<MlsLib>;
}

/** `optional<Node>` absent. */
const BLANK = Uint8Array.of(0);

/** RFC 9420 section 2.1.2 variable-length integer (lengths up to 2^30 - 1). */
function varint(value: number): Uint8Array {
  if (value < 0x40) return Uint8Array.of(value);
  if (value < 0x4000) return Uint8Array.of(0x40 | (value >> 8), value & 0xff);
  return Uint8Array.of(0x80 | (value >>> 24), (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff);
}

/** A decoder call with every trap (throw, undefined, trailing bytes) turned into undefined. */
function exactly<T>(decode: (bytes: Uint8Array, offset: number) => [T, number] | undefined, bytes: Uint8Array): T | undefined {
  try {
    const decoded = decode(bytes, 0);
    if (!decoded || decoded[1] !== bytes.length) return undefined;
    return decoded[0];
  } catch {
    return undefined;
  }
}

async function build(): Promise<MlsLib> {
  const [index, keyPackage, framedContent, groupInfo, ratchetTree, clientState, leafNode, treeHash, updatePath, treemath, groupContext] = await Promise.all([
    import("ts-mls"),
    import("ts-mls/keyPackage.js"),
    import("ts-mls/framedContent.js"),
    import("ts-mls/groupInfo.js"),
    import("ts-mls/ratchetTree.js"),
    import("ts-mls/clientState.js"),
    import("ts-mls/leafNode.js"),
    import("ts-mls/treeHash.js"),
    import("ts-mls/updatePath.js"),
    import("ts-mls/treemath.js"),
    import("ts-mls/groupContext.js"),
  ]);
  const suite: CiphersuiteImpl = await index.getCiphersuiteImpl(index.getCiphersuiteFromName(CIPHERSUITE_NAME));
  // SHA-256 and HMAC from node:crypto, synchronous under the Promise: tree and parent hashes are
  // thousands of small digests per commit in a large group, and WebCrypto's per-call cost made
  // them most of the hub's validation time (ciphersuite 1 hashes with SHA-256).
  const hash: CiphersuiteImpl["hash"] = {
    digest: async (data) => new Uint8Array(createHash("sha256").update(data).digest()),
    mac: async (key, data) => new Uint8Array(createHmac("sha256", key).update(data).digest()),
    verifyMac: async (key, mac, data) => {
      const expected = createHmac("sha256", key).update(data).digest();
      return expected.length === mac.length && timingSafeEqual(expected, mac);
    },
  };
  const cs: CiphersuiteImpl = { ...suite, hash };
  const leafNodeIndexOf = (leafIndex: number): number => leafIndex * 2;
  const lib: MlsLib = {
    decodeMessage: (bytes) => exactly(index.decodeMlsMessage, bytes),
    decodeKeyPackage: (bytes) => exactly(keyPackage.decodeKeyPackage, bytes),
    async verifyKeyPackage(kp) {
      try {
        if (kp.leafNode.leafNodeSource !== "key_package") return false;
        return (await keyPackage.verifyKeyPackage(kp, cs.signature)) && (await leafNode.verifyLeafNodeSignatureKeyPackage(kp.leafNode as Parameters<typeof leafNode.verifyLeafNodeSignatureKeyPackage>[0], cs.signature));
      } catch {
        return false;
      }
    },
    keyPackageRef: (kp) => keyPackage.makeKeyPackageRef(kp, cs.hash),
    async verifyPublicMessageSignature(signatureKey, content, auth, context) {
      try {
        return await framedContent.verifyFramedContentSignature(signatureKey, "mls_public_message", content, auth, context, cs.signature);
      } catch {
        return false;
      }
    },
    async verifyGroupInfoSignature(gi, signatureKey) {
      try {
        return await groupInfo.verifyGroupInfoSignature(gi, signatureKey, cs.signature);
      } catch {
        return false;
      }
    },
    async verifyLeafNodeSignature(leaf, groupId, leafIndex) {
      try {
        return await leafNode.verifyLeafNodeSignature(leaf, groupId, leafIndex, cs.signature);
      } catch {
        return false;
      }
    },
    ratchetTreeOf(gi) {
      const extension = gi.extensions.find((e) => e.extensionType === "ratchet_tree");
      return extension === undefined ? undefined : exactly(ratchetTree.decodeRatchetTree, extension.extensionData);
    },
    ratchetTreeBytesOf: (gi) => gi.extensions.find((e) => e.extensionType === "ratchet_tree")?.extensionData,
    decodeTree: (bytes) => exactly(ratchetTree.decodeRatchetTree, bytes),
    hasExternalPub: (gi) => gi.extensions.some((e) => e.extensionType === "external_pub"),
    async validateRatchetTree(tree, context) {
      try {
        const error = await clientState.validateRatchetTree(tree, context, index.defaultLifetimeConfig, index.defaultAuthenticationService, context.treeHash, cs);
        return error === undefined ? undefined : error.message;
      } catch (error) {
        return error instanceof Error ? error.message : String(error);
      }
    },
    async applyCommit(tree, change) {
      try {
        let next = tree;
        for (const removed of change.removes) {
          if (next[leafNodeIndexOf(removed)]?.nodeType !== "leaf") return { error: `remove of leaf ${removed}, which is blank` };
          next = ratchetTree.removeLeafNode(next, treemath.toLeafIndex(removed));
        }
        for (const leaf of change.adds) next = ratchetTree.addLeafNode(next, leaf)[0];
        let committerLeaf: number;
        if (change.committer === "external") {
          if (!change.path) return { error: "an external commit needs a path" };
          const [withLeaf, nodeIndex] = ratchetTree.addLeafNode(next, change.path.leafNode);
          committerLeaf = nodeIndex / 2;
          next = await updatePath.applyUpdatePath(withLeaf, treemath.toLeafIndex(committerLeaf), change.path, cs.hash, true);
        } else {
          committerLeaf = change.committer;
          if (next[leafNodeIndexOf(committerLeaf)]?.nodeType !== "leaf") return { error: `the committer's leaf ${committerLeaf} is blank` };
          if (change.path) next = await updatePath.applyUpdatePath(next, treemath.toLeafIndex(committerLeaf), change.path, cs.hash);
        }
        return { tree: next, committerLeaf };
      } catch (error) {
        return { error: error instanceof Error ? error.message : String(error) };
      }
    },
    nextEpochContext: (context, content, signature, hash, previousTag) =>
      clientState.nextEpochContext(context, "mls_public_message", content as Parameters<typeof clientState.nextEpochContext>[2], signature, hash, previousTag, cs.hash),
    treeHash: (tree) => treeHash.treeHashRoot(tree, cs.hash),
    encodeGroupContext: (context) => groupContext.encodeGroupContext(context),
    encodeTree(tree, cache = new WeakMap()) {
      // optional<Node> ratchet_tree<V>, blank nodes after the last non-blank one left out. Encoded
      // node by node: ts-mls's one-piece encoder costs ~100 ms for a tree of 1,000 leaves.
      const stripped = ratchetTree.stripBlankNodes(tree);
      const parts: Uint8Array[] = [];
      let total = 0;
      for (const node of stripped) {
        let part = node === undefined ? BLANK : cache.get(node);
        if (part === undefined) {
          const encoded = ratchetTree.encodeNode(node as NonNullable<typeof node>);
          part = new Uint8Array(encoded.length + 1);
          part[0] = 1;
          part.set(encoded, 1);
          cache.set(node as object, part);
        }
        parts.push(part);
        total += part.length;
      }
      const header = varint(total);
      const out = new Uint8Array(header.length + total);
      out.set(header, 0);
      let at = header.length;
      for (const part of parts) {
        out.set(part, at);
        at += part.length;
      }
      return out;
    },
    leafAt(tree, leafIndex) {
      const node = tree[leafNodeIndexOf(leafIndex)];
      return node?.nodeType === "leaf" ? node.leaf : undefined;
    },
    leaves(tree) {
      const out: Array<{ leafIndex: number; leaf: LeafNode }> = [];
      for (let i = 0; i < tree.length; i += 2) {
        const node = tree[i];
        if (node?.nodeType === "leaf") out.push({ leafIndex: i / 2, leaf: node.leaf });
      }
      return out;
    },
  };
  return lib;
}

/** A loader that imports ts-mls once, on the first load() (one per server; app/ or a test builds it). */
export function createMlsLoader(): MlsLoader {
  let loading: Promise<MlsLib> | undefined;
  return {
    load() {
      loading ??= build();
      return loading;
    },
  };
}
