// The status page: everything it shows comes from GET /stats (one document that Postgres builds) and the outputs of
// GET /jobs/{id}/output, both behind the API key when one is set. The page itself holds no data, so it is served to
// anyone; the key comes in the address's fragment (/#key=…, which the browser never sends to a server) or from the
// form, and is kept for the tab's session only.
"use strict";

const REFRESH_MS = 5000;
const keyForm = document.getElementById("key");
const thumbnails = new Map(); // job id → object URL of its output, fetched once

if (location.hash.startsWith("#key=")) {
  const key = location.hash.slice(5);
  try {
    sessionStorage.setItem("apiKey", decodeURIComponent(key));
  } catch {
    sessionStorage.setItem("apiKey", key); // a key with a bare % in it, as typed
  }
  history.replaceState(null, "", location.pathname); // out of the address bar, and this tab's history entry
}

keyForm.addEventListener("submit", event => {
  event.preventDefault();
  sessionStorage.setItem("apiKey", keyForm.elements.key.value);
  refresh(); // at once; the regular refreshes go on as they were
});

async function get(path) {
  const key = sessionStorage.getItem("apiKey");
  const response = await fetch(path, { headers: key ? { Authorization: `Bearer ${key}` } : {}, cache: "no-store" });
  if (response.status === 401) throw Object.assign(new Error("the API wants a key"), { unauthorized: true });
  if (!response.ok) throw new Error((await response.json().catch(() => ({}))).detail || `${path}: ${response.status}`);
  return response;
}

async function refresh() {
  try {
    const stats = await (await get("/stats")).json();
    keyForm.hidden = true;
    document.getElementById("status").hidden = false;
    showCounts(stats);
    showChart(stats.minutes);
    await showLatest(stats.latest);
    showFailures(stats.failures);
    const updated = document.getElementById("updated");
    updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    updated.className = "";
    document.body.dataset.loaded = "true";
  } catch (error) {
    if (error.unauthorized) {
      keyForm.hidden = false;
      document.getElementById("status").hidden = true; // a key refused (a new session's) shows nothing it had shown
      document.getElementById("key-problem").textContent = sessionStorage.getItem("apiKey") ? "that key was refused" : "";
    }
    const updated = document.getElementById("updated");
    updated.textContent = `not updated: ${error.message}`;
    updated.className = "stale";
  }
}

function showCounts(stats) {
  for (const element of document.querySelectorAll("[data-count]")) {
    const value = element.dataset.count.split(".").reduce((node, name) => node?.[name], stats);
    element.textContent = value ?? 0;
  }
}

function showChart(minutes) {
  const svg = document.getElementById("chart");
  const [width, height] = [600, 160];
  const most = Math.max(1, ...minutes.map(m => m.done + m.failed));
  const bar = width / minutes.length;
  const scale = (height - 16) / most;
  const rects = minutes.flatMap((m, i) => {
    const x = (i * bar + 1).toFixed(1), w = (bar - 2).toFixed(1);
    const done = m.done * scale, failed = m.failed * scale;
    const title = `<title>${new Date(m.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}: ${m.done} done, ${m.failed} failed</title>`;
    return [
      `<rect class="done" x="${x}" width="${w}" y="${height - done}" height="${done}">${title}</rect>`,
      `<rect class="failed" x="${x}" width="${w}" y="${height - done - failed}" height="${failed}">${title}</rect>`,
    ];
  });
  svg.innerHTML = rects.join("");
  const total = minutes.reduce((sum, m) => sum + m.done + m.failed, 0);
  document.getElementById("hour-total").textContent = `${total} in the hour; the tallest bar is ${most}`;
}

async function showLatest(conversions) {
  const latest = document.getElementById("latest");
  const rows = await Promise.all(conversions.map(async conversion => {
    const row = element("div", "conversion");
    const id = element("div", "id");
    id.append(element("b", "", `#${conversion.id}`), " photo ", conversion.photoId, " ",
      element("span", `badge ${conversion.status}`, conversion.status));
    const thumbs = element("div", "thumbs");
    for (const job of conversion.jobs) {
      const figure = element("figure");
      const url = job.output && await thumbnail(job);
      figure.append(url ? Object.assign(document.createElement("img"), { src: url, alt: job.name })
        : element("span", "missing", job.status), job.name);
      if (job.error) figure.title = job.error;
      thumbs.append(figure);
    }
    if (conversion.error) thumbs.append(element("span", "reason", conversion.error));
    row.append(id, thumbs);
    return row;
  }));
  latest.replaceChildren(...rows);
  forgetThumbnails(conversions);
}

// Outputs no longer among the latest are let go, so that a page left open for days holds only what it shows.
function forgetThumbnails(conversions) {
  const shown = new Set(conversions.flatMap(conversion => conversion.jobs.map(job => job.id)));
  for (const [id, url] of thumbnails) {
    if (!shown.has(id)) {
      URL.revokeObjectURL(url);
      thumbnails.delete(id);
    }
  }
}

async function thumbnail(job) {
  if (!thumbnails.has(job.id)) {
    try {
      thumbnails.set(job.id, URL.createObjectURL(await (await get(job.output)).blob()));
    } catch {
      return null; // shown as missing, and tried again at the next refresh
    }
  }
  return thumbnails.get(job.id);
}

function showFailures(failures) {
  const rows = failures.map(failure => {
    const row = document.createElement("tr");
    row.append(element("td", "", new Date(failure.at).toLocaleString()), element("td", "", `#${failure.conversion}`),
      element("td", "", failure.job ? `${failure.job} (${failure.name})` : "–"), element("td", "reason", failure.error));
    return row;
  });
  document.querySelector("#failures tbody").replaceChildren(...rows);
}

function element(tag, className = "", text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Each refresh starts once the one before has finished, so that a slow one is never overtaken.
async function keepRefreshing() {
  await refresh();
  setTimeout(keepRefreshing, REFRESH_MS);
}

keepRefreshing();
