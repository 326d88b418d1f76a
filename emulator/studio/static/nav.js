// Moving between views without reloading the page: app.js listens and shows the new URL.

export function navigate(url) {
  if (url === location.pathname + location.search) return;
  history.pushState(null, "", url);
  window.dispatchEvent(new Event("studio:navigate"));
}
