// A virtual list: however many rows there are, only the ones in view (and a few around them)
// are in the page, and only the pages of rows in view are fetched. Rows have a fixed height.

import { h } from "./dom.js";

export class VirtualList {
  constructor({ rowHeight = 30, pageSize = 100, fetchPage, renderRow, empty = "Nothing here." }) {
    this.rowHeight = rowHeight;
    this.pageSize = pageSize;
    this.fetchPage = fetchPage; // (offset, limit) => Promise<{ total, items }>
    this.renderRow = renderRow; // (item, index) => Element
    this.emptyText = empty;
    this.total = 0;
    this.pages = new Map(); // page number -> items, or a promise while it loads
    this.generation = 0; // bumped by reload(), so late answers of old fetches are ignored
    this.inner = h("div.vlist-inner");
    this.empty = h("p.muted.vlist-empty", {}, "Loading…");
    this.el = h("div.vlist", { tabindex: "0", dataset: { test: "vlist" } }, this.inner, this.empty);
    this.el.addEventListener("scroll", () => this.schedule());
    this.frame = 0;
  }

  // Forget what was fetched and read the rows in view again (after a change).
  async reload() {
    this.generation += 1;
    this.pages.clear();
    await this.load(Math.floor(this.el.scrollTop / this.rowHeight / this.pageSize));
    this.draw();
  }

  async load(page) {
    if (this.pages.has(page)) return;
    const generation = this.generation;
    const loading = this.fetchPage(page * this.pageSize, this.pageSize);
    this.pages.set(page, loading);
    let result;
    try {
      result = await loading;
    } catch (error) {
      this.pages.delete(page);
      throw error;
    }
    if (generation !== this.generation) return;
    this.pages.set(page, result.items);
    if (result.total !== this.total) {
      this.total = result.total;
      this.inner.style.height = `${this.total * this.rowHeight}px`;
      // As tall as its rows, up to the CSS max-height; then it scrolls.
      this.el.style.height = this.total ? `${this.total * this.rowHeight + 2}px` : "";
    }
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw() {
    this.empty.hidden = this.total > 0;
    this.el.classList.toggle("empty", !this.total);
    if (!this.total) {
      this.empty.textContent = this.pages.size ? this.emptyText : "Loading…";
      this.inner.replaceChildren();
      return;
    }
    const height = this.el.clientHeight || 400;
    const first = Math.max(0, Math.floor(this.el.scrollTop / this.rowHeight) - 10);
    const last = Math.min(this.total - 1, Math.ceil((this.el.scrollTop + height) / this.rowHeight) + 10);
    const rows = [];
    for (let index = first; index <= last; index += 1) {
      const page = Math.floor(index / this.pageSize);
      const items = this.pages.get(page);
      if (!Array.isArray(items)) {
        if (!this.pages.has(page)) this.load(page).catch(() => {});
        rows.push(this.placeRow(h("div.row.loading", {}, "…"), index));
        continue;
      }
      const item = items[index - page * this.pageSize];
      if (item !== undefined) rows.push(this.placeRow(this.renderRow(item, index), index));
    }
    this.inner.replaceChildren(...rows);
  }

  placeRow(row, index) {
    row.classList.add("vrow");
    row.style.top = `${index * this.rowHeight}px`;
    row.style.height = `${this.rowHeight}px`;
    return row;
  }
}
