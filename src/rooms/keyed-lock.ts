// An in-process async mutex per key: the room service holds a room's lock while it places, checks
// and persists the room's next event (DESIGN.md "Hub pipeline" steps 4–7), so each room has one
// writer at a time while different rooms proceed in parallel.
export class KeyedLock {
  /** The tail of each key's queue; removed when the last holder releases. */
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => current);
    this.tails.set(key, tail);
    await previous;
    try {
      return await work();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
