// The Studio page: reads its URL, shows that view, and keeps it up to date from the live stream.
//
// URLs: /studio (rooms), /studio/faults, /studio/rooms/{room}[/{tab}[/{rest}]] where tab is
// queues, storage, activity, llm, services or faults. Every view has its own URL, so a link can
// be shared and a test can go straight to it.

import { startSession, post } from "./api.js";
import { h, replace, studioUrl, errorBox } from "./dom.js";
import { navigate } from "./nav.js";
import { roomsView, roomView } from "./view-rooms.js";
import { queuesView, queueView } from "./view-queues.js";
import { storageView } from "./view-storage.js";
import { activityView } from "./view-activity.js";
import { llmView } from "./view-llm.js";
import { servicesView } from "./view-services.js";
import { faultsView } from "./view-faults.js";

const TABS = [
  ["", "Overview"], ["queues", "Queues"], ["storage", "Storage"], ["activity", "Activity"],
  ["llm", "LLM"], ["services", "Services"], ["faults", "Faults"],
];

let current = null; // the view on screen: { topics, refresh(), destroy() }
let live = null; // { room, source }

function route() {
  // Split the raw path, then decode each part: a room or file name may contain "/" as %2F.
  const parts = location.pathname.replace(/^\/studio\/?/, "").split("/").filter(Boolean)
    .map(decodeURIComponent);
  const params = new URLSearchParams(location.search);
  if (!parts.length) return { room: null, tab: "rooms", make: () => roomsView() };
  if (parts[0] === "faults" && parts.length === 1) return { room: null, tab: "faults", make: () => faultsView(null) };
  if (parts[0] !== "rooms" || parts.length < 2) return { room: null, tab: "missing" };
  const room = parts[1];
  const tab = parts[2] || "";
  const rest = parts.slice(3);
  const views = {
    "": () => roomView(room),
    queues: () => (rest.length ? queueView(room, rest.join("/")) : queuesView(room)),
    storage: () => storageView(room, rest.join("/")),
    activity: () => activityView(room, params),
    llm: () => llmView(room),
    services: () => servicesView(room),
    faults: () => faultsView(room),
  };
  return { room, tab, rest, make: views[tab] };
}

function crumbs({ room, tab, rest = [] }) {
  const items = [h("a", { href: "/studio" }, "Rooms")];
  if (room !== null) {
    items.push(h("a", { href: studioUrl("rooms", room) }, room));
    if (tab) items.push(h("a", { href: studioUrl("rooms", room, tab) }, tab));
    rest.forEach((part) => items.push(h("span", {}, part)));
  } else if (tab === "faults") {
    items.push(h("span", {}, "faults"));
  }
  return items.flatMap((item, index) => (index ? [h("span.sep", {}, "/"), item] : [item]));
}

function tabs(room, active) {
  const nav = document.getElementById("tabs");
  nav.hidden = room === null;
  if (room === null) return;
  replace(nav, TABS.map(([tab, label]) => h("a", {
    href: studioUrl("rooms", room, tab), class: tab === active ? "active" : "", dataset: { tab: tab || "overview" },
  }, label)));
}

function follow(room) {
  // One live stream for the room on screen (or the room list); it names the topics that changed.
  if (live && live.room === room) return;
  if (live) live.source.close();
  const badge = document.getElementById("live");
  const source = new EventSource(`/studio/api/live${room === null ? "" : `?room=${encodeURIComponent(room)}`}`);
  source.addEventListener("ready", () => {
    badge.textContent = "live";
    badge.className = "live on";
  });
  source.addEventListener("change", (event) => {
    const { topics } = JSON.parse(event.data);
    if (current && topics.some((topic) => current.topics.includes(topic))) current.refresh();
  });
  source.addEventListener("error", () => {
    badge.textContent = "reconnecting…";
    badge.className = "live";
  });
  live = { room, source };
}

async function show() {
  const where = route();
  if (current) current.destroy?.();
  current = null;
  const main = document.getElementById("view");
  replace(document.getElementById("crumbs"), crumbs(where));
  tabs(where.room, where.tab);
  if (!where.make) {
    replace(main, errorBox("There is no such page in the Studio."), h("a", { href: "/studio" }, "All rooms"));
    return;
  }
  document.title = where.room === null ? "localmesh Studio" : `${where.room} · localmesh Studio`;
  const view = where.make();
  current = view;
  replace(main, view.el);
  follow(where.room);
  try {
    await view.refresh();
  } catch (error) {
    main.prepend(errorBox(error.message));
  }
}


// Links inside the Studio change the view without reloading the page.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || link.hasAttribute("download") || link.target || event.ctrlKey || event.metaKey ||
      event.shiftKey || event.button !== 0) return;
  const url = new URL(link.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/studio") ||
      url.pathname.startsWith("/studio/api")) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", show);
window.addEventListener("studio:navigate", show);

document.getElementById("logout").addEventListener("click", async () => {
  await post("/studio/logout", {});
  window.location.assign("/studio/login");
});

startSession().then(show).catch((error) => {
  replace(document.getElementById("view"), errorBox(error.message));
});
