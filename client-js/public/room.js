// One room's live connection: the socket, the channel "room:<name>", who is
// online (phoenix-style Presence) and the typing notices. It reports what
// happens through the callbacks it is given and knows nothing of the DOM.
//
// The page's own small protocol on top of Phoenix Channels (see
// docs/chat-page.md): the connect parameter `user` and the join payload
// {name, status} make the presence entry; `new_msg` {user, name, body} is a
// message and `typing` {user, name} a typing notice, both broadcast by the
// server to everyone in the room (the sender too); `presence_update`
// {name, status} changes one's status.

import { Presence, Socket } from "./lib/parley/index.js";
import { normalizeName, normalizeStatus } from "./settings.js";
import { TypingNotifier, TypingTracker } from "./typing.js";

/** The longest message the page sends, in characters. */
export const MESSAGE_MAX = 1000;

/** Messages from other clients (bots) are shown up to this many characters. */
const SHOWN_MAX = 4000;

/**
 * The callbacks a RoomConnection reports to (all required):
 *   onConnection(live, {everJoined})
 *                             live is true once the room is joined, false
 *                             when the connection is lost or cannot be made
 *                             (the library reconnects and rejoins by itself;
 *                             true again when it has); everJoined says
 *                             whether the room was ever joined;
 *   onJoined({again})         a join succeeded; again is true after a rejoin;
 *   onJoinError(reason)       the server refused the join;
 *   onMessage(message)        {user, name, body, own, at: Date};
 *   onNotice(text, kind)      a line for the message list ("join", "leave",
 *                             "info" or "error");
 *   onPeople(people)          who is online, sorted, yourself first: a list
 *                             of {user, name, status, tabs, self};
 *   onTyping(names)           the display names of who is typing now.
 */
export class RoomConnection {
  constructor({ name, room, status }, events) {
    // The presence key is the name: the same name in several tabs (or
    // devices) is one person with several metas.
    this.user = name;
    this.name = name;
    this.room = room;
    this.status = normalizeStatus(status);
    this.events = events;
    this.live = false;
    this.left = false;
    this.joinedBefore = false;
    // True from a join's reply until the presence_state that follows it:
    // that first sync lists who was already there, which is not news.
    this.awaitingState = false;
    this.knownPeople = new Map(); // user key -> display name, as of the last sync
    this.tracker = new TypingTracker((names) => events.onTyping(names));
    this.notifier = new TypingNotifier(() => this.sendTyping());
  }

  /** Connects and joins the room. */
  connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    this.socket = new Socket(`${scheme}://${window.location.host}/socket`, {
      params: { user: this.user },
    });
    this.socket.onError(() => this.lost());
    this.socket.onClose(() => this.lost());

    // The join payload is a function, so that a rejoin after a reconnect
    // carries the status chosen since, not the one of the first join.
    this.channel = this.socket.channel(`room:${this.room}`, () => ({
      name: this.name,
      status: this.status,
    }));
    this.presence = new Presence(this.channel);
    this.presence.onSync(() => this.synced());
    this.channel.on("new_msg", (payload) => this.received(payload));
    this.channel.on("typing", (payload) => this.typingReceived(payload));

    this.channel
      .join()
      .receive("ok", () => this.joined())
      .receive("error", (resp) => this.events.onJoinError(reasonOf(resp)))
      .receive("timeout", () => this.events.onNotice("Joining takes long; still trying…", "info"));
    this.socket.connect();
  }

  /** Leaves the room and closes the connection for good. */
  leave() {
    this.left = true;
    this.live = false;
    this.tracker.clear();
    this.channel?.leave();
    this.socket?.disconnect();
  }

  /**
   * Sends a message. Resolves when the server accepted it; rejects with an
   * Error saying why not. While the connection is down the library keeps
   * the message and sends it after rejoining, unless that takes longer than
   * its push timeout.
   */
  send(body) {
    this.notifier.reset();
    return new Promise((resolve, reject) => {
      this.channel
        .push("new_msg", { user: this.user, name: this.name, body })
        .receive("ok", () => resolve())
        .receive("error", (resp) => reject(new Error(reasonOf(resp))))
        .receive("timeout", () => reject(new Error("no answer from the server")));
    });
  }

  /** Called on every edit of the message box (hasText: it is not empty). */
  edited(hasText) {
    // Typing notices are only worth sending live: the library would queue
    // them while disconnected and deliver them stale.
    if (this.live) this.notifier.edited(hasText);
  }

  /** Changes one's status for everyone in the room. */
  setStatus(status) {
    this.status = normalizeStatus(status);
    // While the connection is down, the rejoin will carry the new status.
    if (!this.live) return;
    this.channel
      .push("presence_update", { name: this.name, status: this.status })
      .receive("error", (resp) =>
        this.events.onNotice(`Your status could not be changed (${reasonOf(resp)}).`, "error"),
      );
  }

  // ---- events from the library ----------------------------------------------

  joined() {
    this.live = true;
    this.awaitingState = true;
    this.events.onConnection(true);
    this.events.onJoined({ again: this.joinedBefore });
    this.joinedBefore = true;
  }

  lost() {
    // onError and onClose both fire on one loss, and again for every failed
    // reconnection attempt; reporting the same state twice is harmless.
    if (this.left) return;
    if (this.live) {
      this.live = false;
      this.tracker.clear();
    }
    this.events.onConnection(false, { everJoined: this.joinedBefore });
  }

  synced() {
    const people = this.presence.list((user, { metas }) => this.person(user, metas));
    people.sort((a, b) => Number(b.self) - Number(a.self) || a.name.localeCompare(b.name));
    const now = new Map(people.map((p) => [p.user, p.name]));
    if (this.awaitingState) {
      this.awaitingState = false;
    } else {
      for (const [user, name] of now) {
        if (user !== this.user && !this.knownPeople.has(user)) {
          this.events.onNotice(`${name} joined`, "join");
        }
      }
      for (const [user, name] of this.knownPeople) {
        if (user !== this.user && !now.has(user)) {
          this.tracker.stopped(user);
          this.events.onNotice(`${name} left`, "leave");
        }
      }
    }
    this.knownPeople = now;
    this.events.onPeople(people);
  }

  /** One entry of the online list from a presence key and its metas (one
   * per tab). The newest meta is last and says the current status. */
  person(user, metas) {
    const newest = metas[metas.length - 1] ?? {};
    return {
      user,
      name: normalizeName(newest.name) || normalizeName(user) || "Someone",
      status: normalizeStatus(newest.status),
      tabs: metas.length,
      self: user === this.user,
    };
  }

  received(payload) {
    if (!payload || typeof payload.body !== "string") return;
    const user = typeof payload.user === "string" ? payload.user : "";
    const name = normalizeName(payload.name) || normalizeName(user) || "Someone";
    // A message ends its sender's typing.
    this.tracker.stopped(user);
    this.events.onMessage({
      user,
      name,
      body: payload.body.slice(0, SHOWN_MAX),
      own: user === this.user,
      at: new Date(),
    });
  }

  typingReceived(payload) {
    if (!payload || typeof payload.user !== "string" || payload.user === this.user) return;
    this.tracker.seen(payload.user, normalizeName(payload.name) || normalizeName(payload.user));
  }

  sendTyping() {
    this.channel.push("typing", { user: this.user, name: this.name });
  }
}

/** The reason in an error reply, or a generic one. */
function reasonOf(resp) {
  return typeof resp?.reason === "string" && resp.reason ? resp.reason : "refused by the server";
}
