// The chat page's entry point: wires the welcome form, the chat screen and
// the room connection together.
//
// Modules: settings.js (what is remembered, the room in the URL), room.js
// (the connection to one room), typing.js (the typing indicator's timing),
// view.js (everything drawn). The client library is served under
// lib/parley/ by the same server.

import { MESSAGE_MAX, RoomConnection } from "./room.js";
import {
  loadSettings,
  normalizeName,
  normalizeRoom,
  normalizeStatus,
  roomFromUrl,
  saveSettings,
  showRoomInUrl,
  watchStatus,
} from "./settings.js";
import { typingSentence } from "./typing.js";
import { ChatView } from "./view.js";

const view = new ChatView(document);
const el = view.el;

/** The room we are in, or null on the welcome screen. */
let current = null;
/** Messages that arrived while the tab was hidden, shown in its title. */
let unread = 0;

// ---- entering and leaving a room ----------------------------------------------

/** Opens the chat screen and connects to room as name. */
function enter(name, room, status) {
  showRoomInUrl(room);
  view.showChat({ name, room, status });
  unread = 0;
  updateTitle();

  current = new RoomConnection(
    { name, room, status },
    {
      onConnection: (live, info) => view.setLive(live, info),
      onJoined: ({ again }) =>
        view.addNotice(again ? "Reconnected." : `You joined #${room}.`, again ? "info" : "join"),
      onJoinError: (reason) => view.addNotice(`Could not join #${room}: ${reason}.`, "error"),
      onMessage: (message) => {
        view.addMessage(message);
        if (!message.own && document.hidden) {
          unread += 1;
          updateTitle();
        }
      },
      onNotice: (text, kind) => view.addNotice(text, kind),
      onPeople: (people) => view.renderPeople(people),
      onTyping: (names) => view.setTyping(typingSentence(names)),
    },
  );
  current.connect();

  // On a phone, focusing the box would open the keyboard over the messages
  // straight away; there the reader taps it when ready.
  if (!window.matchMedia("(pointer: coarse)").matches) el.messageInput.focus();
}

/** Leaves the room and goes back to the welcome screen. */
function leave() {
  current?.leave();
  current = null;
  showRoomInUrl("");
  const saved = loadSettings();
  view.showWelcome({ name: saved.name, room: saved.room });
}

function updateTitle() {
  const room = current ? `#${current.room} — ` : "";
  document.title = `${unread > 0 ? `(${unread}) ` : ""}${room}Parley`;
}

// ---- the welcome form ------------------------------------------------------------

el.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = normalizeName(el.nameInput.value);
  const room = normalizeRoom(el.roomInput.value);
  if (!name) {
    view.setJoinError("Please choose a name.");
    el.nameInput.focus();
    return;
  }
  if (!room) {
    view.setJoinError("Please choose a room: letters, digits, “-” or “_”.");
    el.roomInput.focus();
    return;
  }
  saveSettings({ name, room });
  enter(name, room, loadSettings().status);
});

// ---- the chat screen ---------------------------------------------------------------

el.sendForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const body = el.messageInput.value.trim().slice(0, MESSAGE_MAX);
  if (!body || !current) return;
  el.messageInput.value = "";
  view.autosize();
  view.showCharsLeft(MESSAGE_MAX);
  const room = current;
  room.send(body).catch((err) => {
    if (room !== current) return;
    view.addNotice(`Your message was not sent (${err.message}).`, "error");
    // Give the text back, unless something new was typed meanwhile.
    if (!el.messageInput.value) {
      el.messageInput.value = body;
      view.autosize();
    }
  });
});

// Enter sends; Shift+Enter makes a new line; Enter that confirms an input
// method's composition (Chinese, Japanese...) does neither.
el.messageInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    el.sendForm.requestSubmit();
  }
});

el.messageInput.addEventListener("input", () => {
  view.autosize();
  view.showCharsLeft(MESSAGE_MAX - el.messageInput.value.length);
  current?.edited(el.messageInput.value.trim() !== "");
});

el.statusSelect.addEventListener("change", () => {
  const status = normalizeStatus(el.statusSelect.value);
  view.showOwnStatus(status);
  saveSettings({ status });
  current?.setStatus(status);
});

// Another tab of this page changed the status: all of one person's tabs
// follow, so that the room sees one status per person.
watchStatus((status) => {
  view.showOwnStatus(status);
  current?.setStatus(status);
});

el.peopleToggle.addEventListener("click", () => view.setPeopleOpen(!view.peopleOpen));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && view.peopleOpen) {
    view.setPeopleOpen(false);
    el.peopleToggle.focus();
  }
});

el.leaveButton.addEventListener("click", leave);

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && unread > 0) {
    unread = 0;
    updateTitle();
  }
});

// ---- start -------------------------------------------------------------------------

// A room in the address and a remembered name: straight into the room.
// Otherwise the welcome form, prefilled with what is known.
{
  const saved = loadSettings();
  const urlRoom = roomFromUrl();
  if (saved.name && urlRoom) {
    saveSettings({ room: urlRoom });
    enter(saved.name, urlRoom, saved.status);
  } else {
    view.showWelcome({ name: saved.name, room: urlRoom || saved.room || "lobby" });
  }
}
