// Cielo intercept mode for Node.js 20 and 22: make the global fetch() honour HTTPS_PROXY / NO_PROXY.
//
// Node's own https module and libraries built on it (@azure/identity's pipeline) already read HTTPS_PROXY, but
// the global fetch() (undici), which the `openai` npm package uses, does not before Node 24's NODE_USE_ENV_PROXY.
// `cielo env --intercept --node` loads this file with NODE_OPTIONS=--import=...: fetch() calls to hosts not in
// NO_PROXY are sent through the proxy's CONNECT tunnel with node:https; everything else is the original fetch.
// The server certificate is checked as node:https checks it (system CAs plus NODE_EXTRA_CA_CERTS).
import http from "node:http";
import https from "node:https";
import tls from "node:tls";
import { Readable } from "node:stream";

const proxyUrl = process.env.HTTPS_PROXY || process.env.https_proxy;
const noProxy = (process.env.NO_PROXY || process.env.no_proxy || "")
  .split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);

function bypass(hostname) {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, "");
  return noProxy.some((entry) => entry === "*" || host === entry.replace(/^\./, "") ||
    host.endsWith(entry.startsWith(".") ? entry : "." + entry));
}

class TunnelAgent extends https.Agent {
  constructor(proxy) { super({ keepAlive: true }); this.proxy = proxy; }
  createConnection(options, callback) {
    const connect = http.request({ host: this.proxy.hostname, port: this.proxy.port || 80, method: "CONNECT",
      path: `${options.host}:${options.port}`, headers: { host: `${options.host}:${options.port}` } });
    connect.once("connect", (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        callback(new Error(`proxy ${this.proxy.host} refused CONNECT ${options.host}:${options.port}: ${res.statusCode}`));
        return;
      }
      callback(null, tls.connect({ ...options, socket, servername: options.servername || options.host }));
    });
    connect.once("error", callback);
    connect.end();
  }
}

if (proxyUrl && typeof globalThis.fetch === "function") {
  const agent = new TunnelAgent(new URL(proxyUrl));
  const original = globalThis.fetch;
  globalThis.fetch = async function fetch(input, init) {
    const request = new Request(input, init);
    const url = new URL(request.url);
    if (url.protocol !== "https:" || bypass(url.hostname)) return original(input, init);
    const body = request.body ? Buffer.from(await request.arrayBuffer()) : undefined;
    return await new Promise((resolve, reject) => {
      const outgoing = https.request(url, { method: request.method, headers: Object.fromEntries(request.headers),
        agent, signal: request.signal }, (res) => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          for (const one of [].concat(value)) headers.append(name, one);
        }
        const empty = request.method === "HEAD" || [204, 304].includes(res.statusCode);
        resolve(new Response(empty ? null : Readable.toWeb(res), { status: res.statusCode,
          statusText: res.statusMessage, headers }));
      });
      outgoing.once("error", reject);
      outgoing.end(body);
    });
  };
}
