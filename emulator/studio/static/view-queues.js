// Queues: every queue of a room with its size (live), and one queue: peek at its messages
// without taking them, send one, drain or delete it.

import { get, post, del, roomApi } from "./api.js";
import { h, replace, card, oneLine, studioUrl, errorBox, confirmAction, serial } from "./dom.js";
import { VirtualList } from "./vlist.js";
import { navigate } from "./nav.js";

function sendForm(room, fixedQueue, onSent) {
  const name = fixedQueue === null
    ? h("input", { name: "queue", placeholder: "queue", required: true, "aria-label": "Queue" }) : null;
  const text = h("textarea", {
    name: "message", rows: "4", spellcheck: "false", "aria-label": "Message (JSON)",
    placeholder: '{"prompt": "save a poem about ai to poem.txt"}',
  });
  const status = h("div.form-status");
  const form = h("form.send", {
    onsubmit: async (event) => {
      event.preventDefault();
      const queue = fixedQueue ?? name.value.trim();
      replace(status);
      try {
        await post(roomApi(room, "queues", queue), { message: text.value });
        replace(status, h("p.ok", { role: "status" }, `Sent to ${queue}.`));
        text.value = "";
        onSent?.(queue);
      } catch (error) {
        replace(status, errorBox(error.message));
      }
    },
  }, name, text, h("button", { type: "submit" }, "Send"), status);
  return form;
}

export function queuesView(room) {
  const list = h("div");
  const refresh = serial(async () => {
    const { queues } = await get(roomApi(room, "queues"));
    replace(list, queues.length
      ? h("table.grid", { dataset: { test: "queues" } },
        h("thead", {}, h("tr", {}, h("th", {}, "Queue"), h("th", {}, "Messages"), h("th", {}, "Receivers waiting"))),
        h("tbody", {}, queues.map((q) => h("tr", { dataset: { queue: q.name } },
          h("td", {}, h("a", { href: studioUrl("rooms", room, "queues", q.name) }, q.name)),
          h("td.num.size", {}, q.size), h("td.num", {}, q.waiting)))))
      : h("p.muted", {}, "This room has no queues yet."));
  });
  const el = h("div.page", {}, h("h1", {}, "Queues"), card(null, list),
    card("Send a message", sendForm(room, null, (queue) => navigate(studioUrl("rooms", room, "queues", queue)))));
  return { el, topics: ["queues"], refresh };
}

export function queueView(room, queue) {
  const facts = h("p.facts");
  const list = new VirtualList({
    rowHeight: 30,
    pageSize: 100,
    empty: "The queue is empty.",
    fetchPage: async (offset, limit) => {
      const page = await get(`${roomApi(room, "queues", queue)}?offset=${offset}&limit=${limit}`);
      showFacts(page);
      return { total: page.size, items: page.messages };
    },
    renderRow: (message) => h("div.row.message", { dataset: { position: message.position }, title: JSON.stringify(message.message, null, 2) },
      h("span.pos", {}, `#${message.position + 1}`), h("code", {}, oneLine(message.message))),
  });
  const problems = h("div");

  function showFacts(page) {
    replace(facts, h("strong", { dataset: { test: "queue-size" } }, `${page.size} message${page.size === 1 ? "" : "s"}`),
      page.waiting ? ` · ${page.waiting} receiver${page.waiting === 1 ? "" : "s"} waiting` : "",
      " · peeking takes nothing: receivers still get every message, in order");
  }

  async function act(question, label, run) {
    replace(problems);
    if (!(await confirmAction(question, label))) return;
    try {
      await run();
    } catch (error) {
      replace(problems, errorBox(error.message));
    }
  }

  const actions = h("div.actions",
    {},
    h("button.warn", {
      type: "button",
      onclick: () => act(`Drain ${queue}? Every message in it is deleted.`, "Drain", async () => {
        await del(`${roomApi(room, "queues", queue)}?only=messages`);
        await refresh();
      }),
    }, "Drain"),
    h("button.danger", {
      type: "button",
      onclick: () => act(`Delete the queue ${queue} and its messages?`, "Delete", async () => {
        await del(roomApi(room, "queues", queue));
        navigate(studioUrl("rooms", room, "queues"));
      }),
    }, "Delete queue"));

  const refresh = serial(async () => {
    try {
      await list.reload();
      replace(problems);
    } catch (error) {
      replace(problems, errorBox(error.status === 404 ? `There is no queue ${queue} in this room.` : error.message));
      replace(facts);
    }
  });
  const el = h("div.page", {},
    h("div.title-row", {}, h("h1", {}, queue), actions),
    problems, facts,
    card("Messages, head of the line first", list.el),
    card("Send a message", sendForm(room, queue, () => refresh())));
  return { el, topics: ["queues"], refresh };
}
