// The portal's page script (an ES module, served from /static under a
// Content-Security-Policy without inline scripts). On the apply page it
// makes the key pair and the CSR in the browser, sends the CSR, and packs
// the private key with the issued certificate into a password-protected
// PKCS#12 file that is saved from memory: the key never leaves the page.
// The cryptography is in pkcs.bundle.js (web/src/pkcs.js with PKI.js).

const csrf = document.querySelector('meta[name="csrf"]')?.content ?? "";

// The PKCS#12 password rule, the same as the server's (checkP12Password).
function passwordProblem(pw, pw2, msgs) {
  if (!/^[\x20-\x7e]*$/.test(pw)) return msgs.msgAscii;
  let classes = 0;
  for (const re of [/[A-Z]/, /[a-z]/, /[0-9]/, /[^A-Za-z0-9]/]) if (re.test(pw)) classes++;
  if (pw.length < 10 || pw.length > 128 || (pw.length < 16 && classes < 3)) return msgs.msgWeak;
  if (pw !== pw2) return msgs.msgMismatch;
  return "";
}

function watchStrength(form) {
  const pw = form.querySelector("#p12-password");
  const pw2 = form.querySelector("#p12-password2");
  const out = form.querySelector("#pw-strength");
  if (!pw || !pw2 || !out) return;
  const update = () => {
    if (!pw.value) return;
    const problem = passwordProblem(pw.value, pw2.value || pw.value, form.dataset);
    out.textContent = problem || form.dataset.msgOk;
    out.className = problem ? "hint bad" : "hint good";
  };
  pw.addEventListener("input", update);
  pw2.addEventListener("input", update);
}

// openImportSteps opens the import instructions of the visitor's system.
function openImportSteps() {
  const ua = navigator.userAgent;
  const os = /Firefox\//.test(ua) ? "firefox" : /Windows/.test(ua) ? "windows" : /Mac OS X|Macintosh/.test(ua) ? "mac" : /Linux|X11/.test(ua) ? "linux" : "";
  if (!os) return;
  for (const d of document.querySelectorAll(`.import details[data-os="${os}"]`)) d.open = true;
}

function saveLink(link, parts, type, filename) {
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob(parts, { type }));
  link.download = filename;
  link.hidden = false;
}

function setupApply() {
  const form = document.getElementById("gen-form");
  if (!form) return;
  const msgs = form.dataset;
  const status = form.querySelector("#gen-status");
  const button = form.querySelector("#gen-button");
  const ownBox = form.querySelector("#own-pw");
  const say = (text, cls = "") => { status.textContent = text; status.className = "status " + cls; };
  for (const r of form.querySelectorAll('input[name="pwmode"]')) {
    r.addEventListener("change", () => { ownBox.hidden = form.pwmode.value !== "own"; });
  }
  watchStrength(form);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!globalThis.crypto?.subtle) { say(msgs.msgNocrypto, "bad"); return; }
    const own = form.pwmode.value === "own";
    if (own) {
      const problem = passwordProblem(form.querySelector("#p12-password").value, form.querySelector("#p12-password2").value, msgs);
      if (problem) { say(problem, "bad"); return; }
    }
    button.disabled = true;
    try {
      say(msgs.msgGenerating);
      const pkcs = await import("./pkcs.bundle.js");
      const password = own ? form.querySelector("#p12-password").value : pkcs.randomPassword();
      const username = msgs.username;
      const keys = await pkcs.generateKey(form.keytype.value);
      const csr = pkcs.toPEM(await pkcs.buildCSR(keys, username), "CERTIFICATE REQUEST");
      say(msgs.msgRequesting);
      const res = await fetch("/apply", {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRF-Token": csrf },
        body: new URLSearchParams({ csrf, csr }),
        credentials: "same-origin",
      });
      const answer = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
      if (!res.ok) throw new Error(answer.error || `HTTP ${res.status}`);
      say(msgs.msgPacking);
      const pems = [answer.certificate, ...answer.chain];
      const ders = pems.map((p) => pkcs.fromPEM(p, "CERTIFICATE")[0]);
      const p12 = await pkcs.buildPKCS12({ privateKey: keys.privateKey, certificates: ders, password, friendlyName: username });

      const result = document.getElementById("gen-result");
      saveLink(result.querySelector("#p12-link"), [p12], "application/x-pkcs12", `${username}.p12`);
      saveLink(result.querySelector("#chain-link"), [pems.join("")], "application/x-pem-file", `${username}-chain.pem`);
      const shown = result.querySelector("#p12-password-shown");
      shown.textContent = own ? "••••••••" : password;
      const info = result.querySelector("#cert-info");
      info.replaceChildren();
      for (const [k, v] of [[msgs.msgSerial, answer.serial], [msgs.msgExpires, answer.not_after.slice(0, 10)]]) {
        const dt = document.createElement("dt"); dt.textContent = k;
        const dd = document.createElement("dd"); dd.textContent = v;
        info.append(dt, dd);
      }
      result.hidden = false;
      form.querySelector("fieldset").disabled = true;
      for (const f of form.querySelectorAll("fieldset")) f.disabled = true;
      say(msgs.msgDone, "good");
      result.scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (err) {
      say(msgs.msgFailed + " " + (err?.message ?? err), "bad");
      button.disabled = false;
    }
  });
}

function setupKeygen() {
  const form = document.getElementById("keygen-form");
  if (!form) return;
  watchStrength(form);
  form.addEventListener("submit", (ev) => {
    const problem = passwordProblem(form.querySelector("#p12-password").value, form.querySelector("#p12-password2").value, form.dataset);
    if (problem) {
      ev.preventDefault();
      const out = form.querySelector("#pw-strength");
      out.textContent = problem;
      out.className = "hint bad";
    }
  });
}

function setupIssued() {
  const pem = document.getElementById("issued-pem");
  const link = document.getElementById("pem-link");
  if (pem && link) saveLink(link, [pem.value], "application/x-pem-file", pem.dataset.filename);
}

setupApply();
setupKeygen();
setupIssued();
openImportSteps();
