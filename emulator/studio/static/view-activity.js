// Activity: the room's timeline, newest first, filtered by kind and participant, live. The list
// is virtual: ten thousand events cost the page no more than the fifty in view.

import { get, roomApi } from "./api.js";
import { h, replace, card, serial, studioUrl } from "./dom.js";
import { VirtualList } from "./vlist.js";
import { navigate } from "./nav.js";

function time(seconds) {
  const date = new Date(seconds * 1000);
  return `${date.toLocaleTimeString()}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

export function activityView(room, params) {
  const kind = params.get("kind") || "";
  const participant = params.get("participant") || "";
  const filters = h("form.inline.filters");
  const note = h("p.facts");
  let known = { kinds: [], participants: [] };

  const list = new VirtualList({
    rowHeight: 28,
    pageSize: 200,
    empty: "Nothing has happened in this room yet.",
    fetchPage: async (offset, limit) => {
      const query = new URLSearchParams({ offset, limit });
      if (kind) query.set("kind", kind);
      if (participant) query.set("participant", participant);
      const page = await get(`${roomApi(room, "activity")}?${query}`);
      known = page;
      if (!page.available) {
        replace(note, "This server keeps no timeline, so there is no activity to show.");
      } else {
        replace(note, `${page.total} event${page.total === 1 ? "" : "s"}${kind || participant ? " match" : ""}, newest first`);
      }
      return { total: page.total, items: page.events };
    },
    renderRow: (event) => h("div.row.event", { class: `row event${event.code !== null ? " failed" : ""}`, dataset: { kind: event.kind } },
      h("span.time", {}, time(event.at)), h("span.kind", {}, event.kind), h("span.who", {}, event.participant || "—"),
      h("span.what", { title: event.summary }, event.summary)),
  });

  function select(name, value, options, label) {
    return h("label", {}, `${label} `, h("select", {
      name,
      onchange: (e) => {
        const query = new URLSearchParams(location.search);
        if (e.target.value) query.set(name, e.target.value);
        else query.delete(name);
        const search = query.toString();
        navigate(`${studioUrl("rooms", room, "activity")}${search ? `?${search}` : ""}`);
      },
    }, h("option", { value: "" }, "all"), [...new Set([...options, value].filter(Boolean))]
      .map((option) => h("option", { value: option, selected: option === value }, option))));
  }

  const refresh = serial(async () => {
    await list.reload();
    replace(filters, select("kind", kind, known.kinds || [], "Kind"),
      select("participant", participant, known.participants || [], "Participant"));
  });
  const el = h("div.page", {}, h("h1", {}, "Activity"), filters, note, card(null, list.el));
  return { el, topics: ["activity"], refresh };
}
