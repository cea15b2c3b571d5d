// The retry timer behind reconnects and rejoins, and the default backoff it
// uses: capped exponential backoff with full jitter.
//
// Full jitter (the delay is drawn uniformly from [0, min(cap, base * 2^(n-1))])
// matters more than the exponent: when a server restarts, all its clients see
// the close at the same instant, and any deterministic schedule would bring
// them back at the same instant too. Spreading every attempt over the whole
// window turns a stampede of 10,000 connects into a steady trickle.

/**
 * Returns a backoff function `(tries) => ms` drawing each delay uniformly from
 * [0, min(capMs, baseMs * 2^(tries - 1))].
 *
 * @param {number} baseMs - The upper bound of the first delay.
 * @param {number} capMs - The largest upper bound, reached after a few tries.
 * @param {() => number} [random] - A source of numbers in [0, 1).
 * @returns {(tries: number) => number}
 */
export function jitteredBackoff(baseMs, capMs, random = Math.random) {
  return (tries) => {
    // Past 2^30 the cap has long been reached; stopping there keeps the
    // arithmetic finite however long a server stays away.
    const exponent = Math.min(Math.max(tries, 1) - 1, 30);
    const ceiling = Math.min(capMs, baseMs * 2 ** exponent);
    return Math.floor(random() * ceiling);
  };
}

/**
 * Calls `callback` after a delay computed from the number of tries so far.
 * Each `scheduleTimeout()` counts one try; `reset()` starts over.
 *
 * @example
 * const timer = new Timer(() => socket.connect(), jitteredBackoff(250, 10000));
 * timer.scheduleTimeout(); // fires within 250 ms
 * timer.scheduleTimeout(); // replaces it: fires within 500 ms
 * timer.reset();           // cancelled; the next one is within 250 ms again
 */
export default class Timer {
  /**
   * @param {() => void} callback - What to do when the timer fires.
   * @param {(tries: number) => number} timerCalc - The delay in ms for try n (from 1).
   */
  constructor(callback, timerCalc) {
    this.callback = callback;
    this.timerCalc = timerCalc;
    this.timer = null;
    this.tries = 0;
  }

  /** Cancels the pending call, if any, and forgets the tries. */
  reset() {
    this.tries = 0;
    this.cancel();
  }

  /** Cancels the pending call, if any, but keeps counting tries: the next
   * scheduleTimeout() backs off further. */
  cancel() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  /** Whether a call is pending. */
  isScheduled() {
    return this.timer !== null;
  }

  /** Schedules the callback after the delay for the next try, replacing any
   * pending call. */
  scheduleTimeout() {
    this.cancel();
    const delay = this.timerCalc(this.tries + 1);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.tries += 1;
      this.callback();
    }, delay);
  }
}
