// Faults: the failures armed on purpose (server.faults.fail(...)), how often each has fired,
// and a button to clear them, for one room or for the whole server.

import { get, del } from "./api.js";
import { h, replace, card, serial, confirmAction, errorBox } from "./dom.js";

export function faultsView(room) {
  const body = h("div");
  const problems = h("div");
  const query = room === null ? "" : `?room=${encodeURIComponent(room)}`;
  const refresh = serial(async () => {
    const { faults } = await get(`/studio/api/faults${query}`);
    if (!faults.length) {
      replace(body, h("p.muted", {}, "No faults are armed."));
      return;
    }
    replace(body, h("table.grid", { dataset: { test: "faults" } },
      h("thead", {}, h("tr", {}, ["Call", "Room", "Error", "Left", "Fired"].map((label) => h("th", {}, label)))),
      h("tbody", {}, faults.map((f) => h("tr", {},
        h("td", {}, h("code", {}, `${f.toolkit}.${f.tool}`)), h("td", {}, f.room ?? "every room"),
        h("td", {}, `${f.code}: ${f.message}`), h("td.num", {}, f.remaining ?? "every call"),
        h("td.num", {}, f.fired))))),
    h("button.danger", {
      type: "button",
      onclick: async () => {
        if (!(await confirmAction(room === null ? "Clear every armed fault?" : `Clear the faults aimed at ${room}?`, "Clear"))) return;
        try {
          await del(`/studio/api/faults${query}`);
          await refresh();
        } catch (error) {
          replace(problems, errorBox(error.message));
        }
      },
    }, "Clear faults"));
  });
  const title = room === null ? "Faults (every room)" : "Faults";
  return { el: h("div.page", {}, h("h1", {}, title), problems, card(null, body)), topics: ["faults"], refresh };
}
