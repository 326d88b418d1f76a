// Small helpers to build the page: elements from data (text only, never HTML strings),
// formatting, and a confirmation dialog.

export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "class") el.className = [el.className, value].filter(Boolean).join(" ");
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function bytes(size) {
  if (size === null || size === undefined) return "";
  const units = ["B", "KB", "MB", "GB"];
  let value = size;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

export function when(iso) {
  if (!iso) return "";
  const date = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  return date.toLocaleString();
}

export function oneLine(value, limit = 200) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > limit ? `${text.slice(0, limit)}…` : text;
}

export function card(title, ...children) {
  return h("section.card", {}, title ? h("h2", {}, title) : null, ...children);
}

export function errorBox(message) {
  return h("p.error", { role: "alert" }, message);
}

// Asks before something that cannot be undone; resolves true when confirmed.
export function confirmAction(text, okLabel = "OK") {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// The URL of a Studio view; every part is encoded on its own, so names may hold any character.
export function studioUrl(...parts) {
  return ["/studio", ...parts.filter((p) => p !== undefined && p !== null && p !== "")
    .map((p) => encodeURIComponent(p))].join("/");
}

export function storageUrl(room, path) {
  const segments = path ? path.split("/").map(encodeURIComponent).join("/") : "";
  return `${studioUrl("rooms", room, "storage")}${segments ? "/" + segments : ""}`;
}

// Wraps a refresh: calls made while one runs are folded into one more run after it, so a burst
// of live events costs at most two fetches and answers never arrive out of order.
export function serial(run) {
  let running = null;
  let again = false;
  const wrapped = async () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await run();
        } while (again);
      } finally {
        running = null;
      }
    })();
    return running;
  };
  return wrapped;
}
