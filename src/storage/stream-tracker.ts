// The server-wide stream position sequence (see ports.ts). Positions are handed out in memory by
// the one process that writes (DESIGN.md "Scale-out": one process serves everything for now) and
// become visible to syncs only once every lower position has committed or been abandoned, so a
// sync can never skip a change that commits late.
export class StreamTracker {
  private last: number;
  private readonly inFlight = new Set<number>();

  /** `stored` is Storage.maxStreamPos() at start-up. */
  constructor(stored: number) {
    this.last = stored;
  }

  /** A new position for a change about to be written. Pair with `release` in a `finally`. */
  allocate(): number {
    this.last += 1;
    this.inFlight.add(this.last);
    return this.last;
  }

  /** The change at `pos` committed, or was rolled back (a gap is harmless). */
  release(pos: number): void {
    this.inFlight.delete(pos);
  }

  /** The highest position a sync may read up to: everything at or below it is settled. */
  get visible(): number {
    let lowest = this.last + 1;
    for (const pos of this.inFlight) if (pos < lowest) lowest = pos;
    return lowest - 1;
  }

  /**
   * Runs `work` with `count` fresh positions and releases them when it settles, whether it
   * committed or failed.
   */
  async withPositions<T>(count: number, work: (positions: number[]) => Promise<T>): Promise<T> {
    const positions = Array.from({ length: count }, () => this.allocate());
    try {
      return await work(positions);
    } finally {
      for (const pos of positions) this.release(pos);
    }
  }
}
