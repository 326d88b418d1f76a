// Services: each local service running for the room, its state, restarts and recent output.

import { get, roomApi } from "./api.js";
import { h, replace, serial, when } from "./dom.js";

function service(s) {
  return h("section.card", { dataset: { service: s.name } }, h("h2", {}, s.name),
    h("p.facts", {}, h("span", { class: `state ${s.state}` }, s.state),
      ` · ${s.restarts} restart${s.restarts === 1 ? "" : "s"}`,
      s.last_exit_code !== null && s.last_exit_code !== undefined ? ` · last exit code ${s.last_exit_code}` : "",
      s.started_at ? ` · started ${when(s.started_at)}` : ""),
    s.last_error ? h("p.error", {}, s.last_error) : null,
    h("details", { open: true }, h("summary", {}, "Recent output"),
      h("pre.log", {}, s.logs.length ? s.logs.join("\n") : "(nothing yet)")));
}

export function servicesView(room) {
  const body = h("div");
  const refresh = serial(async () => {
    const found = await get(roomApi(room, "services"));
    if (!found.available) {
      replace(body, h("p.muted", {}, "This server runs no local services."));
    } else if (!found.services.length) {
      replace(body, h("p.muted", {}, "No services run in this room."));
    } else {
      replace(body, found.services.map(service));
    }
  });
  return { el: h("div.page", {}, h("h1", {}, "Services"), body), topics: ["services"], refresh };
}
