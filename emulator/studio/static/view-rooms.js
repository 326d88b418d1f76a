// The room list (with "create a room") and one room's overview.

import { get, post, roomApi } from "./api.js";
import { h, replace, card, bytes, when, studioUrl, errorBox, serial } from "./dom.js";
import { navigate } from "./nav.js";

export function roomsView() {
  const table = h("div");
  const message = h("div");
  const input = h("input", { name: "room", placeholder: "new room name", required: true, "aria-label": "Room name" });
  const form = h("form.inline", {
    onsubmit: async (event) => {
      event.preventDefault();
      replace(message);
      try {
        const room = await post("/studio/api/rooms", { name: input.value });
        navigate(studioUrl("rooms", room.name));
      } catch (error) {
        replace(message, errorBox(error.message));
      }
    },
  }, input, h("button", { type: "submit" }, "Create room"));

  const refresh = serial(async () => {
    const { rooms } = await get("/studio/api/rooms");
    if (!rooms.length) {
      replace(table, h("p.muted", {}, "No rooms yet. A room appears when someone joins it, sends to one of its " +
        "queues or saves a file in it, or when you create one here."));
      return;
    }
    const services = rooms.some((room) => room.services); // only servers that run services
    replace(table, h("table.grid", { dataset: { test: "rooms" } },
      h("thead", {}, h("tr", {}, h("th", {}, "Room"), ["Participants", "Queues", "Messages", "Files", "LLM requests"]
        .map((label) => h("th.num", {}, label)), services ? h("th.num", {}, "Services") : null)),
      h("tbody", {}, rooms.map((room) => h("tr", { dataset: { room: room.name } },
        h("td", {}, h("a", { href: studioUrl("rooms", room.name) }, room.name)),
        h("td.num", {}, room.participants), h("td.num", {}, room.queues), h("td.num", {}, room.messages),
        h("td.num", {}, `${room.files} (${bytes(room.bytes)})`), h("td.num", {}, room.llm_requests),
        services ? h("td.num", {}, room.services ? `${room.services.running}/${room.services.count} running` : "")
          : null)))));
  });
  const el = h("div.page", {}, h("h1", {}, "Rooms"), card(null, table), card("Create a room", form, message));
  return { el, topics: ["rooms"], refresh };
}

export function roomView(room) {
  const people = h("div", { dataset: { test: "participants" } });
  const queues = h("div");
  const storage = h("div");
  const llm = h("div");
  const extra = h("div.cards");
  const refresh = serial(async () => {
    const detail = await get(roomApi(room));
    replace(people, detail.participants.length
      ? h("ul.people", {}, detail.participants.map((p) => h("li", { dataset: { participant: p.name } },
        h("strong", {}, p.name), h("span.tag", {}, p.role), h("code.muted", {}, p.id.slice(0, 8)))))
      : h("p.muted", {}, "Nobody is in the room."));
    replace(queues, detail.queue_list.length
      ? h("table.grid", {}, h("tbody", {}, detail.queue_list.map((q) => h("tr", {},
        h("td", {}, h("a", { href: studioUrl("rooms", room, "queues", q.name) }, q.name)),
        h("td.num", { dataset: { queueSize: q.name } }, `${q.size} message${q.size === 1 ? "" : "s"}`),
        h("td.muted", {}, q.waiting ? `${q.waiting} receiver${q.waiting === 1 ? "" : "s"} waiting` : "")))))
      : h("p.muted", {}, "No queues."));
    replace(storage, h("p", {}, `${detail.storage.files} file${detail.storage.files === 1 ? "" : "s"}, ` +
      `${bytes(detail.storage.bytes)}`, detail.storage.latest_change
      ? h("span.muted", {}, ` · last change ${when(detail.storage.latest_change)}`) : null),
    h("a", { href: studioUrl("rooms", room, "storage") }, "Browse files"));
    replace(llm, h("p", {}, `${detail.llm.requests} request${detail.llm.requests === 1 ? "" : "s"} in ` +
      `${detail.llm.conversations} conversation${detail.llm.conversations === 1 ? "" : "s"}`,
    detail.llm.unmatched ? h("span.bad", {}, ` · ${detail.llm.unmatched} unmatched`) : null),
    h("a", { href: studioUrl("rooms", room, "llm") }, "Read the conversations"));
    const cards = [];
    if (detail.services) {
      cards.push(card("Services", h("p", {}, `${detail.services.running} of ${detail.services.count} running`),
        h("a", { href: studioUrl("rooms", room, "services") }, "States and output")));
    }
    if (detail.faults) {
      cards.push(card("Faults", h("p.bad", {}, `${detail.faults} armed`),
        h("a", { href: studioUrl("rooms", room, "faults") }, "See and clear them")));
    }
    replace(extra, cards);
  });
  const el = h("div.page.overview", {},
    h("h1", {}, room),
    h("div.cards", {}, card("Participants", people), card("Queues", queues), card("Storage", storage),
      card("LLM", llm)), extra);
  return { el, topics: ["participants", "queues", "storage", "llm", "faults", "services"], refresh };
}
