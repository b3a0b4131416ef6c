// Which entities changed after a stream position (the idea of Synapse's StreamChangeCache): per
// stream, entity -> highest position it changed at, in memory. An incremental sync asks
// `mayHaveChanged(stream, entity, since)` and skips the reads for everything that has not.
//
// Changes are recorded when their position is allocated, before it can become visible to syncs
// (see SyncNotifier.recordChange), so a sync that may read a position always finds it recorded.
// A transaction that rolls back leaves a recorded change behind; that costs a sync one read.
//
// Below the floor nothing is known: positions from before start-up (a since token issued by an
// earlier process) or from before an eviction all count as "may have changed".
import type { ChangeStream } from "../contracts.js";

/** Entities kept per stream; past this the stream forgets everything and raises its floor. */
const MAX_ENTITIES = 100_000;

export class StreamChangeCache {
  /** Per stream: the floor, each entity's last change, and the last change of any entity. */
  private readonly streams = new Map<ChangeStream, { floor: number; last: Map<string, number>; max: number }>();

  /** `floor`: the highest stream position committed before this process started. */
  constructor(private readonly floor: number) {}

  record(stream: ChangeStream, entities: Iterable<string>, streamPos: number): void {
    let entry = this.streams.get(stream);
    if (!entry) this.streams.set(stream, (entry = { floor: this.floor, last: new Map(), max: 0 }));
    for (const entity of entities) {
      if (streamPos > entry.max) entry.max = streamPos;
      if ((entry.last.get(entity) ?? 0) >= streamPos) continue;
      if (entry.last.size >= MAX_ENTITIES) {
        for (const pos of entry.last.values()) if (pos > entry.floor) entry.floor = pos;
        entry.last.clear();
      }
      entry.last.set(entity, streamPos);
    }
  }

  /** False only when `entity` certainly has no change in `stream` after `sincePos`. */
  mayHaveChanged(stream: ChangeStream, entity: string, sincePos: number): boolean {
    const entry = this.streams.get(stream);
    const floor = entry?.floor ?? this.floor;
    if (sincePos < floor) return true;
    return (entry?.last.get(entity) ?? 0) > sincePos;
  }

  /** False only when certainly no entity has a change in `stream` after `sincePos`. */
  streamMayHaveChanged(stream: ChangeStream, sincePos: number): boolean {
    const entry = this.streams.get(stream);
    if (sincePos < (entry?.floor ?? this.floor)) return true;
    return (entry?.max ?? 0) > sincePos;
  }

  /** Whether any of `entities` may have changed after `sincePos`. */
  anyMayHaveChanged(stream: ChangeStream, entities: Iterable<string>, sincePos: number): boolean {
    for (const entity of entities) if (this.mayHaveChanged(stream, entity, sincePos)) return true;
    return false;
  }
}
