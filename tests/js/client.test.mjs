// Tests of chat/client/dashboard-ai-client.js with Node's test runner (node --test tests/js/).
// A fake WebSocket class stands in for the browser's; each test plays the server's frames as
// docs/protocol.md describes them and checks what the application sees and what the client sends.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { DashboardAIClient } from "../../chat/client/dashboard-ai-client.js";

const SESSION = "s1";
const sha = (text) => createHash("sha256").update(text).digest("hex");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The sockets a client opened, in order, each driven by the test as the server. */
class FakeNetwork {
  constructor() {
    this.sockets = [];
    const network = this;
    this.WebSocket = class FakeWebSocket {
      constructor(url, protocols) {
        this.url = url;
        this.protocols = protocols;
        this.sent = [];
        this.closedWith = null;
        this.onopen = this.onmessage = this.onclose = null;
        network.sockets.push(this);
      }
      send(data) {
        this.sent.push(JSON.parse(data));
      }
      close(code) {
        this.closedWith = code;
      }
      // the server's side
      open() {
        this.onopen({});
      }
      frame(frame) {
        this.onmessage({ data: JSON.stringify({ sessionId: SESSION, ...frame }) });
      }
      drop(code = 1006) {
        this.onclose({ code });
      }
    };
  }

  /** The `index`th socket, once the client has opened it (reconnects wait on a timer). */
  async socket(index, timeoutMs = 2000) {
    const deadline = Date.now() + timeoutMs;
    while (this.sockets.length <= index) {
      if (Date.now() > deadline) throw new Error(`no socket #${index} within ${timeoutMs} ms`);
      await sleep(1);
    }
    return this.sockets[index];
  }
}

function ready(seq, extra = {}) {
  return { type: "ready", seq, files: [], resumed: false, messageCount: 0, protocolVersion: 1,
    replayTruncated: false, hashes: {}, ...extra };
}

function complete(seq, clientMessageId, extra = {}) {
  return { type: "complete", seq, clientMessageId, files: {}, deleted: [], result: "done",
    stopped: false, usage: { inputTokens: 1, outputTokens: 1, cacheReadInputTokens: 0,
      cacheCreationInputTokens: 0 }, costUsd: 0.001, durationMs: 5, hashes: {}, ...extra };
}

const stream = (seq, clientMessageId, text) => ({ type: "stream", seq, clientMessageId, text });

/** A client on a fake network, recording every event the application gets. */
function setUp(options = {}) {
  const network = new FakeNetwork();
  const client = new DashboardAIClient({ url: "ws://localhost:3000/ws/chat", sessionId: SESSION,
    WebSocket: network.WebSocket, backoff: { initialDelayMs: 1, maxDelayMs: 8 }, ...options });
  const seen = [];
  client.on("*", (event) => seen.push(event));
  client.connect();
  const of = (...types) => seen.filter((event) => types.includes(event.type));
  return { network, client, seen, of };
}

test("a drop mid-turn is replayed from lastSeq: every event once, none missing", async () => {
  const { network, client, of } = setUp({ files: { "data/a.csv": "x,y\n" } });
  const first = await network.socket(0);
  first.open();
  assert.deepEqual(first.sent[0], { type: "init", sessionId: SESSION, files: { "data/a.csv": "x,y\n" } });
  first.frame(ready(0));
  const id = client.send("hello");
  first.frame(stream(1, id, "one "));
  first.frame(stream(2, id, "two "));
  first.drop(1006);

  const second = await network.socket(1);
  second.open();
  // the files were written by the first init: a reconnect must not write them over the agent's
  assert.deepEqual(second.sent[0], { type: "init", sessionId: SESSION, lastSeq: 2 });
  second.frame(ready(4, { resumed: true }));
  // the unanswered message goes again, with its id; the server ignores it while the turn runs
  assert.deepEqual(second.sent[1], { type: "message", sessionId: SESSION, message: "hello",
    clientMessageId: id });
  second.frame(stream(2, id, "two ")); // an overlap, as a server replaying one too many
  second.frame(stream(3, id, "three"));
  second.frame(complete(4, id));
  second.frame(complete(4, id)); // the stored terminal: the answer to the resend

  assert.equal(of("stream").map((event) => event.text).join(""), "one two three");
  assert.deepEqual(of("complete").map((event) => event.seq), [4]);
  assert.equal(client.lastSeq, 4);
  second.drop(1006);
  const third = await network.socket(2);
  third.open();
  third.frame(ready(4));
  assert.deepEqual(third.sent, [{ type: "init", sessionId: SESSION, lastSeq: 4 }], "no resend");
  client.close();
});

test("an unanswered message is resent with its clientMessageId; its terminal comes once", async () => {
  const { network, client, of } = setUp();
  const first = await network.socket(0);
  first.open();
  first.frame(ready(7));
  const id = client.send("make a chart");
  assert.equal(first.sent[1].clientMessageId, id);
  first.drop(4012); // a server restart before anything of the turn arrived

  const second = await network.socket(1);
  const queued = client.send("and a table"); // while disconnected: sent after ready
  second.open();
  assert.equal(second.sent.length, 1);
  second.frame(ready(9, { replayTruncated: true, files: ["src/App.tsx"],
    contents: { "src/App.tsx": "v2" }, hashes: { "src/App.tsx": sha("v2") } }));
  assert.deepEqual(second.sent.slice(1).map((frame) => frame.clientMessageId), [id, queued]);
  assert.equal(second.sent[1].message, "make a chart");
  const [resync] = of("resync");
  assert.deepEqual(resync.contents, { "src/App.tsx": "v2" });
  // the turn ran before the restart: its events were lost, the resend gets the stored terminal
  second.frame(complete(9, id, { files: { "src/App.tsx": "v2" }, hashes: { "src/App.tsx": sha("v2") } }));
  second.frame(stream(10, queued, "table"));
  second.frame(complete(11, queued));
  second.frame(complete(9, id)); // a duplicate of the stored terminal (a second resend)
  second.frame(complete(11, queued));

  assert.deepEqual(of("complete").map((event) => event.clientMessageId), [id, queued]);
  assert.equal(client.lastSeq, 11);
  client.close();
});

test("a refused message is not retried by itself and its files are sent again next time", async () => {
  const { network, client, of } = setUp();
  const socket = await network.socket(0);
  socket.open();
  socket.frame(ready(3, { files: ["a.txt"], hashes: { "a.txt": sha("a0") } }));
  client.setFile("a.txt", "a1");
  const busy = client.send("first");
  assert.deepEqual(socket.sent[1].baseHashes, { "a.txt": sha("a0") });
  socket.frame({ type: "error", seq: 3, clientMessageId: busy, code: "SESSION_BUSY",
    message: "A turn is running in this session.", recoverable: true });
  assert.equal(of("error").length, 1, "a reply with the current seq is delivered");
  const next = client.send("second");
  assert.deepEqual(socket.sent[2].files, { "a.txt": "a1" });
  assert.deepEqual(socket.sent[2].baseHashes, { "a.txt": sha("a0") });
  socket.frame(complete(4, next));
  socket.drop();
  const again = await network.socket(1);
  again.open();
  again.frame(ready(4));
  assert.equal(again.sent.length, 1, "neither message is resent");
  client.close();
});

test("baseHashes follow ready, file_changed, complete, undone and the app's edits", async () => {
  const { network, client, of } = setUp();
  const socket = await network.socket(0);
  socket.open();
  socket.frame(ready(0, { files: ["a.txt", "b.txt"], hashes: { "a.txt": sha("a0"), "b.txt": sha("b0") } }));

  client.setFile("a.txt", "a1");
  const one = client.send("edit b", { files: { "new.txt": "n" } });
  assert.deepEqual(socket.sent[1].files, { "a.txt": "a1", "new.txt": "n" });
  assert.deepEqual(socket.sent[1].baseHashes, { "a.txt": sha("a0") });
  socket.frame({ type: "file_changed", seq: 1, clientMessageId: one, path: "b.txt", content: "b1", hash: sha("b1") });
  socket.frame(complete(2, one, { files: { "b.txt": "b1", "c.txt": "c1" },
    hashes: { "b.txt": sha("b1"), "c.txt": sha("c1") } }));
  assert.deepEqual(client.hashes, { "a.txt": sha("a1"), "b.txt": sha("b1"), "c.txt": sha("c1"),
    "new.txt": sha("n") });

  // both sides edit b.txt: the server keeps its version and reports the conflict
  client.setFile("b.txt", "mine");
  const two = client.send("edit b again");
  assert.deepEqual(socket.sent[2].baseHashes, { "b.txt": sha("b1") });
  const conflict = { path: "b.txt", server: "theirs", client: "mine" };
  socket.frame(complete(3, two, { conflicts: [conflict] }));
  const [reported] = of("conflicts");
  assert.deepEqual(reported.conflicts, [conflict]);
  assert.equal(reported.clientMessageId, two);
  assert.equal(client.hashes["b.txt"], sha("theirs"), "the merge is based on the server's version");

  socket.frame({ type: "undone", seq: 4, files: { "b.txt": { content: Buffer.from("b0").toString("base64"),
    encoding: "base64" } }, deleted: ["c.txt"], turns: 1, messageCount: 1 });
  assert.equal(client.hashes["b.txt"], sha("b0"));
  assert.equal("c.txt" in client.hashes, false);
  client.close();
});

test("conflicts of an init's files are reported", async () => {
  const { network, client, of } = setUp({ files: { "a.txt": "mine" } });
  const socket = await network.socket(0);
  socket.open();
  const conflict = { path: "a.txt", server: "theirs", client: "mine" };
  socket.frame(ready(5, { files: ["a.txt"], hashes: { "a.txt": sha("theirs") }, conflicts: [conflict] }));
  assert.deepEqual(of("ready", "conflicts").map((event) => event.type), ["ready", "conflicts"]);
  client.close();
});

test("the backoff doubles up to its cap and starts over after a good connection", async () => {
  const delays = [];
  const { network, client } = setUp({ random: () => 1, backoff: { initialDelayMs: 2, maxDelayMs: 16 } });
  client.on("connection", (event) => {
    if (event.state === "reconnecting") delays.push(event.delayMs);
  });
  for (let i = 0; i < 5; i++) (await network.socket(i)).drop(1006); // the server is not there
  assert.deepEqual(delays, [2, 4, 8, 16, 16]);
  const good = await network.socket(5);
  good.open();
  good.frame(ready(0));
  assert.equal(client.state, "open");
  good.drop(4008);
  (await network.socket(6)).drop(1006);
  await network.socket(7);
  assert.deepEqual(delays.slice(5), [2, 4]);
  client.close();
});

test("the jitter spreads a delay over its upper half", async () => {
  const delays = [];
  const { network, client } = setUp({ random: () => 0, backoff: { initialDelayMs: 8, maxDelayMs: 8 } });
  client.on("connection", (event) => event.delayMs !== undefined && delays.push(event.delayMs));
  (await network.socket(0)).drop(1006);
  await network.socket(1);
  assert.deepEqual(delays, [4]);
  client.close();
});

test("no reconnect after the auth close code; the token goes as a subprotocol", async () => {
  const { network, client, of } = setUp({ token: "s3cret-token" });
  const events = client.events();
  const socket = await network.socket(0);
  assert.deepEqual(socket.protocols, ["dashboard-ai", "auth.s3cret-token"]);
  assert.equal(socket.url, "ws://localhost:3000/ws/chat");
  socket.open();
  socket.frame({ type: "error", sessionId: null, seq: 0, code: "UNAUTHORIZED",
    message: "This server needs a valid token.", recoverable: false });
  socket.drop(4401);
  await sleep(30);
  assert.equal(network.sockets.length, 1);
  assert.equal(client.state, "closed");
  assert.equal(of("error")[0].code, "UNAUTHORIZED");
  const types = [];
  for await (const event of events) types.push(event.type);
  assert.deepEqual(types, ["error", "connection"], "the iterator ends when the client does");
});

test("a token that is no subprotocol token goes in the query", async () => {
  const { network, client } = setUp({ token: "a b/c" });
  const socket = await network.socket(0);
  assert.equal(socket.url, "ws://localhost:3000/ws/chat?token=a%20b%2Fc");
  assert.deepEqual(socket.protocols, ["dashboard-ai"]);
  client.close();
  assert.equal(socket.closedWith, 1000);
});

test("a server restart (4012) reconnects; an unknown lastSeq starts the numbering over", async () => {
  const { network, client, of } = setUp();
  const first = await network.socket(0);
  first.open();
  first.frame(ready(12));
  first.drop(4012);
  const second = await network.socket(1);
  second.open();
  assert.equal(second.sent[0].lastSeq, 12);
  second.frame({ type: "error", seq: 0, code: "INVALID_LAST_SEQ", message: "no", recoverable: true });
  assert.deepEqual(second.sent[1], { type: "init", sessionId: SESSION });
  second.frame(ready(0));
  assert.equal(of("resync").length, 1);
  second.frame(stream(1, "m", "fresh"));
  assert.deepEqual(of("stream").map((event) => event.text), ["fresh"]);
  client.close();
});

test("events() yields the frames in order; stop and undo send their frames", async () => {
  const { network, client } = setUp();
  assert.throws(() => client.stop(), /not connected/);
  const events = client.events();
  const socket = await network.socket(0);
  socket.open();
  socket.frame(ready(0));
  const id = client.send("hi");
  socket.frame(stream(1, id, "a"));
  client.stop();
  socket.frame(complete(2, id, { stopped: true }));
  client.undo(2);
  assert.deepEqual(socket.sent.slice(2), [{ type: "stop", sessionId: SESSION },
    { type: "undo", sessionId: SESSION, turns: 2 }]);
  client.close();
  const types = [];
  for await (const event of events) types.push(event.type);
  assert.deepEqual(types, ["connection", "ready", "stream", "complete", "connection"]);
});

test("a turn's error is delivered once, also when a resend brings the stored copy", async () => {
  const { network, client, of } = setUp();
  const first = await network.socket(0);
  first.open();
  first.frame(ready(0));
  const id = client.send("hi");
  first.drop(1006);
  const second = await network.socket(1);
  second.open();
  second.frame(ready(1));
  const failed = { type: "error", clientMessageId: id, code: "MODEL_UNAVAILABLE",
    message: "The model API is unavailable (HTTP 529); try again.", recoverable: true };
  second.frame({ ...failed, seq: 1 }); // replayed after lastSeq 0
  second.frame({ ...failed, seq: 1 }); // the stored outcome, the answer to the resend
  assert.deepEqual(of("error").map((event) => event.code), ["MODEL_UNAVAILABLE"]);
  client.close();
});

test("a close the app did not ask for is a drop, whatever its code", async () => {
  const { network, client } = setUp();
  for (const [index, code] of [1000, 4008, 4013, 1006].entries()) {
    const socket = await network.socket(index);
    socket.open();
    socket.frame(ready(0));
    socket.drop(code);
  }
  await network.socket(4);
  client.close();
});
