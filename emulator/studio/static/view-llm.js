// LLM: each conversation the room's scripted LLM had. For every request: the instructions, what
// the request added (user text, tool results), the tools it offered; then the rule that matched
// and what it answered. A request no rule matched is shown in red with the reason.

import { get, roomApi } from "./api.js";
import { h, replace, card, serial } from "./dom.js";

function item(entry) {
  if (entry.kind === "message") {
    return h("div.bubble", { class: `bubble ${entry.role}` }, h("span.role", {}, entry.role), h("div.text", {}, entry.text));
  }
  if (entry.kind === "tool_call") {
    return h("div.bubble.tool-call", { dataset: { test: "tool-call" } }, h("span.role", {}, "tool call"),
      h("code.call", {}, entry.name), h("pre", {}, JSON.stringify(entry.arguments, null, 2)));
  }
  if (entry.kind === "tool_result") {
    return h("div.bubble.tool-result", {}, h("span.role", {}, "tool result"), h("div.text", {}, entry.text));
  }
  return h("div.bubble", {}, h("span.role", {}, entry.kind), h("pre", {}, entry.text));
}

function turn(t) {
  return h("article.turn", { class: `turn${t.unmatched ? " unmatched" : ""}${t.error ? " failed" : ""}`, dataset: { index: t.index } },
    h("header", {}, h("strong", {}, `Request ${t.index}`), h("span.muted", {}, ` · turn ${t.turn} · ${t.transport}`),
      h("span.muted", {}, ` · ${t.provider} ${t.api}`), t.model ? h("span.muted", {}, ` · ${t.model}`) : null),
    t.instructions ? h("details.instructions", {}, h("summary", {}, "Instructions"), h("pre", {}, t.instructions)) : null,
    h("div.asked", {}, t.input.map(item)),
    t.tools.length ? h("p.tools", {}, "Tools offered: ", t.tools.map((name) => h("code.chip", {}, name))) : null,
    h("div.answered", {},
      h("p.rule", {}, t.unmatched ? h("strong.bad", {}, "No rule matched") : ["Rule ", h("code", {}, t.rule)]),
      t.answer.map(item),
      t.error ? h("p.error", {}, `${t.error.status ?? ""} ${t.error.message}`) : null,
      t.dropped ? h("p.bad", {}, "The script dropped the connection.") : null));
}

export function llmView(room) {
  const body = h("div");
  const refresh = serial(async () => {
    const llm = await get(roomApi(room, "llm"));
    const script = h("p.facts", {}, `Script: ${llm.script.source} (${llm.script.rules} rules) · ${llm.requests} requests`,
      llm.unmatched ? h("span.bad", {}, ` · ${llm.unmatched} unmatched`) : null);
    if (!llm.conversations.length) {
      replace(body, script, h("p.muted", {}, "Nobody has asked this room's LLM anything yet."));
      return;
    }
    replace(body, script, llm.conversations.map((conversation) => card(null,
      h("h2", {}, `Conversation ${conversation.id}`, conversation.unmatched
        ? h("span.bad", {}, ` · ${conversation.unmatched} unmatched`) : null),
      h("div.conversation", { dataset: { conversation: conversation.id } }, conversation.turns.map(turn)))));
  });
  return { el: h("div.page.llm", {}, h("h1", {}, "LLM"), body), topics: ["llm"], refresh };
}
