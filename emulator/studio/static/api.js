// The Studio's JSON API, with the session's CSRF token on every write.

let csrf = "";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function startSession() {
  const session = await get("/studio/api/session");
  csrf = session.csrf;
  return session;
}

async function call(method, path, { json, body, headers = {} } = {}) {
  const options = { method, headers: { ...headers }, credentials: "same-origin" };
  if (method !== "GET") options.headers["X-Localmesh-CSRF"] = csrf;
  if (json !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(json);
  } else if (body !== undefined) {
    options.body = body;
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    // The session ended (expired, or the server's data dir changed): log in again, then come back.
    window.location.assign(`/studio/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, "please log in again");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, message);
  }
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path) => call("GET", path);
export const post = (path, json) => call("POST", path, { json });
export const del = (path) => call("DELETE", path);
export const put = (path, body, type) => call("PUT", path, { body, headers: type ? { "Content-Type": type } : {} });

export function roomApi(room, ...parts) {
  const tail = parts.map((p) => p.split("/").map(encodeURIComponent).join("/")).join("/");
  return `/studio/api/rooms/${encodeURIComponent(room)}${tail ? "/" + tail : ""}`;
}

// The first `limit` bytes of a file, read from its download link; the rest is never fetched
// into the page (the reader is cancelled), so a large file cannot fill the tab's memory.
export async function readHead(url, limit) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new ApiError(response.status, `download failed: ${response.status}`);
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  let finished = false;
  while (received < limit) {
    const { done, value } = await reader.read();
    if (done) {
      finished = true;
      break;
    }
    chunks.push(value);
    received += value.length;
  }
  if (!finished) await reader.cancel();
  const head = new Uint8Array(Math.min(received, limit));
  let at = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, Math.min(chunk.length, head.length - at));
    head.set(part, at);
    at += part.length;
    if (at >= head.length) break;
  }
  return { bytes: head, complete: finished && received <= limit };
}
