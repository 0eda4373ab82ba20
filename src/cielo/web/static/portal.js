// Cielo portal: a little plain JavaScript (copy buttons, confirmations, the playground's stream). CSP: 'self' only.
"use strict";
document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-copy]");
  if (target) {
    const field = document.getElementById(target.dataset.copy);
    if (field) { navigator.clipboard.writeText(field.value).then(() => { target.textContent = "Copied"; }); }
    event.preventDefault();
  }
  const back = event.target.closest("[data-back]");
  if (back && history.length > 1) { history.back(); event.preventDefault(); }
  const reveal = event.target.closest("[data-reveal]");
  if (reveal) {
    const field = document.getElementById(reveal.dataset.reveal);
    if (field) { field.type = field.type === "password" ? "text" : "password";
      reveal.textContent = field.type === "password" ? "Show" : "Hide"; }
    event.preventDefault();
  }
});
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) { event.preventDefault(); }
});
// Filter a table's rows as one types (data-filter="tableId").
document.addEventListener("input", (event) => {
  const box = event.target.closest("[data-filter]");
  if (!box) return;
  const needle = box.value.toLowerCase();
  document.querySelectorAll("#" + box.dataset.filter + " tbody tr").forEach((row) => {
    row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
  });
});
// The chat playground: POST the form, read the answer as it streams.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("playground");
  if (!form) return;
  const out = document.getElementById("answer");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new URLSearchParams(new FormData(form));
    data.set("stream", "1");
    out.textContent = ""; out.dataset.state = "streaming";
    const button = form.querySelector("button[type=submit]"); button.disabled = true;
    try {
      const response = await fetch(form.action, { method: "POST", body: data, credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" } });
      out.dataset.status = String(response.status);
      const reader = response.body.getReader(); const decoder = new TextDecoder();
      for (;;) { const { done, value } = await reader.read(); if (done) break; out.textContent += decoder.decode(value, { stream: true }); }
    } catch (err) { out.textContent += "\n" + err; }
    out.dataset.state = "done"; button.disabled = false;
  });
});
// A certificate file (data-certificate="textareaId"): PEM as it is, a DER .cer as base64, into the form's field.
document.addEventListener("change", async (event) => {
  const input = event.target.closest("[data-certificate]");
  if (!input || !input.files || !input.files[0]) return;
  const bytes = new Uint8Array(await input.files[0].arrayBuffer());
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  let value = text;
  if (!text.includes("-----BEGIN")) {
    let binary = ""; bytes.forEach((b) => { binary += String.fromCharCode(b); });
    value = btoa(binary);
  }
  const field = document.getElementById(input.dataset.certificate);
  if (field) field.value = value;
});
