// The way most Messenger bots are written (Meta's samples, tutorials): express.json() keeps
// the raw body for the signature check, the webhook acks 200 at once, then each event gets
// its own fetch() to the Send API with no limit on how many are in flight.
// Env: MESSENGER_APP_SECRET, MESSENGER_VERIFY_TOKEN, MESSENGER_PAGE_ACCESS_TOKEN,
// GRAPH_API_BASE, GRAPH_API_VERSION, PORT (the bot's own names).
"use strict";

const crypto = require("crypto");
const express = require("express");

const APP_SECRET = process.env.MESSENGER_APP_SECRET || "test_app_secret";
const VERIFY_TOKEN = process.env.MESSENGER_VERIFY_TOKEN || "test_verify_token";
const PAGE_ACCESS_TOKEN = process.env.MESSENGER_PAGE_ACCESS_TOKEN || "test_page_token";
const GRAPH_API_BASE = process.env.GRAPH_API_BASE || "https://graph.facebook.com";
const GRAPH_API_VERSION = process.env.GRAPH_API_VERSION || "v25.0";
const PORT = Number(process.env.PORT || 3000);

const app = express();
app.use(express.json({ verify: (req, _res, buf) => { req.rawBody = buf; } }));

function validSignature(req) {
  const header = req.get("x-hub-signature-256") || "";
  const [scheme, hash] = header.split("=");
  if (scheme !== "sha256" || !hash || !req.rawBody) return false;
  const expected = crypto.createHmac("sha256", APP_SECRET).update(req.rawBody).digest("hex");
  const a = Buffer.from(hash, "utf8");
  const b = Buffer.from(expected, "utf8");
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

app.get("/webhook", (req, res) => {
  if (req.query["hub.mode"] === "subscribe" && req.query["hub.verify_token"] === VERIFY_TOKEN) {
    res.status(200).send(req.query["hub.challenge"]);
  } else {
    res.sendStatus(403);
  }
});

app.post("/webhook", (req, res) => {
  if (!validSignature(req)) return res.sendStatus(401);
  const body = req.body;
  if (body.object !== "page") return res.sendStatus(404);
  res.status(200).send("EVENT_RECEIVED");
  for (const entry of body.entry || []) {
    for (const event of entry.messaging || []) {
      if (event.message && event.message.text && !event.message.is_echo) {
        callSendAPI(event.sender.id, { text: `You said: ${event.message.text}` });
      }
    }
  }
});

async function callSendAPI(psid, message) {
  const url = `${GRAPH_API_BASE}/${GRAPH_API_VERSION}/me/messages?access_token=${PAGE_ACCESS_TOKEN}`;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ recipient: { id: psid }, messaging_type: "RESPONSE", message }),
    });
    const text = await response.text();
    if (!response.ok) console.error("Send API error", response.status, text.slice(0, 200));
  } catch (err) {
    console.error("Unable to send message:", err.message);
  }
}

app.listen(PORT, "127.0.0.1", () => console.log(`express-bot listening on ${PORT}`));
