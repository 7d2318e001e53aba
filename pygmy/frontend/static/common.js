// Helpers both pages share.  Every value from the server goes into the page
// through textContent (el, show), never as HTML, so a title that contains
// markup shows as text.
"use strict";

const pygmy = {
  // A new element with optional text and class.
  el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  },

  // Put a message in a status element; kind is "", "ok", "error" or "busy".
  show(node, text, kind) {
    node.textContent = text;
    node.dataset.kind = kind || "";
  },

  // Fetch a URL; resolve to {status, body} where body is the parsed JSON
  // (or null).  Rejects only when the server cannot be reached.
  async request(url, options) {
    const response = await fetch(url, Object.assign({cache: "no-store"}, options));
    let body = null;
    try {
      body = await response.json();
    } catch (ignored) {
      body = null;
    }
    return {status: response.status, body: body, headers: response.headers};
  },

  // The sentence of an error body, or a fallback.
  errorText(reply, fallback) {
    const error = reply && reply.body && reply.body.error;
    return error && typeof error.message === "string" ? error.message : fallback;
  },

  sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  },
};
