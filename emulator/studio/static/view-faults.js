// Faults: the failures armed on purpose (server.faults.fail(...), or the form here), how often
// each has fired, and a button to clear them, for one room or for the whole server.

import { get, post, del } from "./api.js";
import { h, replace, card, serial, confirmAction, errorBox } from "./dom.js";

function armForm(room, done) {
  const field = (name, label, attrs = {}) => h("label", {}, `${label} `, h("input", { name, ...attrs }));
  const status = h("div");
  const form = h("form.inline.arm", {
    onsubmit: async (event) => {
      event.preventDefault();
      const values = Object.fromEntries(new FormData(form));
      const body = { toolkit: values.toolkit.trim(), tool: values.tool.trim(), message: values.message || null,
        times: values.times ? Number(values.times) : null, code: Number(values.code) };
      replace(status);
      try {
        await post(`/studio/api/faults${room === null ? "" : `?room=${encodeURIComponent(room)}`}`, body);
        form.reset();
        await done();
      } catch (error) {
        replace(status, errorBox(error.message));
      }
    },
  },
  field("toolkit", "Toolkit", { placeholder: "queues", required: true, size: "10" }),
  field("tool", "Tool", { placeholder: "receive", required: true, size: "10" }),
  field("times", "Times", { type: "number", min: "1", placeholder: "every call", size: "6" }),
  field("code", "Code", { type: "number", value: "1008", size: "6" }),
  field("message", "Message", { placeholder: "(a default names the call)", size: "28" }),
  h("button", { type: "submit" }, "Arm"), status);
  return form;
}

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
      h("thead", {}, h("tr", {}, ["Call", "Room", "Error"].map((label) => h("th", {}, label)),
        ["Left", "Fired"].map((label) => h("th.num", {}, label)))),
      h("tbody", {}, faults.map((f) => h("tr", { dataset: { fault: `${f.toolkit}.${f.tool}` } },
        h("td", {}, h("code", {}, `${f.toolkit}.${f.tool}`)), h("td", {}, f.room ?? "every room"),
        h("td", {}, `${f.code}: ${f.message}`), h("td.num.left", {}, f.remaining ?? "every call"),
        h("td.num.fired", {}, f.fired))))),
    h("p", {}, h("button.danger", {
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
    }, "Clear faults")));
  });
  const title = room === null ? "Faults (every room)" : "Faults";
  const aim = room === null ? "Arm a fault in every room" : `Arm a fault in ${room}`;
  const el = h("div.page", {}, h("h1", {}, title), problems, card(null, body), card(aim, armForm(room, refresh)));
  return { el, topics: ["faults"], refresh };
}
