// Speicher's one script: confirmations, live job progress, resumable uploads.
"use strict";

const PIECE = 8 * 1024 * 1024;

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

// -- wide tables on small screens ----------------------------------------------------------
// A table wider than the screen scrolls in its box; only then can the keyboard reach the box
// (to scroll it with the arrow keys), so desktop pages get no extra tab stops.
function markScrolling() {
  for (const box of document.querySelectorAll(".scroll")) {
    if (box.scrollWidth > box.clientWidth) box.tabIndex = 0;
    else box.removeAttribute("tabindex");
  }
}
markScrolling();
window.addEventListener("resize", markScrolling);

// -- running jobs on the dashboard ------------------------------------------------------------
function watchJobs(list) {
  const render = (jobs) => {
    list.replaceChildren();
    if (!jobs.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = list.dataset.none;
      list.append(li);
      return;
    }
    for (const job of jobs) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "job";
      name.textContent = `${job.kind} ${job.target}`;
      const bar = document.createElement("progress");
      bar.max = 100;
      bar.value = job.progress;
      bar.textContent = `${Math.round(job.progress)} %`;
      const message = document.createElement("span");
      message.className = "message";
      const state = job.state === "running" ? "" :
        (job.state === "succeeded" ? list.dataset.done : list.dataset.failed);
      message.textContent = [job.message, state].filter(Boolean).join(" – ");
      li.dataset.state = job.state;
      li.append(name, " ", bar, " ", message);
      list.append(li);
    }
  };
  const poll = async () => {
    try {
      const answer = await fetch(list.dataset.source, { credentials: "same-origin" });
      if (answer.ok) render(await answer.json());
    } catch (e) { /* the next poll tries again */ }
    setTimeout(poll, 1000);
  };
  poll();
}

// -- uploads: in pieces, resumed after a dropped connection -------------------------------------
function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function sendPiece(url, csrf, id, offset, total, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("X-Upload-Id", id);
    xhr.setRequestHeader("X-Upload-Offset", String(offset));
    xhr.setRequestHeader("X-Upload-Total", String(total));
    xhr.upload.onprogress = (e) => onProgress(offset + e.loaded);
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = {}; }
      resolve({ status: xhr.status, body });
    };
    xhr.onerror = () => reject(new Error("network"));
    xhr.send(blob);
  });
}

async function uploadFile(drop, file, relative, row) {
  const bar = row.querySelector("progress");
  const note = row.querySelector(".message");
  const url = drop.dataset.target + relative.split("/").map(encodeURIComponent).join("/");
  const id = randomId();
  let offset = 0;
  let failures = 0;
  for (;;) {
    const end = Math.min(offset + PIECE, file.size);
    try {
      const answer = await sendPiece(url, drop.dataset.csrf, id, offset, file.size,
        file.slice(offset, end), (at) => { bar.value = file.size ? (100 * at) / file.size : 100; });
      if (answer.status === 200) {
        offset = answer.body.offset;
        failures = 0;
        if (answer.body.done) break;
        continue;
      }
      if (answer.status === 409 && Number.isInteger(answer.body.offset)) {
        offset = answer.body.offset;  // resume where the server is
        continue;
      }
      throw new Error(answer.body.error || String(answer.status));
    } catch (error) {
      if (error.message !== "network" || ++failures > 20) {
        note.textContent = `${drop.dataset.failed}: ${error.message}`;
        row.dataset.state = "failed";
        return;
      }
      note.textContent = drop.dataset.retry;
      await new Promise((r) => setTimeout(r, Math.min(1000 * failures, 10000)));
      // ask where the server stands: a piece at 0 of an unknown upload starts it anew
      try {
        const probe = await sendPiece(url, drop.dataset.csrf, id, file.size + 1, file.size, new Blob([]), () => {});
        if (Number.isInteger(probe.body.offset)) offset = probe.body.offset;
      } catch (e) { /* still offline */ }
    }
  }
  bar.value = 100;
  note.textContent = drop.dataset.done;
  row.dataset.state = "done";
}

function addRow(list, name) {
  const li = document.createElement("li");
  const label = document.createElement("span");
  label.textContent = name;
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  bar.setAttribute("aria-label", name);
  const note = document.createElement("span");
  note.className = "message";
  li.append(label, " ", bar, " ", note);
  list.append(li);
  return li;
}

async function folderFiles(entry, prefix, out) {
  if (entry.isFile) {
    out.push(await new Promise((ok, bad) => entry.file((f) => ok({ file: f, path: prefix + f.name }), bad)));
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, bad) => reader.readEntries(ok, bad));
      if (!batch.length) break;
      for (const child of batch) await folderFiles(child, `${prefix}${entry.name}/`, out);
    }
  }
}

async function makeFolders(drop, paths) {
  // a folder's sub-folders are made before its files go in (mkdir over the folder form)
  const folders = new Set();
  for (const path of paths) {
    const parts = path.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) folders.add(parts.slice(0, i).join("/"));
  }
  for (const folder of [...folders].sort()) {
    const body = new URLSearchParams({ csrf: drop.dataset.csrf, action: "mkdir", name: folder.split("/").pop() });
    const parent = folder.split("/").slice(0, -1).map(encodeURIComponent).join("/");
    await fetch(drop.dataset.target + (parent ? parent + "/" : ""), { method: "POST", body, credentials: "same-origin", redirect: "manual" });
  }
}

async function uploadAll(drop, items) {
  const list = document.getElementById("uploads");
  await makeFolders(drop, items.map((i) => i.path));
  for (const item of items) {
    await uploadFile(drop, item.file, item.path, addRow(list, item.path));
  }
  if (!drop.dataset.stay && [...list.children].every((li) => li.dataset.state === "done")) {
    setTimeout(() => window.location.reload(), 600);
  }
}

function watchDrop(drop) {
  const input = drop.querySelector("input[type=file]");
  input.addEventListener("change", () => {
    uploadAll(drop, [...input.files].map((f) => ({ file: f, path: f.name })));
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const items = [];
    for (const item of e.dataTransfer.items) {
      const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
      if (entry) await folderFiles(entry, "", items);
      else if (item.getAsFile()) items.push({ file: item.getAsFile(), path: item.getAsFile().name });
    }
    uploadAll(drop, items);
  });
}

// -- live throughput on the dashboard (server-sent events) ------------------------------------
function humanRate(bytes, lang) {
  const units = ["B/s", "kB/s", "MB/s", "GB/s"];
  let i = 0;
  while (bytes >= 1000 && i < units.length - 1) { bytes /= 1000; i++; }
  return `${bytes.toLocaleString(lang, { maximumFractionDigits: 1 })} ${units[i]}`;
}

function watchLive(box) {
  const points = [];
  const chart = box.querySelector("svg");
  const text = box.querySelector("#live-text");
  const draw = () => {
    const top = Math.max(1, ...points.map((p) => Math.max(p.read, p.write)));
    for (const kind of ["read", "write"]) {
      const line = chart.querySelector(`polyline.${kind}`);
      line.setAttribute("points", points.map((p, i) =>
        `${(300 * i) / 59},${100 - (95 * p[kind]) / top}`).join(" "));
    }
  };
  const source = new EventSource(box.dataset.source);
  source.onmessage = (event) => {
    const figures = JSON.parse(event.data);
    points.push(figures);
    if (points.length > 60) points.shift();
    draw();
    box.dataset.samples = String(points.length);
    text.textContent = `${box.dataset.read}: ${humanRate(figures.read, box.dataset.lang)} · ` +
      `${box.dataset.write}: ${humanRate(figures.write, box.dataset.lang)}`;
    for (const pool of figures.pools) {
      const meter = document.querySelector(`meter[data-pool="${CSS.escape(pool.name)}"]`);
      if (meter) { meter.max = pool.size || 1; meter.value = pool.used; }
    }
  };
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) watchLive(live);
  const jobs = document.getElementById("jobs");
  if (jobs) watchJobs(jobs);
  const drop = document.getElementById("drop");
  if (drop) watchDrop(drop);
});
