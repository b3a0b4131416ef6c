// Wakes long-polling syncs (the waking half of SyncNotifier). Waiters are keyed by user and by room.
// A notification at a stream position syncs may not read yet (a lower position is still being
// committed) is held until the stream tracker makes it visible, so a woken sync always finds the
// change it was woken for.
import type { StreamTracker } from "../../storage/stream-tracker.js";
import type { SyncNotifier } from "../contracts.js";

interface Waiter {
  keys: string[];
  wake: () => void;
  fired?: boolean;
}

export const userKey = (userId: string): string => `u:${userId}`;
export const roomKey = (roomId: string): string => `r:${roomId}`;

/** How often held notifications are re-checked while a lower position is in flight. */
const HELD_RECHECK_MS = 2;

export class SyncWaiters implements Pick<SyncNotifier, "notifyUsers" | "notifyRoom"> {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private held: Array<{ streamPos: number; keys: string[] }> = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly streams: StreamTracker) {}

  /**
   * `woken` resolves when one of `keys` is notified, after `timeoutMs`, on `cancel()`, or on close.
   * (A callback, not an AbortSignal: aborting a signal builds a DOMException and its stack trace,
   * which every long-poll paid.)
   */
  wait(keys: string[], timeoutMs: number): { woken: Promise<void>; cancel: () => void } {
    if (this.closed) return { woken: Promise.resolve(), cancel: () => undefined };
    let resolveWoken: () => void = () => undefined;
    const woken = new Promise<void>((resolve) => (resolveWoken = resolve));
    const waiter: Waiter = {
      keys,
      wake: () => {
        clearTimeout(timeout);
        resolveWoken();
      },
    };
    const timeout = setTimeout(() => this.fire(waiter), timeoutMs);
    for (const key of keys) {
      let set = this.waiters.get(key);
      if (!set) this.waiters.set(key, (set = new Set()));
      set.add(waiter);
    }
    return { woken, cancel: () => this.fire(waiter) };
  }

  notifyUsers(userIds: Iterable<string>, streamPos: number): void {
    this.notify([...userIds].map(userKey), streamPos);
  }

  notifyRoom(roomId: string, streamPos: number): void {
    this.notify([roomKey(roomId)], streamPos);
  }

  /** Wakes now, for changes outside the stream (typing). */
  wakeKeys(keys: string[]): void {
    for (const key of keys) {
      const set = this.waiters.get(key);
      if (!set) continue;
      for (const waiter of [...set]) this.fire(waiter);
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.held = [];
    for (const set of [...this.waiters.values()]) for (const waiter of [...set]) this.fire(waiter);
  }

  /** Removes `waiter` and wakes it; a waiter already fired is left alone. */
  private fire(waiter: Waiter): void {
    if (waiter.fired) return;
    waiter.fired = true;
    for (const key of waiter.keys) {
      const set = this.waiters.get(key);
      if (!set) continue;
      set.delete(waiter);
      if (set.size === 0) this.waiters.delete(key);
    }
    waiter.wake();
  }

  private notify(keys: string[], streamPos: number): void {
    if (this.closed) return;
    if (streamPos <= this.streams.visible) {
      this.wakeKeys(keys);
    } else {
      this.held.push({ streamPos, keys });
      this.scheduleHeld();
    }
  }

  private scheduleHeld(): void {
    if (this.timer !== undefined || this.held.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const visible = this.streams.visible;
      const ready = this.held.filter((entry) => entry.streamPos <= visible);
      this.held = this.held.filter((entry) => entry.streamPos > visible);
      for (const entry of ready) this.wakeKeys(entry.keys);
      this.scheduleHeld();
    }, HELD_RECHECK_MS);
    this.timer.unref();
  }
}
