// The dashboard-ai console: a page for trying a session by hand, built on the client library
// alone (/client/dashboard-ai-client.js). No framework, no build step. Everything the server or
// the model sends is shown as text (textContent), never as HTML: file contents and model text
// are untrusted.

import { DashboardAIClient } from "/client/dashboard-ai-client.js";

const SESSION_KEY = "dashboard-ai-console.session";
const DEMO_FILES = {
  "data/sales.csv": "month,revenue,orders\nJan,1200,31\nFeb,1350,35\nMar,1100,29\nApr,1600,40\n",
  "src/App.tsx": [
    "export default function App() {",
    "  return (",
    "    <main>",
    "      <h1>Sales</h1>",
    "      <p>Ask for a chart of data/sales.csv.</p>",
    "    </main>",
    "  );",
    "}",
    "",
  ].join("\n"),
};
/** Past this many line pairs the diff shows old and new in full instead of their LCS. */
const DIFF_MAX_CELLS = 4_000_000;

const $ = (id) => document.getElementById(id);
const known = new Map(); // path -> the file's text as the page last saw it
const unsent = new Set(); // paths given to setFile, sent with the next message
const turns = new Map(); // clientMessageId -> the turn's elements
let client = null;

/** An element with a class and text (never HTML). */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** 32 random hex digits: a session id nobody can guess (crypto.randomUUID needs https). */
function newSessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A file content of the protocol as text; bytes in base64 are only described. */
function contentText(content) {
  if (typeof content === "string") return content;
  if (content.encoding === "base64") {
    return `(binary, ${Math.floor((content.content.length * 3) / 4)} bytes)`;
  }
  return content.content;
}

// --- line diff ---------------------------------------------------------------------------------

/** The lines of `before` and `after` as [mark, line] rows: " " kept, "-" removed, "+" added. */
function lineDiff(before, after) {
  const a = before === null ? [] : before.split("\n");
  const b = after === null ? [] : after.split("\n");
  if (a.length * b.length > DIFF_MAX_CELLS) {
    return [...a.map((line) => ["-", line]), ...b.map((line) => ["+", line])];
  }
  // lcs[i][j]: the longest common subsequence of a[i:] and b[j:]
  const lcs = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const rows = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      rows.push([" ", a[i]]);
      i++;
      j++;
    } else if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) {
      rows.push(["+", b[j++]]);
    } else rows.push(["-", a[i++]]);
  }
  return rows;
}

/** Shows a file's change (null `before`: created; null `after`: deleted), newest first. */
function showChange(path, before, after, why) {
  const id = `change-${encodeURIComponent(path)}`;
  document.getElementById(id)?.remove();
  const card = el("article", "change");
  card.id = id;
  card.dataset.path = path;
  const what = before === null ? "created" : after === null ? "deleted" : "changed";
  card.append(el("h3", "", `${path} (${what}, ${why})`));
  const pre = el("pre", "diff");
  for (const [mark, line] of lineDiff(before, after)) {
    const cls = mark === "+" ? "add" : mark === "-" ? "del" : "";
    pre.append(el("span", cls, `${mark} ${line}\n`));
  }
  card.append(pre);
  $("changes").prepend(card);
}

/** Records a file the server now holds and shows the change, if it is one. */
function fileNow(path, content, why) {
  const after = content === null ? null : contentText(content);
  const before = known.has(path) ? known.get(path) : null;
  if (before === after) return;
  if (after === null) known.delete(path);
  else known.set(path, after);
  unsent.delete(path);
  showChange(path, before, after, why);
  renderFiles();
}

function renderFiles() {
  const list = $("file-list");
  list.replaceChildren();
  for (const path of [...known.keys()].sort()) {
    const item = el("li", "", path);
    if (unsent.has(path)) item.append(" ", el("span", "pending", "(sent with the next message)"));
    list.append(item);
  }
}

// --- the transcript ----------------------------------------------------------------------------

/** The elements of the turn of `clientMessageId`, made when another tab started it. */
function turnFor(clientMessageId, message = "(a message from another tab)") {
  if (turns.has(clientMessageId)) return turns.get(clientMessageId);
  const node = el("div", "turn");
  const turn = {
    node,
    user: el("div", "user", message),
    answer: el("div", "answer"),
    outcome: el("div", "outcome", "running…"),
  };
  node.dataset.clientMessageId = clientMessageId ?? "";
  node.append(turn.user, turn.answer, turn.outcome);
  $("transcript").append(node);
  turns.set(clientMessageId, turn);
  return turn;
}

function scrollDown() {
  const box = $("transcript");
  box.scrollTop = box.scrollHeight;
}

/** An error line: its code first, then the human message. */
function errorNode(code, message) {
  const node = el("div", "error");
  node.dataset.code = code;
  node.append(el("code", "", code), `: ${message}`);
  return node;
}

function showError(code, message) {
  $("transcript").append(errorNode(code, message));
  scrollDown();
}

function showConflicts(event) {
  for (const conflict of event.conflicts) {
    const box = el("div", "conflict");
    box.dataset.path = conflict.path;
    box.append(el("strong", "", `Conflict in ${conflict.path}: both sides changed it`));
    const versions = el("div", "versions");
    for (const [label, content] of [
      ["Server (kept)", conflict.server],
      ["Yours (not written)", conflict.client],
    ]) {
      const side = el("div", "");
      side.append(el("h3", "", label), el("pre", "", contentText(content)));
      versions.append(side);
    }
    box.append(versions);
    $("conflicts").append(box);
    known.set(conflict.path, contentText(conflict.server));
  }
  renderFiles();
}

// --- the session ---------------------------------------------------------------------------------

function showConnection(event) {
  const badge = $("connection");
  badge.dataset.state = event.state;
  badge.textContent =
    event.state === "reconnecting" ? `reconnecting (attempt ${event.attempt})` : event.state;
  if (event.state === "closed" && event.code === 4401) {
    showError("UNAUTHORIZED", "the server refused the token; enter the right one and press Open");
  }
}

function listen(chat) {
  chat.on("connection", showConnection);
  chat.on("ready", (frame) => {
    for (const path of frame.files) if (!known.has(path)) known.set(path, null);
    for (const [path, content] of Object.entries(frame.contents ?? {})) {
      known.set(path, contentText(content));
    }
    renderFiles();
  });
  chat.on("resync", (event) => {
    if (!event.contents) return;
    known.clear();
    for (const [path, content] of Object.entries(event.contents)) {
      known.set(path, contentText(content));
    }
    renderFiles();
  });
  chat.on("stream", (frame) => {
    const turn = turnFor(frame.clientMessageId);
    // Text after a tool call is the model's next message: a paragraph of its own.
    if (turn.afterTool && turn.answer.textContent) turn.answer.append("\n\n");
    turn.afterTool = false;
    turn.answer.append(frame.text);
    scrollDown();
  });
  chat.on("status", (frame) => {
    turnFor(frame.clientMessageId).outcome.textContent = `${frame.status}: ${frame.message}`;
  });
  chat.on("tool_start", (frame) => {
    turnFor(frame.clientMessageId).afterTool = true;
    const item = el("li", "");
    item.dataset.toolUseId = frame.toolUseId;
    item.dataset.state = "running";
    const target = frame.input.file_path ?? frame.input.pattern ?? frame.input.path ?? "";
    item.append(el("strong", "", frame.tool), ` ${target}`, el("div", "summary", "running…"));
    $("tools").append(item);
  });
  chat.on("tool_result", (frame) => {
    const item = $("tools").querySelector(`li[data-tool-use-id="${CSS.escape(frame.toolUseId)}"]`);
    if (!item) return;
    item.dataset.state = frame.isError ? "error" : "done";
    item.querySelector(".summary").textContent = frame.summary;
  });
  chat.on("file_changed", (frame) => fileNow(frame.path, frame.content, "by Claude"));
  chat.on("complete", (frame) => {
    for (const [path, content] of Object.entries(frame.files)) fileNow(path, content, "by Claude");
    for (const path of frame.deleted) fileNow(path, null, "by Claude");
    const turn = turnFor(frame.clientMessageId);
    turn.node.dataset.outcome = frame.stopped ? "stopped" : "complete";
    turn.outcome.className = frame.stopped ? "outcome stopped" : "outcome";
    const seconds = (frame.durationMs / 1000).toFixed(1);
    turn.outcome.textContent = `${frame.stopped ? "stopped" : "complete"} in ${seconds} s, ` +
      `${frame.usage.inputTokens} in / ${frame.usage.outputTokens} out tokens, ` +
      `$${frame.costUsd.toFixed(4)}`;
  });
  chat.on("undone", (frame) => {
    for (const [path, content] of Object.entries(frame.files)) fileNow(path, content, "undo");
    for (const path of frame.deleted) fileNow(path, null, "undo");
    const note = el("div", "turn undone", `Undid ${frame.turns} turn(s).`);
    $("transcript").append(note);
    scrollDown();
  });
  chat.on("error", (frame) => {
    if (frame.clientMessageId !== undefined && turns.has(frame.clientMessageId)) {
      const turn = turns.get(frame.clientMessageId);
      turn.node.dataset.outcome = "error";
      turn.outcome.replaceChildren(errorNode(frame.code, frame.message));
    } else showError(frame.code, frame.message);
  });
  chat.on("conflicts", showConflicts);
}

/** Opens the session in the form (closing the one open), with a fresh page state. */
function openSession() {
  const sessionId = $("session-id").value.trim();
  if (!$("session-form").reportValidity()) return;
  localStorage.setItem(SESSION_KEY, sessionId);
  if (client) client.close();
  for (const id of ["transcript", "tools", "changes", "conflicts", "file-list"]) {
    $(id).replaceChildren();
  }
  known.clear();
  unsent.clear();
  turns.clear();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  client = new DashboardAIClient({
    url: `${scheme}//${location.host}/ws/chat`,
    sessionId,
    token: $("token").value || undefined,
  });
  listen(client);
  client.connect();
}

/** Gives files to the session: sent, with their base hashes, with the next message. */
function addFiles(files) {
  for (const [path, content] of Object.entries(files)) {
    client.setFile(path, content);
    const before = known.get(path) ?? null;
    const after = contentText(content);
    if (before !== after) showChange(path, before, after, "yours, not sent yet");
    known.set(path, after);
    unsent.add(path);
  }
  renderFiles();
}

/** A dropped file as a protocol content: UTF-8 text as is, anything else in base64. */
async function readDropped(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return { content: btoa(binary), encoding: "base64" };
  }
}

function sendMessage(event) {
  event.preventDefault();
  const message = $("message").value.trim();
  if (!message) return;
  const id = client.send(message);
  turnFor(id, message);
  for (const path of unsent) {
    const heading = document.getElementById(`change-${encodeURIComponent(path)}`)?.querySelector("h3");
    if (heading) heading.textContent = heading.textContent.replace("not sent yet", "sent");
    unsent.delete(path);
  }
  renderFiles();
  $("message").value = "";
  scrollDown();
}

/** Stop and undo need an open socket; say so instead of throwing. */
function control(action) {
  try {
    action();
  } catch (error) {
    showError("NOT_CONNECTED", error.message);
  }
}

function start() {
  $("session-id").value = localStorage.getItem(SESSION_KEY) || newSessionId();
  $("session-form").addEventListener("submit", (event) => {
    event.preventDefault();
    openSession();
  });
  $("new-session").addEventListener("click", () => {
    $("session-id").value = newSessionId();
    openSession();
  });
  $("load-demo").addEventListener("click", () => addFiles(DEMO_FILES));
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const files = {};
    for (const file of event.dataTransfer.files) files[file.name] = await readDropped(file);
    addFiles(files);
  });
  $("message-form").addEventListener("submit", sendMessage);
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) sendMessage(event);
  });
  $("stop").addEventListener("click", () => control(() => client.stop()));
  $("undo").addEventListener("click", () => control(() => client.undo(1)));
  openSession();
}

// For the browser test and the devtools: the session's client.
window.dashboardConsole = {
  get client() {
    return client;
  },
};
start();
