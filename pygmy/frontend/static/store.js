// The store page: search by topic, the list of every book (paged), one book
// with its cost and stock, and a Buy button that buys once per click.
"use strict";

const PAGE = 10;          // books per page of the list
const BUY_ATTEMPTS = 4;   // one click's tries, all with the same Idempotency-Key

const $ = (id) => document.getElementById(id);
const {el, show, request, errorText, sleep} = pygmy;

let current = null;       // the book shown: {id, title, ...}
let buying = false;       // a click's request is in flight
let pages = [0];          // the `after` of each page seen so far
let nextAfter = null;     // the `after` of the page after this one

// A new Idempotency-Key, made when a click starts and reused by its retries.
function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function search(event) {
  event.preventDefault();
  const topic = $("topic").value.trim();
  const results = $("search-results");
  results.replaceChildren();
  if (!topic) {
    show($("search-status"), "Type a topic first.", "error");
    return;
  }
  show($("search-status"), "Searching…", "busy");
  try {
    const reply = await request("/search/" + encodeURIComponent(topic));
    if (reply.status !== 200) {
      show($("search-status"), errorText(reply, "The search failed (" + reply.status + ")."), "error");
      return;
    }
    const items = reply.body.items;
    show($("search-status"), items.length ? items.length + " found for “" + topic + "”." :
         "No book on “" + topic + "”.", "ok");
    for (const item of items) {
      const li = el("li");
      li.append(bookLink(item.id, item.title));
      results.append(li);
    }
  } catch (error) {
    show($("search-status"), "Cannot reach the store; check your connection.", "error");
  }
}

// A button that opens book `id`.
function bookLink(id, title) {
  const button = el("button", title, "link");
  button.type = "button";
  button.dataset.book = id;
  button.addEventListener("click", () => openBook(id));
  return button;
}

async function openBook(id) {
  if (location.hash !== "#book/" + id) history.replaceState(null, "", "#book/" + id);
  show($("buy-message"), "", "");
  await refreshBook(id);
}

async function refreshBook(id) {
  let reply;
  try {
    reply = await request("/lookup/" + id);
  } catch (error) {
    show($("buy-message"), "Cannot reach the store; check your connection.", "error");
    return;
  }
  if (reply.status !== 200) {
    show($("buy-message"), errorText(reply, "That book cannot be shown (" + reply.status + ")."), "error");
    return;
  }
  current = reply.body;
  $("book").hidden = false;
  $("book-title").textContent = current.title;
  $("book-id").textContent = "#" + current.id;
  $("book-topic").textContent = current.topic;
  $("book-cost").textContent = "$" + current.cost;
  $("book-stock").textContent = current.stock > 0 ? String(current.stock) : "0 (out of stock)";
}

// One click: one key, tried up to BUY_ATTEMPTS times while the answer says
// the store is unavailable or nothing came back.  The front end buys once
// per key, so a retry can never buy a second copy.
async function buy() {
  if (buying || current === null) return;
  buying = true;
  $("buy").disabled = true;
  const book = current;
  const key = newKey();
  show($("buy-message"), "Buying “" + book.title + "”…", "busy");
  try {
    const reply = await buyWithRetries(book.id, key);
    if (reply.status === 200) {
      show($("buy-message"), "Bought “" + book.title + "”: order #" + reply.body.order.id + ".", "ok");
    } else if (reply.status === 409 && reply.body && reply.body.error.code === "out_of_stock") {
      show($("buy-message"), "Sorry, “" + book.title + "” is out of stock.", "error");
    } else if (reply.status === 503) {
      show($("buy-message"), "The store cannot take orders right now (it is failing over). Nothing was " +
           "bought; please try again in a few seconds.", "error");
    } else if (reply.status === 0) {
      show($("buy-message"), "Cannot reach the store, so it is not known whether the order went " +
           "through; look at the stock before trying again.", "error");
    } else {
      show($("buy-message"), errorText(reply, "The buy failed (" + reply.status + ")."), "error");
    }
    await refreshBook(book.id);
    await showPage(pages[pages.length - 1]);
  } finally {
    buying = false;
    $("buy").disabled = false;
  }
}

async function buyWithRetries(id, key) {
  for (let attempt = 1; ; attempt++) {
    let reply;
    try {
      reply = await request("/buy/" + id, {method: "POST", headers: {"Idempotency-Key": key}});
    } catch (error) {
      if (attempt >= BUY_ATTEMPTS) return {status: 0, body: null};
      await sleep(300 * attempt);
      continue;
    }
    if (reply.status !== 503 || attempt >= BUY_ATTEMPTS) return reply;
    const wait = Number(reply.headers.get("Retry-After"));
    await sleep(Math.min(Number.isFinite(wait) && wait > 0 ? wait * 1000 : 500, 3000));
  }
}

async function showPage(after) {
  let reply;
  try {
    reply = await request("/list?after=" + after + "&limit=" + PAGE);
  } catch (error) {
    show($("list-status"), "Cannot reach the store; check your connection.", "error");
    return;
  }
  if (reply.status !== 200) {
    show($("list-status"), errorText(reply, "The list failed (" + reply.status + ")."), "error");
    return;
  }
  show($("list-status"), "", "");
  const rows = reply.body.items.map((item) => {
    const row = el("tr");
    const title = el("td");
    title.append(bookLink(item.id, item.title));
    row.append(el("td", item.id), title, el("td", item.topic), el("td", "$" + item.cost), el("td", item.stock));
    return row;
  });
  $("list-body").replaceChildren(...rows);
  nextAfter = reply.body.next;
  $("next").disabled = nextAfter === null;
  $("previous").disabled = pages.length <= 1;
  $("page-info").textContent = "Page " + pages.length;
}

function start() {
  $("search-form").addEventListener("submit", search);
  $("buy").addEventListener("click", buy);
  $("next").addEventListener("click", () => {
    if (nextAfter === null) return;
    pages.push(nextAfter);
    showPage(nextAfter);
  });
  $("previous").addEventListener("click", () => {
    if (pages.length <= 1) return;
    pages.pop();
    showPage(pages[pages.length - 1]);
  });
  window.addEventListener("hashchange", route);
  showPage(0);
  route();
}

// A URL ending in #book/<id> opens that book.
function route() {
  const match = /^#book\/([1-9][0-9]*)$/.exec(location.hash);
  if (match && (current === null || String(current.id) !== match[1])) openBook(match[1]);
}

start();
