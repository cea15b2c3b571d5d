// The typing indicator's two halves, kept free of the DOM and the socket.
//
// TypingNotifier decides when to tell the room "I am typing": at most once
// per interval while keys are being pressed. TypingTracker remembers who told
// us so, and forgets each of them when no new notice came within the
// time-to-live (or at once when their message arrives).

/** Sends "typing" notices no more often than once per intervalMs. */
export class TypingNotifier {
  /** send() is called to broadcast one notice; now() returns milliseconds. */
  constructor(send, { intervalMs = 2000, now = () => Date.now() } = {}) {
    this.send = send;
    this.intervalMs = intervalMs;
    this.now = now;
    this.lastSent = -Infinity;
  }

  /** Called on every edit of the message box; hasText is false when the
   * box was emptied (which is not typing). */
  edited(hasText) {
    if (!hasText) return;
    const t = this.now();
    if (t - this.lastSent >= this.intervalMs) {
      this.lastSent = t;
      this.send();
    }
  }

  /** Called when the message was sent: the next keystroke notifies again. */
  reset() {
    this.lastSent = -Infinity;
  }
}

/** Who is typing, each entry expiring ttlMs after its last notice. */
export class TypingTracker {
  /** onChange(names) is called with the sorted display names whenever the
   * set of typists changes. */
  constructor(onChange, { ttlMs = 4000 } = {}) {
    this.onChange = onChange;
    this.ttlMs = ttlMs;
    this.typists = new Map(); // user key -> { name, timer }
  }

  /** Records a typing notice from user (shown as name). */
  seen(user, name) {
    const known = this.typists.get(user);
    if (known) clearTimeout(known.timer);
    const timer = setTimeout(() => this.stopped(user), this.ttlMs);
    this.typists.set(user, { name, timer });
    if (!known || known.name !== name) this.changed();
  }

  /** Forgets user (their message arrived, they left, or the notice expired). */
  stopped(user) {
    const known = this.typists.get(user);
    if (!known) return;
    clearTimeout(known.timer);
    this.typists.delete(user);
    this.changed();
  }

  /** Forgets everyone (the connection was lost or the room was left). */
  clear() {
    if (this.typists.size === 0) return;
    for (const { timer } of this.typists.values()) clearTimeout(timer);
    this.typists.clear();
    this.changed();
  }

  changed() {
    const names = [...this.typists.values()].map((t) => t.name);
    names.sort((a, b) => a.localeCompare(b));
    this.onChange(names);
  }
}

/** Returns the sentence shown under the messages for these typists:
 * "", "Ada is typing…", "Ada and Bob are typing…",
 * "Ada, Bob and Cy are typing…", "Ada, Bob and 2 others are typing…". */
export function typingSentence(names) {
  switch (names.length) {
    case 0:
      return "";
    case 1:
      return `${names[0]} is typing…`;
    case 2:
      return `${names[0]} and ${names[1]} are typing…`;
    case 3:
      return `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
    default:
      return `${names[0]}, ${names[1]} and ${names.length - 2} others are typing…`;
  }
}
