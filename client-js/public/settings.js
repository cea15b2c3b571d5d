// What the page remembers between visits, and the room named in the URL.
//
// The name, the last room and the chosen status live in localStorage, so a
// returning visitor goes straight back into their room. A room can also come
// from the address: "?room=lobby" or "#lobby" (the query wins). Storage may
// be unavailable (private windows, disabled cookies); the page then simply
// forgets.

/** The longest name and room name the page accepts, in characters. */
export const NAME_MAX = 32;
export const ROOM_MAX = 48;

/** The statuses a person can choose; anything else is shown as "online". */
export const STATUSES = ["online", "away", "busy"];

const KEYS = { name: "parley.name", room: "parley.room", status: "parley.status" };

/** Returns a display name cleaned up: whitespace trimmed and collapsed,
 * control characters removed, at most NAME_MAX characters ("" if nothing is
 * left). */
export function normalizeName(raw) {
  return Array.from(
    String(raw ?? "")
      .replace(/[\u0000-\u001f\u007f]/g, "")
      .replace(/\s+/g, " ")
      .trim(),
  )
    .slice(0, NAME_MAX)
    .join("")
    .trim();
}

/** Returns a room name as a short slug: lower case, spaces turned into "-",
 * only a-z, 0-9, "-" and "_" kept, at most ROOM_MAX characters ("" if
 * nothing is left). A leading "#" is dropped, so "#Lobby" gives "lobby". */
export function normalizeRoom(raw) {
  return String(raw ?? "")
    .trim()
    .replace(/^#+/, "")
    .toLowerCase()
    .replace(/\s+/g, "-")
    .replace(/[^a-z0-9_-]/g, "")
    .slice(0, ROOM_MAX);
}

/** Returns the status if it is one of STATUSES, else "online". */
export function normalizeStatus(raw) {
  return STATUSES.includes(raw) ? raw : "online";
}

/** Returns the room named by the address ("?room=x", else "#x"), or "". */
export function roomFromUrl(loc = window.location) {
  const fromQuery = new URLSearchParams(loc.search).get("room");
  if (fromQuery) return normalizeRoom(fromQuery);
  let hash = loc.hash.replace(/^#/, "");
  try {
    hash = decodeURIComponent(hash);
  } catch {
    // A malformed escape is kept as typed; normalizeRoom drops the "%".
  }
  return normalizeRoom(hash);
}

/** Points the address bar at the room (replacing, not adding, a history
 * entry), so that the address can be shared as an invitation. */
export function showRoomInUrl(room) {
  const url = new URL(window.location.href);
  url.search = room ? `?room=${encodeURIComponent(room)}` : "";
  url.hash = "";
  window.history.replaceState(null, "", url);
}

function read(key) {
  try {
    return window.localStorage.getItem(key) ?? "";
  } catch {
    return "";
  }
}

function write(key, value) {
  try {
    window.localStorage.setItem(key, value);
  } catch {
    // Storage is full or disabled: the setting is kept for this visit only.
  }
}

/** Returns the remembered {name, room, status}, each cleaned up ("" when
 * unknown; status defaults to "online"). */
export function loadSettings() {
  return {
    name: normalizeName(read(KEYS.name)),
    room: normalizeRoom(read(KEYS.room)),
    status: normalizeStatus(read(KEYS.status)),
  };
}

/** Remembers the given settings (any subset of name, room, status). */
export function saveSettings(settings) {
  for (const [field, key] of Object.entries(KEYS)) {
    if (settings[field] !== undefined) write(key, settings[field]);
  }
}

/** Calls onStatus(status) when another tab of this page changes the
 * remembered status, so that all of one person's tabs agree. */
export function watchStatus(onStatus) {
  window.addEventListener("storage", (event) => {
    if (event.key === KEYS.status && event.newValue) onStatus(normalizeStatus(event.newValue));
  });
}
