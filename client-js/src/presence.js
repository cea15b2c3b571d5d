// Presence: who is in a channel, kept in sync from the server's
// presence_state (the whole picture, after every join) and presence_diff
// (joins and leaves since) messages.
//
// The state maps each key (a user) to {metas: [...]}, one meta per
// connection of that user (tabs, devices), each told apart by its phx_ref:
//
//   {"ada": {"metas": [{"status": "online", "phx_ref": "n1:1"},
//                      {"status": "away",   "phx_ref": "n1:4"}]}}
//
// The static functions are pure: they return a new state and never modify
// their arguments (unchanged entries are shared between the old and the new
// state, so treat states as read-only). They follow phoenix.js' Presence
// exactly, callbacks and their order included; protocol/vectors/presence.json
// pins that behaviour and the unit tests check both libraries against it.
//
// Keys are chosen by users, so a state may hold "__proto__" or
// "constructor": states are objects without a prototype, and keys are only
// ever looked up as own properties.

import { PRESENCE_EVENTS } from "./constants.js";

const noop = () => {};

/** A prototype-free shallow copy of `object`. */
function copyState(object) {
  return Object.assign(Object.create(null), object);
}

/** The presence under `key`, if `state` has one of its own. */
function own(state, key) {
  return Object.prototype.hasOwnProperty.call(state, key) ? state[key] : undefined;
}

/** A deep copy of plain JSON data (payloads are JSON by construction). */
function cloneJSON(value) {
  return JSON.parse(JSON.stringify(value));
}

export default class Presence {
  /**
   * Tracks the presence of `channel`; create it before channel.join() so
   * that the first presence_state is not missed.
   *
   * @param {import("./channel.js").default} channel
   * @param {{events?: {state?: string, diff?: string}}} [opts] - Other event
   *   names than presence_state and presence_diff.
   */
  constructor(channel, opts = {}) {
    const events = { ...PRESENCE_EVENTS, ...(opts.events || {}) };
    this.channel = channel;
    this.state = Object.create(null);
    this.pendingDiffs = [];
    this.joinRef = null;
    this.caller = { onJoin: noop, onLeave: noop, onSync: noop };

    this.channel.on(events.state, (newState) => {
      const { onJoin, onLeave, onSync } = this.caller;
      this.joinRef = this.channel.joinRef();
      this.state = Presence.syncState(this.state, newState, onJoin, onLeave);
      for (const diff of this.pendingDiffs) {
        this.state = Presence.syncDiff(this.state, diff, onJoin, onLeave);
      }
      this.pendingDiffs = [];
      onSync();
    });

    this.channel.on(events.diff, (diff) => {
      const { onJoin, onLeave, onSync } = this.caller;
      // A diff means nothing before the state it applies to: after a
      // (re)join, diffs wait until that join's presence_state has arrived.
      if (this.inPendingSyncState()) {
        this.pendingDiffs.push(diff);
      } else {
        this.state = Presence.syncDiff(this.state, diff, onJoin, onLeave);
        onSync();
      }
    });
  }

  /**
   * Sets the callback for joins: `callback(key, current, newPresence)`, where
   * `current` is the key's presence before (undefined for a new key) and
   * `newPresence` holds the metas that joined. Replaces the previous one.
   */
  onJoin(callback) {
    this.caller.onJoin = callback;
  }

  /**
   * Sets the callback for leaves: `callback(key, current, leftPresence)`,
   * where `current` is the key's presence after the leave (`metas` empty when
   * its last connection left) and `leftPresence` holds the metas that left.
   * Replaces the previous one.
   */
  onLeave(callback) {
    this.caller.onLeave = callback;
  }

  /** Sets the callback run after each state or diff has been applied.
   * Replaces the previous one. */
  onSync(callback) {
    this.caller.onSync = callback;
  }

  /**
   * The presences, in the state's key order (see Presence.list).
   *
   * @param {(key: string, presence: {metas: object[]}) => any} [chooser]
   * @returns {any[]}
   */
  list(chooser) {
    return Presence.list(this.state, chooser);
  }

  /** Whether diffs must wait for a presence_state (see the constructor). @internal */
  inPendingSyncState() {
    return !this.joinRef || this.joinRef !== this.channel.joinRef();
  }

  // ---- pure functions -------------------------------------------------------

  /**
   * Brings `state` to `newState` (a presence_state payload), calling onJoin
   * for the metas that are new and onLeave for those that are gone, such as
   * the users who left while the socket was disconnected.
   *
   * @param {object} state - The current state (not modified).
   * @param {object} newState - The full state from the server (not modified).
   * @param {Function} [onJoin] - As in presence.onJoin().
   * @param {Function} [onLeave] - As in presence.onLeave().
   * @returns {object} the new state.
   */
  static syncState(state, newState, onJoin, onLeave) {
    const joins = Object.create(null);
    const leaves = Object.create(null);

    for (const key of Object.keys(state)) {
      if (own(newState, key) === undefined) leaves[key] = state[key];
    }
    for (const key of Object.keys(newState)) {
      const next = newState[key];
      const current = own(state, key);
      if (current === undefined) {
        joins[key] = next;
        continue;
      }
      const nextRefs = new Set(next.metas.map((meta) => meta.phx_ref));
      const currentRefs = new Set(current.metas.map((meta) => meta.phx_ref));
      const joined = next.metas.filter((meta) => !currentRefs.has(meta.phx_ref));
      const left = current.metas.filter((meta) => !nextRefs.has(meta.phx_ref));
      if (joined.length > 0) joins[key] = { ...next, metas: joined };
      if (left.length > 0) leaves[key] = { ...current, metas: left };
    }
    return Presence.syncDiff(state, { joins, leaves }, onJoin, onLeave);
  }

  /**
   * Applies `diff` (a presence_diff payload, {joins, leaves}) to `state`.
   * Joins come first: a joined meta replaces the one with the same phx_ref
   * and goes after the key's other metas. Then leaves remove metas by
   * phx_ref, and a key without metas is removed. A meta update arrives as
   * the new meta (with phx_ref_prev) joining and the old one leaving.
   *
   * @param {object} state - The current state (not modified).
   * @param {{joins?: object, leaves?: object}} diff - Not modified.
   * @param {Function} [onJoin] - Called per joined key, before the leaves.
   * @param {Function} [onLeave] - Called per key with leaves, known keys only.
   * @returns {object} the new state.
   */
  static syncDiff(state, diff, onJoin = noop, onLeave = noop) {
    const next = copyState(state);
    const { joins = {}, leaves = {} } = cloneJSON(diff);

    for (const key of Object.keys(joins)) {
      const joined = joins[key];
      const current = own(next, key);
      const joinedRefs = new Set(joined.metas.map((meta) => meta.phx_ref));
      const kept = current ? current.metas.filter((meta) => !joinedRefs.has(meta.phx_ref)) : [];
      next[key] = { ...joined, metas: [...kept, ...joined.metas] };
      onJoin(key, current, joined);
    }
    for (const key of Object.keys(leaves)) {
      const left = leaves[key];
      const current = own(next, key);
      if (current === undefined) continue;
      const leftRefs = new Set(left.metas.map((meta) => meta.phx_ref));
      const remaining = { ...current, metas: current.metas.filter((meta) => !leftRefs.has(meta.phx_ref)) };
      onLeave(key, remaining, left);
      if (remaining.metas.length === 0) {
        delete next[key];
      } else {
        next[key] = remaining;
      }
    }
    return next;
  }

  /**
   * The presences of `state` as an array, `chooser(key, presence)` for each
   * (default: the presence itself). The order is the state's key order:
   * first seen, first listed, as in phoenix.js (JavaScript puts keys that
   * look like array indices, "42", first in numeric order). Sort the result
   * for an alphabetical list.
   *
   * @param {object} state
   * @param {(key: string, presence: {metas: object[]}) => any} [chooser]
   * @returns {any[]}
   */
  static list(state, chooser = (key, presence) => presence) {
    return Object.keys(state).map((key) => chooser(key, state[key]));
  }
}
