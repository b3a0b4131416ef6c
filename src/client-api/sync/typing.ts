// Typing notifications (Client-Server API "Typing Notifications"): in memory, each with a
// timeout, announced to syncs as ephemeral `m.typing` events. The serial orders changes for sync
// tokens; it starts at the wall clock in milliseconds and advances by at least one per change, so
// serials issued after a restart are above any issued before it (see rooms/tokens.ts).

/** Longest typing timeout honoured. */
const MAX_TYPING_MS = 120_000;

interface RoomTyping {
  serial: number;
  users: Map<string, NodeJS.Timeout>;
}

export class TypingTracker {
  private serial: number;
  private readonly rooms = new Map<string, RoomTyping>();
  private relay: ((roomId: string, userId: string, typing: boolean, timeoutMs: number) => void) | undefined;
  private readonly watchers: Array<(roomId: string, userIds: string[]) => void> = [];

  constructor(
    private readonly now: () => number,
    private readonly onChange: (roomId: string) => void,
  ) {
    this.serial = now();
  }

  get currentSerial(): number {
    return this.serial;
  }

  /**
   * Local users' typing (every call, refreshes included, so remote timers are renewed too) also
   * goes to the room's other servers (app/ sets it when the server federates).
   */
  relayLocalTyping(relay: (roomId: string, userId: string, typing: boolean, timeoutMs: number) => void): void {
    this.relay = relay;
  }

  /** Every change of who types in a room, local or remote (app/ hands them to application services). */
  watchTyping(watcher: (roomId: string, userIds: string[]) => void): void {
    this.watchers.push(watcher);
  }

  /** `fromRemote`: the notification came over federation and must not be relayed back out. */
  setTyping(roomId: string, userId: string, typing: boolean, timeoutMs: number, fromRemote = false): void {
    let room = this.rooms.get(roomId);
    const existing = room?.users.get(userId);
    if (!fromRemote && (typing || existing !== undefined)) this.relay?.(roomId, userId, typing, Math.min(timeoutMs, MAX_TYPING_MS));
    if (existing !== undefined) clearTimeout(existing);
    if (typing) {
      if (!room) this.rooms.set(roomId, (room = { serial: this.serial, users: new Map() }));
      const timer = setTimeout(() => this.setTyping(roomId, userId, false, 0, fromRemote), Math.min(timeoutMs, MAX_TYPING_MS));
      timer.unref();
      room.users.set(userId, timer);
      // Refreshing an ongoing notification changes nothing a client sees.
      if (existing !== undefined) return;
    } else {
      if (!room || existing === undefined) return;
      room.users.delete(userId);
    }
    this.serial = Math.max(this.serial + 1, this.now());
    room.serial = this.serial;
    this.onChange(roomId);
    for (const watcher of this.watchers) watcher(roomId, this.typingIn(roomId));
  }

  typingIn(roomId: string): string[] {
    return [...(this.rooms.get(roomId)?.users.keys() ?? [])];
  }

  /** Whether typing in `roomId` changed after `serial`; a serial from the future counts as changed. */
  changedSince(roomId: string, serial: number): boolean {
    const room = this.rooms.get(roomId);
    if (serial > this.serial) return true;
    return room !== undefined && room.serial > serial;
  }

  close(): void {
    for (const room of this.rooms.values()) for (const timer of room.users.values()) clearTimeout(timer);
    this.rooms.clear();
  }
}
