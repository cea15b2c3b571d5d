// Everything the page draws: the two screens, the message list, the online
// list, the typing line and the connection banner.
//
// Text from other people (names, messages, statuses) only ever goes into the
// page through textContent, never as HTML, so that nobody can inject markup
// or scripts into someone else's page.

/** The message list keeps at most this many lines; older ones are dropped. */
const LIST_MAX = 500;

/** How close to the bottom (in pixels) still counts as "at the bottom" when
 * deciding whether a new message scrolls the list. */
const STICKY_PX = 48;

const STATUS_LABELS = { online: "Online", away: "Away", busy: "Busy" };

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

export class ChatView {
  constructor(doc = document) {
    this.doc = doc;
    const $ = (id) => doc.getElementById(id);
    this.el = {
      banner: $("banner"),
      welcome: $("welcome"),
      joinForm: $("join-form"),
      nameInput: $("name-input"),
      roomInput: $("room-input"),
      joinError: $("join-error"),
      chat: $("chat"),
      roomTitle: $("room-title"),
      meLine: $("me-line"),
      statusPicker: $("status-picker"),
      statusSelect: $("status-select"),
      peopleToggle: $("people-toggle"),
      peopleToggleCount: $("people-toggle-count"),
      leaveButton: $("leave-button"),
      messages: $("messages"),
      typing: $("typing"),
      sendForm: $("send-form"),
      messageInput: $("message-input"),
      charsLeft: $("chars-left"),
      people: $("people"),
      peopleCount: $("people-count"),
      peopleList: $("people-list"),
    };
  }

  // ---- screens ---------------------------------------------------------------

  /** Shows the welcome form, prefilled with name and room. */
  showWelcome({ name = "", room = "" } = {}) {
    this.el.chat.hidden = true;
    this.el.welcome.hidden = false;
    this.setBanner(null);
    this.el.nameInput.value = name;
    this.el.roomInput.value = room;
    this.doc.title = "Parley";
    (name ? this.el.roomInput : this.el.nameInput).focus();
  }

  /** Shows a problem with the welcome form (null hides it). */
  setJoinError(text) {
    this.el.joinError.textContent = text ?? "";
    this.el.joinError.hidden = !text;
  }

  /** Shows the chat screen for room, as name with status, empty. */
  showChat({ name, room, status }) {
    this.el.welcome.hidden = true;
    this.el.chat.hidden = false;
    this.setJoinError(null);
    this.el.roomTitle.textContent = `#${room}`;
    this.el.meLine.textContent = `You are ${name}`;
    this.showOwnStatus(status);
    this.el.messageInput.value = "";
    this.el.messageInput.placeholder = `Message #${room}`;
    this.el.messages.replaceChildren();
    this.el.peopleList.replaceChildren();
    this.setPeopleCount(0);
    this.setTyping("");
    this.setPeopleOpen(false);
    this.autosize();
  }

  /** Shows one's own status in the status select. */
  showOwnStatus(status) {
    this.el.statusSelect.value = status;
    this.el.statusPicker.dataset.status = status;
  }

  // ---- connection --------------------------------------------------------------

  /** Shows text in the banner at the top, or hides it (null). */
  setBanner(text) {
    this.el.banner.textContent = text ?? "";
    this.el.banner.hidden = !text;
  }

  /** Reflects the connection: the banner while it is down, and the online
   * list greyed out, since it may be out of date until the room is back. */
  setLive(live, { everJoined = true } = {}) {
    this.setBanner(
      live ? null : everJoined ? "Connection lost — reconnecting…" : "Cannot reach the server — retrying…",
    );
    this.el.people.classList.toggle("stale", !live);
    this.el.chat.classList.toggle("offline", !live);
  }

  // ---- the message list ----------------------------------------------------------

  /** Appends one message: {name, body, own, at}. */
  addMessage({ name, body, own, at }) {
    const item = this.doc.createElement("li");
    item.className = own ? "message own" : "message";

    const avatar = makeAvatar(this.doc, name);

    const bubble = this.doc.createElement("div");
    bubble.className = "bubble";
    const meta = this.doc.createElement("div");
    meta.className = "meta";
    const sender = this.doc.createElement("span");
    sender.className = "sender";
    sender.textContent = own ? `${name} (you)` : name;
    const time = this.doc.createElement("time");
    time.dateTime = at.toISOString();
    time.textContent = timeFormat.format(at);
    meta.append(sender, time);
    const text = this.doc.createElement("p");
    text.className = "text";
    text.textContent = body;
    bubble.append(meta, text);

    item.append(avatar, bubble);
    this.append(item, own);
  }

  /** Appends a notice line (kind: "join", "leave", "info" or "error"). */
  addNotice(text, kind = "info") {
    const item = this.doc.createElement("li");
    item.className = `notice notice-${kind}`;
    item.textContent = text;
    this.append(item, false);
  }

  /** Appends item, dropping the oldest lines past LIST_MAX, and keeps the
   * newest line in view if the reader was at the bottom (or forced). */
  append(item, forceScroll) {
    const list = this.el.messages;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight <= STICKY_PX;
    list.append(item);
    while (list.childElementCount > LIST_MAX) list.firstElementChild.remove();
    if (atBottom || forceScroll) list.scrollTop = list.scrollHeight;
  }

  /** Shows the typing sentence under the messages ("" hides it). */
  setTyping(sentence) {
    this.el.typing.textContent = sentence;
  }

  // ---- the online list ------------------------------------------------------------

  /** Draws who is online: a list of {name, status, tabs, self}. */
  renderPeople(people) {
    const items = people.map((person) => {
      const item = this.doc.createElement("li");
      item.className = `person status-${person.status}`;
      item.dataset.status = person.status;

      const avatar = makeAvatar(this.doc, person.name);
      const dot = this.doc.createElement("span");
      dot.className = "status-dot";
      dot.setAttribute("aria-hidden", "true");
      avatar.append(dot);

      const text = this.doc.createElement("div");
      text.className = "person-text";
      const name = this.doc.createElement("span");
      name.className = "person-name";
      name.textContent = person.name;
      if (person.self) {
        const you = this.doc.createElement("span");
        you.className = "you";
        you.textContent = " (you)";
        name.append(you);
      }
      const status = this.doc.createElement("span");
      status.className = "person-status";
      status.textContent = STATUS_LABELS[person.status];
      if (person.tabs > 1) status.title = `Connected from ${person.tabs} tabs or devices`;
      text.append(name, status);

      item.append(avatar, text);
      return item;
    });
    this.el.peopleList.replaceChildren(...items);
    this.setPeopleCount(people.length);
  }

  setPeopleCount(n) {
    this.el.peopleCount.textContent = String(n);
    this.el.peopleToggleCount.textContent = String(n);
  }

  /** Opens or closes the online list (on narrow screens it is a panel). */
  setPeopleOpen(open) {
    this.el.chat.classList.toggle("people-open", open);
    this.el.peopleToggle.setAttribute("aria-expanded", String(open));
  }

  get peopleOpen() {
    return this.el.chat.classList.contains("people-open");
  }

  // ---- the send box -----------------------------------------------------------------

  /** Grows the message box with its text, up to the height CSS allows. */
  autosize() {
    const box = this.el.messageInput;
    box.style.height = "auto";
    box.style.height = `${box.scrollHeight}px`;
  }

  /** Says how many characters are left once fewer than 100 are. */
  showCharsLeft(left) {
    this.el.charsLeft.textContent = left < 100 ? `${left} characters left.` : "";
  }
}

/** A round badge with the name's first letter, coloured by the name. */
function makeAvatar(doc, name) {
  const avatar = doc.createElement("span");
  avatar.className = "avatar";
  avatar.setAttribute("aria-hidden", "true");
  avatar.textContent = (Array.from(name)[0] ?? "?").toUpperCase();
  avatar.style.setProperty("--hue", String(hueOf(name)));
  return avatar;
}

/** A stable hue (0-359) for a name, so everyone sees the same colours. */
function hueOf(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}
