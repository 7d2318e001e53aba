// The dashboard: the cluster as this front end sees it, polled every second
// from GET /status, GET /events and GET /metrics.  A replica that is down
// says DOWN in words; colour only repeats it.
"use strict";

const POLL_MS = 1000;
const TIMELINE_SHOWN = 100;
// The routes whose requests count in "requests per second" (not the
// dashboard's own polling).
const STORE_ROUTES = new Set(["search", "lookup", "list", "buy", "orders", "update", "books"]);

const $ = (id) => document.getElementById(id);
const {el, show, request} = pygmy;

let lastEvent = 0;
let run = null;
let previousCount = null;   // {count, at} of the last /metrics read

async function poll() {
  try {
    const [status, events, count] = await Promise.all([
      request("/status"),
      request("/events?after=" + lastEvent),
      requestCount(),
    ]);
    if (status.status !== 200 || events.status !== 200) throw new Error("status " + status.status);
    renderFrontend(status.body);
    renderServices(status.body.services);
    renderEvents(events.body);
    renderRate(count);
    show($("connection"), "Live: updated " + new Date().toLocaleTimeString() + ".", "ok");
  } catch (error) {
    show($("connection"), "Cannot reach this front end; the figures below are from the last " +
         "answer. Retrying every second.", "error");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// The total of the store's requests so far, from the Prometheus text of
// /metrics, or null without metrics.
async function requestCount() {
  const response = await fetch("/metrics", {cache: "no-store"});
  if (response.status !== 200) return null;
  let total = 0;
  for (const line of (await response.text()).split("\n")) {
    const match = /^pygmy_http_requests_total\{([^}]*)\} ([0-9.eE+]+)$/.exec(line);
    const route = match && /route="([^"]*)"/.exec(match[1]);
    if (route && STORE_ROUTES.has(route[1])) total += Number(match[2]);
  }
  return total;
}

function renderRate(count) {
  const now = performance.now();
  if (count === null) {
    $("rate").textContent = "not measured (this front end keeps no metrics)";
    return;
  }
  if (previousCount !== null && now > previousCount.at) {
    const rate = Math.max(0, count - previousCount.count) / ((now - previousCount.at) / 1000);
    $("rate").textContent = rate.toFixed(1) + " (search, lookup, list, buy, orders, update)";
  } else {
    $("rate").textContent = "measuring…";
  }
  previousCount = {count: count, at: now};
}

function renderFrontend(status) {
  const front = status.frontend || {};
  const cache = status.cache;
  $("frontend-name").textContent = front.name + " (" + (front.role === "leader" ? "view manager" : "follower") + ")";
  $("frontend-leader").textContent = front.leader === null ? "nobody right now (no failover until one is chosen)" :
    front.leader + (front.leader === front.name ? " (this one)" : "");
  $("frontend-coordinator").textContent = front.coordinator === "etcd" ? "etcd" : "a local file";
  const reads = cache.hits + cache.misses;
  const rate = reads ? (100 * cache.hits / reads).toFixed(1) + "% hits" : "no reads yet";
  $("cache").textContent = cache.size + " of " + cache.capacity + " entries, " + rate +
    " (" + cache.hits + " hits, " + cache.misses + " misses)";
}

function renderServices(services) {
  const sections = Object.keys(services).sort().map((name) => serviceSection(name, services[name]));
  $("services").replaceChildren(...sections);
}

function serviceSection(name, view) {
  const section = el("section", null, "service");
  section.dataset.service = name;
  section.append(el("h2", name + " (view " + view.view + ")"));
  const facts = el("dl", null, "facts");
  const primary = view.primary === null ? "none: writes answer 503 until an in-sync replica is back" : view.primary;
  for (const [term, value] of [
    ["Primary", primary],
    ["Backups", view.backups.join(", ") || "none"],
    ["In sync", (view.in_sync || []).join(", ") || "none"],
  ]) {
    facts.append(el("dt", term), el("dd", value));
  }
  section.append(facts);

  const table = el("table");
  const head = el("tr");
  for (const title of ["Replica", "Alive", "State", "Applied seq", "Behind the primary", "May become primary"]) {
    const th = el("th", title);
    th.scope = "col";
    head.append(th);
  }
  table.append(el("thead"));
  table.tHead.append(head);
  const body = el("tbody");
  const lead = view.primary !== null ? view.replicas[view.primary] : null;
  for (const replica of Object.keys(view.replicas).sort()) {
    body.append(replicaRow(name, replica, view.replicas[replica], lead, view.primary));
  }
  table.append(body);
  section.append(table);
  return section;
}

function replicaRow(service, name, replica, lead, primary) {
  const row = el("tr", null, replica.alive ? "up" : "down");
  row.dataset.replica = service + ":" + name;
  let lag = "—";
  if (name === primary) lag = "0 (primary)";
  else if (!replica.alive) lag = "unknown (down)";
  else if (lead) lag = String(Math.max(0, lead.applied_seq - replica.applied_seq)) + " writes";
  row.append(
    el("th", name),
    el("td", replica.alive ? "up" : "DOWN", "alive"),
    el("td", replica.state),
    el("td", replica.applied_seq),
    el("td", lag),
    el("td", (replica.promotable ? "yes: " : "no: ") + replica.promotion),
  );
  row.firstChild.scope = "row";
  return row;
}

function renderEvents(reply) {
  const list = $("timeline");
  if (reply.run !== run) {
    // A new front end (or the first answer): its ids start again.
    run = reply.run;
    list.replaceChildren();
    if (lastEvent !== 0) {
      lastEvent = 0;
      return;
    }
  }
  for (const event of reply.events) {
    const item = el("li", null, "event " + event.kind);
    item.dataset.kind = event.kind;
    const when = el("time", new Date(event.time).toLocaleTimeString());
    when.dateTime = event.time;
    // A failover's or catch-up's message gives its duration (also in event.duration).
    item.append(when, " ", el("span", label(event.kind), "kind"), " ", el("span", event.message, "text"));
    list.prepend(item);
  }
  lastEvent = reply.next;
  while (list.children.length > TIMELINE_SHOWN) list.lastChild.remove();
}

function label(kind) {
  return {view: "view", failover: "failover", dead: "down", back: "up", catch_up: "caught up"}[kind] || kind;
}

poll();
