// Activity: the room's timeline, newest first, filtered by kind and participant, live. The list
// is virtual: ten thousand events cost the page no more than the fifty in view.
//
// Pages are read as of one event (`upto`), so scrolling through older events while new ones
// arrive neither skips nor repeats a row. At the top the list follows new events; scrolled
// down, it keeps its rows and offers the newer ones with a button.

import { get, roomApi } from "./api.js";
import { h, replace, card, serial, studioUrl } from "./dom.js";
import { VirtualList } from "./vlist.js";
import { navigate } from "./nav.js";

const ROW_HEIGHT = 28;

function time(seconds) {
  // 24-hour local time to the millisecond: events of one call are often a millisecond apart.
  const date = new Date(seconds * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}` +
    `.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

function plural(count, word) {
  return `${count.toLocaleString("en")} ${word}${count === 1 ? "" : "s"}`;
}

function failed(event) {
  return event.code !== null || event.kind === "call.unanswered";
}

function eventRow(event) {
  return h("div.row.event", { class: failed(event) ? "failed" : "", dataset: { kind: event.kind, seq: event.seq } },
    h("span.time", {}, time(event.at)), h("span.kind", {}, event.kind),
    h("span.who", { title: event.participant || "" }, event.participant || "—"),
    h("span.what", { title: event.summary }, event.summary));
}

export function activityView(room, params) {
  const kind = params.get("kind") || "";
  const participant = params.get("participant") || "";
  const filtered = Boolean(kind || participant);
  const filters = h("form.inline.filters", { dataset: { test: "activity-filters" } });
  const note = h("p.facts", { dataset: { test: "activity-count" } });
  const newer = h("button.newer", { type: "button", hidden: true, dataset: { test: "activity-newer" } });
  let upto = null; // the newest event the pages are read as of (null: the next read fixes it)
  let options = "";

  function query(offset, limit) {
    const search = new URLSearchParams({ offset, limit });
    if (upto !== null) search.set("upto", upto);
    if (kind) search.set("kind", kind);
    if (participant) search.set("participant", participant);
    return `${roomApi(room, "activity")}?${search}`;
  }

  function describe(page) {
    const kept = `the server keeps the last ${page.kept.toLocaleString("en")} per room`;
    replace(note, `${plural(page.total, "event")}${filtered ? " match" : ""}, newest first (${kept})`);
    newer.hidden = !page.newer;
    newer.textContent = `↑ ${plural(page.newer, "newer event")}`;
  }

  function showFilters(page) {
    const now = JSON.stringify([page.kinds, page.participants]);
    if (now === options) return; // rebuilding would close a select someone has open
    options = now;
    replace(filters, select("kind", kind, page.kinds, "Kind"),
      select("participant", participant, page.participants, "Participant"),
      filtered ? h("a", { href: studioUrl("rooms", room, "activity") }, "Show all") : null);
  }

  const list = new VirtualList({
    rowHeight: ROW_HEIGHT,
    pageSize: 200,
    empty: filtered ? "No event matches." : "Nothing has happened in this room yet.",
    fetchPage: async (offset, limit) => {
      const page = await get(query(offset, limit));
      if (upto === null) upto = page.upto;
      describe(page);
      showFilters(page);
      return { total: page.total, items: page.events };
    },
    renderRow: eventRow,
  });

  function select(name, value, choices, label) {
    return h("label", {}, `${label} `, h("select", {
      name,
      onchange: (e) => {
        const search = new URLSearchParams(location.search);
        if (e.target.value) search.set(name, e.target.value);
        else search.delete(name);
        const tail = search.toString();
        navigate(`${studioUrl("rooms", room, "activity")}${tail ? `?${tail}` : ""}`);
      },
    }, h("option", { value: "" }, "all"), [...new Set([...choices, value].filter(Boolean))]
      .map((choice) => h("option", { value: choice, selected: choice === value }, choice))));
  }

  async function latest() {
    upto = null;
    await list.reload();
  }

  const refresh = serial(async () => {
    if (upto === null || list.el.scrollTop < ROW_HEIGHT) {
      await latest(); // at the top: follow
      return;
    }
    describe(await get(query(0, 0))); // scrolled down: keep the rows, count the newer ones
  });

  newer.addEventListener("click", async () => {
    list.el.scrollTop = 0;
    await latest();
  });

  const el = h("div.page", {}, h("h1", {}, "Activity"), filters, h("div.activity-head", {}, note, newer),
    card(null, list.el));
  return { el, topics: ["activity"], refresh };
}
