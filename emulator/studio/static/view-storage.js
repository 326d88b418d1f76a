// Storage: the room's folder tree, a viewer for text, JSON and images, download, upload (drop
// files anywhere on the view, or pick them), move and delete. A preview reads only the head of a
// file from its download link; downloads go straight from that link to disk.

import { get, put, post, del, roomApi, readHead, ApiError } from "./api.js";
import { h, replace, card, bytes, when, storageUrl, errorBox, confirmAction, serial } from "./dom.js";
import { navigate } from "./nav.js";

const PREVIEW_BYTES = 256 * 1024;
const IMAGE_PREVIEW_LIMIT = 20 * 1024 * 1024;

const parentOf = (path) => (path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "");
const join = (folder, name) => (folder ? `${folder}/${name}` : name);

export function storageView(room, path) {
  const expanded = new Set([""]);
  for (let folder = parentOf(path); folder; folder = parentOf(folder)) expanded.add(folder);
  if (path) expanded.add(path); // if it is a folder, show what is in it

  const tree = h("nav.tree", { "aria-label": "Folders", dataset: { test: "tree" } });
  const pane = h("div.pane");
  const notices = h("div.notices");
  const picker = h("input", { type: "file", multiple: true, hidden: true });
  let folderHere = ""; // where an upload goes: the folder on screen, or the shown file's folder
  let previewKey = null; // what the preview shows (path and change time), to read it only when it changed

  // ---------------------------------------------------------------- the tree

  async function folderEntries(folder) {
    const { entries } = await get(roomApi(room, "folders", folder));
    return entries;
  }

  async function treeBranch(folder) {
    const entries = await folderEntries(folder);
    const items = [];
    for (const entry of entries) {
      const open = entry.is_folder && expanded.has(entry.path);
      const link = h("a", {
        href: storageUrl(room, entry.path), class: entry.path === path ? "selected" : "",
        dataset: { path: entry.path, kind: entry.is_folder ? "folder" : "file" },
      }, entry.is_folder ? `${entry.name}/` : entry.name);
      const toggle = entry.is_folder
        ? h("button.twisty", {
          type: "button", "aria-label": `${open ? "Close" : "Open"} ${entry.name}`, "aria-expanded": String(open),
          onclick: () => {
            if (expanded.has(entry.path)) expanded.delete(entry.path);
            else expanded.add(entry.path);
            refresh();
          },
        }, open ? "▾" : "▸")
        : h("span.twisty");
      items.push(h("li", {}, toggle, link, open ? await treeBranch(entry.path) : null));
    }
    return h("ul", {}, items);
  }

  // ---------------------------------------------------------------- the pane

  async function showFolder(folder) {
    folderHere = folder;
    previewKey = null;
    const entries = await folderEntries(folder);
    replace(pane, h("div.title-row", {}, h("h1", {}, folder ? `${folder}/` : "Storage"), folderActions(folder)),
      card(null, entries.length
        ? h("table.grid", { dataset: { test: "listing" } },
          h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Size"), h("th", {}, "Changed"))),
          h("tbody", {}, entries.map((entry) => h("tr", {},
            h("td", {}, h("a", { href: storageUrl(room, entry.path) }, entry.is_folder ? `${entry.name}/` : entry.name)),
            h("td.num", {}, entry.is_folder ? "" : bytes(entry.size)),
            h("td.muted", {}, entry.is_folder ? "" : when(entry.updated_at))))))
        : h("p.muted", {}, "No files here yet. Drop files on this page to upload them.")),
      h("p.drop-hint", {}, "Drop files anywhere on this view to upload them here, or ",
        h("button.linkish", { type: "button", onclick: () => picker.click() }, "choose files"), "."));
  }

  function folderActions(folder) {
    const buttons = [h("button", { type: "button", onclick: () => picker.click() }, "Upload files")];
    if (folder) {
      buttons.push(moveButton(folder), h("button.danger", {
        type: "button",
        onclick: () => remove(folder, true),
      }, "Delete folder"));
    }
    return h("div.actions", {}, buttons);
  }

  async function showFile(info) {
    folderHere = parentOf(info.path);
    const key = `${info.path}@${info.updated_at}`;
    const header = h("div.title-row", {},
      h("h1", {}, info.name),
      h("div.actions", {},
        h("a.button", { href: info.url, download: info.name, dataset: { test: "download" } }, "Download"),
        moveButton(info.path),
        h("button.danger", { type: "button", onclick: () => remove(info.path, false) }, "Delete")));
    const facts = h("p.facts", {}, `${bytes(info.size)} · ${info.mime_type} · changed ${when(info.updated_at)}`);
    if (key === previewKey && pane.querySelector(".viewer")) {
      const viewer = pane.querySelector(".viewer");
      replace(pane, header, facts, viewer);
      return;
    }
    previewKey = key;
    const viewer = h("div.viewer", { dataset: { test: "viewer" } }, h("p.muted", {}, "Loading…"));
    replace(pane, header, facts, viewer);
    replace(viewer, await preview(info));
  }

  async function preview(info) {
    if (info.kind === "image") {
      if (info.size > IMAGE_PREVIEW_LIMIT) return h("p.muted", {}, "This image is too large to show; download it.");
      return h("img.image", { src: info.url, alt: info.name });
    }
    if (info.kind === "binary") return h("p.muted", {}, `No preview for ${info.mime_type}; download the file to open it.`);
    const head = await readHead(info.url, PREVIEW_BYTES);
    let text = new TextDecoder("utf-8").decode(head.bytes);
    if (info.kind === "json" && head.complete) {
      try {
        text = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        // not valid JSON after all: show it as it is
      }
    }
    return [
      head.complete ? null : h("p.notice", {}, `Showing the first ${bytes(PREVIEW_BYTES)} of ${bytes(info.size)}. ` +
        "Download the file to see all of it."),
      h("pre.file-text", { dataset: { test: "file-text" } }, text),
    ];
  }

  function moveButton(from) {
    return h("button", {
      type: "button",
      onclick: () => {
        const input = h("input", { value: from, "aria-label": "New path", size: "40" });
        const status = h("div");
        const form = h("form.inline.move", {
          onsubmit: async (event) => {
            event.preventDefault();
            try {
              await post(roomApi(room, "move"), { source: from, destination: input.value });
              navigate(storageUrl(room, input.value.replace(/^\/+|\/+$/g, "")));
            } catch (error) {
              replace(status, errorBox(error.message));
            }
          },
        }, h("label", {}, "Move to ", input), h("button", { type: "submit" }, "Move"),
        h("button.quiet", { type: "button", onclick: () => form.remove() }, "Cancel"), status);
        pane.querySelector(".title-row").after(form);
        input.focus();
      },
    }, "Move / rename");
  }

  async function remove(target, recursive) {
    const what = recursive ? `the folder ${target} and everything in it` : target;
    if (!(await confirmAction(`Delete ${what}?`, "Delete"))) return;
    try {
      await del(`${roomApi(room, "files", target)}${recursive ? "?recursive=true" : ""}`);
      navigate(storageUrl(room, parentOf(target)));
    } catch (error) {
      replace(notices, errorBox(error.message));
    }
  }

  // ---------------------------------------------------------------- uploads

  async function upload(files) {
    for (const file of files) {
      const target = join(folderHere, file.name);
      const line = h("p.notice", {}, `Uploading ${target}…`);
      notices.append(line);
      try {
        try {
          await put(roomApi(room, "files", target), file, file.type || undefined);
        } catch (error) {
          if (!(error instanceof ApiError) || error.status !== 409) throw error;
          if (!(await confirmAction(`${target} exists. Replace it?`, "Replace"))) {
            line.remove();
            continue;
          }
          await put(`${roomApi(room, "files", target)}?overwrite=true`, file, file.type || undefined);
        }
        replace(line, `Uploaded ${target} (${bytes(file.size)}).`);
        line.className = "ok";
      } catch (error) {
        replace(line, `Could not upload ${target}: ${error.message}`);
        line.className = "error";
      }
    }
    await refresh();
  }

  picker.addEventListener("change", () => {
    upload([...picker.files]);
    picker.value = "";
  });

  const el = h("div.page.storage", {}, picker, h("div.split", {}, h("aside.tree-box", {}, tree), h("div.main", {}, notices, pane)));
  el.addEventListener("dragover", (event) => {
    if (!event.dataTransfer.types.includes("Files")) return;
    event.preventDefault();
    el.classList.add("dropping");
  });
  el.addEventListener("dragleave", (event) => {
    if (!el.contains(event.relatedTarget)) el.classList.remove("dropping");
  });
  el.addEventListener("drop", (event) => {
    event.preventDefault();
    el.classList.remove("dropping");
    if (event.dataTransfer.files.length) upload([...event.dataTransfer.files]);
  });

  const refresh = serial(async () => {
    replace(tree, h("a.root", { href: storageUrl(room, ""), class: path ? "" : "selected" }, `${room} /`),
      await treeBranch(""));
    if (!path) {
      await showFolder("");
      return;
    }
    let info;
    try {
      info = await get(roomApi(room, "files", path));
    } catch (error) {
      if (error.status !== 404) throw error;
      replace(pane, errorBox(`${path} is not in this room's storage (any more).`));
      return;
    }
    if (info.is_folder) await showFolder(info.path);
    else await showFile(info);
  });

  return { el, topics: ["storage"], refresh };
}
