// Push: one message sent on a channel and the wait for its reply.
//
// A push ends in exactly one status: "ok" or "error" (the server's reply, or
// "error" {reason: "send buffer full"} when it could not even be queued), or
// "timeout" (no reply in time, or the connection it went out on was lost). `receive(status, callback)` registers what to
// do for each; registering after the push has ended calls back at once, so
// the order of send and receive() never matters.
//
// The join of a channel is a Push too, and the only one that is sent again
// (on every rejoin): its callbacks then run once per attempt.

import { SEND_BUFFER_FULL } from "./constants.js";

export default class Push {
  /**
   * @param {import("./channel.js").default} channel - The channel it is sent on.
   * @param {string} event - The event, e.g. "new_msg" or "phx_join".
   * @param {() => object} payload - Returns the payload; called at each send,
   *   so that a rejoin sends the channel's current params.
   * @param {number} timeout - Milliseconds to wait for the reply.
   */
  constructor(channel, event, payload, timeout) {
    this.channel = channel;
    this.event = event;
    this.payload = payload;
    this.timeout = timeout;
    this.ref = null;
    this.receivedResp = null;
    this.timeoutTimer = null;
    this.recHooks = [];
    this.sent = false;
  }

  /**
   * Registers `callback(response)` for when the push ends with `status`:
   * "ok" and "error" with the server's response, "timeout" with `{}`.
   *
   * @param {"ok" | "error" | "timeout"} status
   * @param {(response: any) => void} callback
   * @returns {Push} this push, to chain receive() calls.
   */
  receive(status, callback) {
    if (this.hasReceived(status)) callback(this.receivedResp.response);
    this.recHooks.push({ status, callback });
    return this;
  }

  // ---- internal: used by Channel ------------------------------------------

  /** Sends the message (or hands it to the socket's buffer) and starts the
   * reply timeout. Does nothing once the push has timed out. @internal */
  send() {
    if (this.hasReceived("timeout")) return;
    this.startTimeout();
    this.sent = true;
    const queued = this.channel.socket.push(
      {
        join_ref: this.channel.joinRef(),
        ref: this.ref,
        topic: this.channel.topic,
        event: this.event,
        payload: this.payload(),
      },
      this.channel,
    );
    if (!queued) this.fail(SEND_BUFFER_FULL);
  }

  /** Forgets the previous attempt and sends again. @internal */
  resend(timeout) {
    this.timeout = timeout;
    this.reset();
    this.send();
  }

  /** Forgets the previous attempt: its ref, its reply and its timer. @internal */
  reset() {
    this.cancelTimeout();
    this.channel.forgetReply(this.ref);
    this.ref = null;
    this.receivedResp = null;
    this.sent = false;
  }

  /** Takes a fresh ref, waits for the reply to it, and starts the timer.
   * Buffered pushes call this before they are sent, so they time out even
   * if the channel never joins. @internal */
  startTimeout() {
    this.cancelTimeout();
    this.channel.forgetReply(this.ref);
    this.ref = this.channel.socket.makeRef();
    this.channel.awaitReply(this.ref, this);
    this.timeoutTimer = setTimeout(() => this.settle("timeout", {}), this.timeout);
  }

  /** Stops the reply timer. @internal */
  cancelTimeout() {
    clearTimeout(this.timeoutTimer);
    this.timeoutTimer = null;
  }

  /** Ends the push with "error" {reason} without waiting for a reply. @internal */
  fail(reason) {
    this.settle("error", { reason });
  }

  /** Ends the push with a phx_reply payload {status, response}. @internal */
  reply(payload) {
    this.settle(payload.status, payload.response);
  }

  /** Whether the push ended with `status`. @internal */
  hasReceived(status) {
    return this.receivedResp !== null && this.receivedResp.status === status;
  }

  /** Records the outcome and runs the callbacks registered for it. @internal */
  settle(status, response) {
    this.cancelTimeout();
    this.channel.forgetReply(this.ref);
    this.receivedResp = { status, response };
    // A callback may register more callbacks (or rejoin, which resets this
    // push); iterate over the ones registered before the outcome.
    for (const hook of this.recHooks.slice()) {
      if (hook.status === status) hook.callback(response);
    }
  }
}
