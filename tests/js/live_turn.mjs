// Drives the browser client against a live backend in Node (run with --experimental-websocket on
// Node 20): one message, its socket dropped by the client side after `dropAfter` stream frames.
// Prints every event the application sees as one JSON line; tests/test_client_library.py checks
// them. Not a `node --test` file: it needs a server.
//
//   node --experimental-websocket tests/js/live_turn.mjs URL SESSION_ID MESSAGE DROP_AFTER

import { DashboardAIClient } from "../../chat/client/dashboard-ai-client.js";

const [url, sessionId, message, dropAfter] = process.argv.slice(2);
let streams = 0;
let dropped = false;

/**
 * The platform's WebSocket, closed once from this side mid-turn, as a flaky network would. As in
 * a browser, nothing more is delivered once it is closing (Node's WebSocket goes on delivering
 * what arrives until the server answers the close, which can be after the turn).
 */
class DroppingWebSocket extends WebSocket {
  set onmessage(handler) {
    super.onmessage = (event) => {
      if (this.closing) return;
      handler(event);
      if (dropped || JSON.parse(event.data).type !== "stream") return;
      streams += 1;
      if (streams === Number(dropAfter)) {
        dropped = this.closing = true;
        this.close(3000);
      }
    };
  }
}

const client = new DashboardAIClient({
  url,
  sessionId,
  files: { "data/sales.csv": "month,revenue\nJan,10\nFeb,20\n" },
  WebSocket: DroppingWebSocket,
  backoff: { initialDelayMs: 50, maxDelayMs: 200 },
}).connect();
let id = null;
const timeout = setTimeout(() => {
  console.error("no complete within 30 s");
  process.exit(2);
}, 30000);
for await (const event of client.events()) {
  console.log(JSON.stringify(event));
  if (event.type === "ready" && id === null) id = client.send(message);
  if ((event.type === "complete" || event.type === "error") && event.clientMessageId === id) {
    clearTimeout(timeout);
    client.close();
  }
}
