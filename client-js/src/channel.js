// Channel: one topic joined over a Socket.
//
// A channel goes closed -> joining -> joined, and back to joining by itself
// whenever it is lost: after the socket reconnects, and, with the rejoinAfterMs
// backoff, after a channel error (phx_error), a join error or a join timeout.
// Only leave() (joined -> leaving -> closed) or a phx_close from the server
// ends it.
//
// Pushes made before the channel is joined wait in a buffer and go out, in
// order, as soon as the join succeeds; each still times out after its own
// timeout. Pushes sent but unanswered when the connection is lost end in
// "timeout" at once. Messages of an earlier join of the topic (another
// join_ref) are dropped, so a late reply can never reach the wrong join.

import { CHANNEL_EVENTS, CHANNEL_STATES, SEND_BUFFER_FULL } from "./constants.js";
import Push from "./push.js";
import Timer from "./timer.js";

/** A function returning `value`, or `value` itself if it is a function. */
const closure = (value) => (typeof value === "function" ? value : () => value);

export default class Channel {
  /**
   * Use `socket.channel(topic, params)` rather than this constructor.
   *
   * @param {string} topic - e.g. "room:lobby".
   * @param {object | (() => object)} params - The join payload, or a function
   *   returning it (called at every join and rejoin).
   * @param {import("./socket.js").default} socket
   */
  constructor(topic, params, socket) {
    this.state = CHANNEL_STATES.closed;
    this.topic = topic;
    this.params = closure(params || {});
    this.socket = socket;
    this.bindings = [];
    this.bindingRef = 0;
    this.timeout = socket.timeout;
    this.joinedOnce = false;
    this.joinPush = new Push(this, CHANNEL_EVENTS.join, this.params, this.timeout);
    this.pushBuffer = [];
    this.replyWaiters = new Map(); // ref -> Push waiting for its phx_reply

    this.rejoinTimer = new Timer(() => {
      if (this.socket.isConnected()) this.rejoin();
    }, socket.rejoinAfterMs);

    // A rejoin scheduled on one connection means nothing on the next one:
    // the socket rejoins errored channels itself as soon as it opens.
    this.socketRefs = [
      socket.onError(() => this.rejoinTimer.reset()),
      socket.onOpen(() => {
        this.rejoinTimer.reset();
        if (this.isErrored()) this.rejoin();
      }),
    ];

    this.joinPush.receive("ok", () => {
      this.state = CHANNEL_STATES.joined;
      this.rejoinTimer.reset();
      const buffered = this.pushBuffer;
      this.pushBuffer = [];
      for (const push of buffered) push.send();
    });
    this.joinPush.receive("error", (response) => {
      this.log(`join error ${this.topic}`, response);
      this.state = CHANNEL_STATES.errored;
      if (this.socket.isConnected()) this.rejoinTimer.scheduleTimeout();
    });
    this.joinPush.receive("timeout", () => {
      this.log(`join timeout ${this.topic} (${this.joinRef()})`, this.joinPush.timeout);
      // The join may still succeed on the server after we gave up waiting;
      // leave it there, so that the server holds no channel we do not count
      // as joined (its presence entry, for instance).
      if (this.socket.isConnected()) {
        new Push(this, CHANNEL_EVENTS.leave, () => ({}), this.timeout).send();
      }
      this.state = CHANNEL_STATES.errored;
      this.joinPush.reset();
      if (this.socket.isConnected()) this.rejoinTimer.scheduleTimeout();
    });
  }

  // ---- public API -----------------------------------------------------------

  /**
   * Joins the topic. Call it once per channel; the channel rejoins by itself
   * after that. The returned push's callbacks run after every join attempt.
   *
   * @param {number} [timeout] - Milliseconds to wait for the join reply
   *   (default: the socket's timeout); also used for later pushes.
   * @returns {Push} the join push: `.receive("ok" | "error" | "timeout", cb)`.
   */
  join(timeout = this.timeout) {
    if (this.joinedOnce) {
      throw new Error(
        `tried to join "${this.topic}" twice: join() may be called once per channel ` +
          "(it rejoins by itself); create a new channel with socket.channel() instead",
      );
    }
    this.timeout = timeout;
    this.joinedOnce = true;
    this.rejoin();
    return this.joinPush;
  }

  /**
   * Sends `event` with `payload` on the topic. Before the channel is joined
   * the push waits in the send buffer; it ends with "timeout" if no reply
   * arrives in time, and with "error" {reason: "send buffer full"} if the
   * buffer already holds `sendBufferMax` messages.
   *
   * @param {string} event
   * @param {object} [payload]
   * @param {number} [timeout] - Milliseconds to wait for the reply.
   * @returns {Push}
   */
  push(event, payload = {}, timeout = this.timeout) {
    if (!this.joinedOnce) {
      throw new Error(`tried to push "${event}" to "${this.topic}" before joining: call channel.join() first`);
    }
    const push = new Push(this, event, () => payload, timeout);
    if (this.canPush()) {
      push.send();
    } else if (this.socket.bufferedCount() >= this.socket.sendBufferMax) {
      this.log(`send buffer full, dropping ${event} on ${this.topic}`);
      push.fail(SEND_BUFFER_FULL);
    } else {
      push.startTimeout();
      // A push that times out while buffered is dropped from the buffer: it
      // has been reported as failed and must not be sent later.
      push.receive("timeout", () => {
        this.pushBuffer = this.pushBuffer.filter((p) => p !== push);
      });
      this.pushBuffer.push(push);
    }
    return push;
  }

  /**
   * Leaves the topic: tells the server (if the channel is joined or joining
   * over an open socket), stops rejoining, and closes the channel once the
   * server replies or the leave times out. onClose callbacks then run and
   * the channel is removed from its socket.
   *
   * @param {number} [timeout]
   * @returns {Push} the leave push; "ok" also when there was nothing to leave.
   */
  leave(timeout = this.timeout) {
    this.rejoinTimer.reset();
    this.joinPush.cancelTimeout();
    const wasOnServer = this.isJoined() || this.isJoining();
    this.state = CHANNEL_STATES.leaving;

    const onClose = () => this.trigger(CHANNEL_EVENTS.close, "leave");
    const leavePush = new Push(this, CHANNEL_EVENTS.leave, () => ({}), timeout);
    leavePush.receive("ok", onClose).receive("timeout", onClose);
    if (wasOnServer && this.socket.isConnected()) {
      leavePush.send();
    } else {
      // Nothing to leave on the server: the channel was never joined, or
      // its join died with the connection.
      leavePush.settle("ok", {});
    }
    return leavePush;
  }

  /**
   * Calls `callback(payload, ref, joinRef)` for every `event` on the topic.
   *
   * @param {string} event
   * @param {(payload: any, ref: string | null, joinRef: string | null) => void} callback
   * @returns {number} a ref for off().
   */
  on(event, callback) {
    const ref = this.bindingRef++;
    this.bindings.push({ event, ref, callback });
    return ref;
  }

  /**
   * Removes the callback `ref` of `event`, or all its callbacks without ref.
   *
   * @param {string} event
   * @param {number} [ref]
   */
  off(event, ref) {
    this.bindings = this.bindings.filter(
      (binding) => !(binding.event === event && (ref === undefined || binding.ref === ref)),
    );
  }

  /**
   * Calls `callback(reason)` when the channel closes: after leave(), or
   * when the server closes it (phx_close).
   *
   * @returns {number} a ref for off("phx_close", ref).
   */
  onClose(callback) {
    return this.on(CHANNEL_EVENTS.close, callback);
  }

  /**
   * Calls `callback(reason)` when the channel errors: the server sent
   * phx_error, or the socket's connection was lost. The channel rejoins.
   *
   * @returns {number} a ref for off("phx_error", ref).
   */
  onError(callback) {
    return this.on(CHANNEL_EVENTS.error, callback);
  }

  /** The ref of the current join push: the join_ref of its messages. */
  joinRef() {
    return this.joinPush.ref;
  }

  isClosed() {
    return this.state === CHANNEL_STATES.closed;
  }

  isErrored() {
    return this.state === CHANNEL_STATES.errored;
  }

  isJoined() {
    return this.state === CHANNEL_STATES.joined;
  }

  isJoining() {
    return this.state === CHANNEL_STATES.joining;
  }

  isLeaving() {
    return this.state === CHANNEL_STATES.leaving;
  }

  // ---- internal: used by Socket and Push ----------------------------------

  /** Whether a push can go out now rather than wait in the buffer. @internal */
  canPush() {
    return this.socket.isConnected() && this.isJoined();
  }

  /** Sends the join again (a no-op while leaving). @internal */
  rejoin(timeout = this.timeout) {
    if (this.isLeaving()) return;
    this.socket.leaveOpenTopic(this.topic, this);
    this.state = CHANNEL_STATES.joining;
    this.joinPush.resend(timeout);
  }

  /** Whether a message from the server belongs to this channel's current
   * join: same topic, and no join_ref or the current one. @internal */
  isMember(topic, event, payload, joinRef) {
    if (this.topic !== topic) return false;
    if (joinRef && joinRef !== this.joinRef()) {
      this.log("dropping a message of an earlier join", { topic, event, payload, joinRef });
      return false;
    }
    return true;
  }

  /** Handles a message for this channel: the channel's own reaction to the
   * reserved events first, then the callbacks bound to `event`. @internal */
  trigger(event, payload, ref = null, joinRef = null) {
    if (event === CHANNEL_EVENTS.reply) this.handleReply(payload, ref);
    if (event === CHANNEL_EVENTS.close) this.handleClose();
    if (event === CHANNEL_EVENTS.error) this.handleError(payload);
    // Callbacks may bind or unbind; run the bindings as they were when the
    // message arrived.
    for (const binding of this.bindings.slice()) {
      if (binding.event === event) binding.callback(payload, ref, joinRef || this.joinRef());
    }
  }

  /** A phx_reply ends the push that waits for its ref. @internal */
  handleReply(payload, ref) {
    const push = this.replyWaiters.get(ref);
    if (push) push.reply(payload);
  }

  /** The channel is over: after leave(), or closed by the server. @internal */
  handleClose() {
    this.log(`close ${this.topic} (${this.joinRef()})`);
    this.rejoinTimer.reset();
    this.state = CHANNEL_STATES.closed;
    this.socket.remove(this);
  }

  /** The channel was lost (phx_error, or the connection): rejoin, at once
   * when the socket next opens or after rejoinAfterMs if it is open. @internal */
  handleError(reason) {
    this.log(`error ${this.topic}`, reason);
    // A join still in flight belongs to the lost state; forgetting its ref
    // makes its late reply, and a join still in the socket's send buffer,
    // stale.
    if (this.isJoining()) this.joinPush.reset();
    this.state = CHANNEL_STATES.errored;
    if (this.socket.isConnected()) this.rejoinTimer.scheduleTimeout();
  }

  /** Routes the phx_reply with `ref` to `push`. @internal */
  awaitReply(ref, push) {
    this.replyWaiters.set(ref, push);
  }

  /** Stops routing replies with `ref`. @internal */
  forgetReply(ref) {
    if (ref !== null) this.replyWaiters.delete(ref);
  }

  /** The socket's connection is gone. The replies to what was sent over it
   * will never come: those pushes end in "timeout" now rather than after
   * their timeout (a leave then closes the channel, as the server dropped
   * it with the connection). Pushes still in the buffer wait for the rejoin.
   * @internal */
  connectionLost(reason) {
    for (const push of [...this.replyWaiters.values()]) {
      if (push.sent && push !== this.joinPush) push.settle("timeout", {});
    }
    if (this.isJoined() || this.isJoining()) this.trigger(CHANNEL_EVENTS.error, { reason });
  }

  /** The number of pushes waiting in this channel's buffer. @internal */
  bufferedCount() {
    return this.pushBuffer.length;
  }

  /** @internal */
  log(msg, data) {
    this.socket.log("channel", msg, data);
  }
}
