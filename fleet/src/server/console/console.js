// The fleet console: clusters and, per Kustomization, each cluster's revision and
// readiness, kept live from the API's event stream. The API token travels in the URL
// fragment (#token=...), which browsers never send to the server, so it stays out of logs.
"use strict";

const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const clusters = new Map();   // name -> cluster view
const objects = new Map();    // "namespace/name" -> Map(cluster -> cell)

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function badge(text) {
  return el("span", { class: "badge " + text }, text);
}

function render() {
  const list = document.getElementById("clusters");
  const names = [...clusters.keys()].sort();
  list.replaceChildren(...names.map((n) => {
    const c = clusters.get(n);
    return el("li", { "data-cluster": n, "data-state": c.state }, n, badge(c.state),
      el("small", {}, ` ${c.ready}/${c.objects} ready`));
  }));
  const head = document.querySelector("#matrix thead tr");
  head.replaceChildren(el("th", {}, "Kustomization"), ...names.map((n) => el("th", {}, n)));
  const body = document.querySelector("#matrix tbody");
  const keys = [...objects.keys()].sort();
  body.replaceChildren(...keys.map((key) => {
    const cells = objects.get(key);
    return el("tr", { "data-object": key }, el("th", {}, key), ...names.map((n) => {
      const cell = cells.get(n);
      if (!cell) return el("td", { "data-cluster": n, "data-object": key }, "—");
      return el("td", { "data-cluster": n, "data-object": key, "data-revision": cell.revision || "" },
        el("code", {}, cell.revision || "-"), badge(cell.ready), cell.suspended ? badge("suspended") : "");
    }));
  }));
}

function setObject(cluster, status) {
  if (status.kind !== "Kustomization") return;
  const key = status.namespace + "/" + status.name;
  if (!objects.has(key)) objects.set(key, new Map());
  objects.get(key).set(cluster, { revision: status.revision, ready: status.ready, suspended: status.suspended });
}

async function get(path) {
  const r = await fetch(path, { headers });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.json().catch(() => ({}))).error || ""}`);
  return r.json();
}

async function load() {
  const [list, matrix] = await Promise.all([get("/api/v1/clusters"), get("/api/v1/matrix?kind=Kustomization")]);
  clusters.clear();
  objects.clear();
  for (const c of list) clusters.set(c.name, c);
  for (const row of matrix.rows) {
    for (const [cluster, cell] of Object.entries(row.clusters)) {
      setObject(cluster, { kind: row.kind, namespace: row.namespace, name: row.name, ...cell });
    }
  }
  render();
}

function apply(name, data) {
  const event = JSON.parse(data);
  if (name === "cluster") clusters.set(event.name, event);
  else if (name === "clusterRemoved") clusters.delete(event.cluster);
  else if (name === "object") setObject(event.cluster, { ...event.status });
  else if (name === "objectRemoved") objects.get(event.object.namespace + "/" + event.object.name)?.delete(event.cluster);
  else if (name === "resync") return load();
  render();
}

// EventSource cannot send an Authorization header, so the stream is read with fetch.
async function follow() {
  const live = document.getElementById("live");
  for (;;) {
    try {
      await load();
      const r = await fetch("/api/v1/events", { headers });
      if (!r.ok) throw new Error("events: " + r.status);
      live.textContent = "live";
      live.className = "badge Connected";
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (data) await apply(name, data);
        }
      }
    } catch (e) {
      document.getElementById("error").hidden = false;
      document.getElementById("error").textContent = String(e);
    }
    live.textContent = "reconnecting…";
    live.className = "badge Disconnected";
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

follow();
