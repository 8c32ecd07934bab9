// Node's fetch (undici) sending Send API calls back to back: the outbound reference.
// Usage: node fetch-bench.mjs <port> <seconds> <in-flight>; prints one JSON line.
const [port, seconds, inFlight] = process.argv.slice(2).map(Number);
const url = `http://127.0.0.1:${port}/v25.0/104501234567890/messages?access_token=test_page_token`;
let calls = 0;
let seq = 0;
const deadline = performance.now() + seconds * 1000;
const start = process.cpuUsage();

async function loop() {
  while (performance.now() < deadline) {
    const body = JSON.stringify({
      recipient: { id: "6543210987654321" },
      messaging_type: "RESPONSE",
      message: { text: `r${seq++}` },
    });
    const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    await response.text();
    if (response.status === 200) calls++;
  }
}

await Promise.all(Array.from({ length: inFlight }, loop));
const cpu = process.cpuUsage(start);
console.log(JSON.stringify({ calls, per_s: calls / seconds, cpu: (cpu.user + cpu.system) / 1e6 / seconds }));
