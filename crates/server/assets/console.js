// Keyward console: copy buttons; on the key forms, the chosen kind's fields, PEM public keys converted to JWKs and
// key pairs made in the browser. The pages work without this file (a JWK can be pasted as it is); it only reveals
// and wires these controls. A private key this file makes stays in the page: it is offered as a download and never
// put in a form field, so it is never posted.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("copy-status");
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const text = source.textContent;
      let copied = false;
      try {
        await navigator.clipboard.writeText(text);
        copied = true;
      } catch (_) {
        // No clipboard API (not a secure context): select the text so Ctrl+C copies it.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
      const label = button.firstChild;
      const before = label.textContent;
      label.textContent = copied ? "Copied" : "Selected: press Ctrl+C";
      if (status) status.textContent = copied ? "Copied to the clipboard." : "Selected; press Ctrl+C to copy.";
      setTimeout(() => { label.textContent = before; }, 2000);
    });
  }
});

// The key form's kind: only the chosen kind's fieldset shows and is posted (without this script they all do and
// are, each labelled; the server reads the chosen kind's).
document.addEventListener("DOMContentLoaded", () => {
  const radios = document.querySelectorAll("input[name=kind]");
  const show = () => {
    const chosen = document.querySelector("input[name=kind]:checked");
    for (const set of document.querySelectorAll("fieldset[data-kind]")) {
      set.hidden = !chosen || set.dataset.kind !== chosen.value;
      // A disabled fieldset's fields are not posted: the form sends the chosen kind's alone.
      set.disabled = set.hidden;
    }
  };
  for (const r of radios) r.addEventListener("change", show);
  if (radios.length) show();
});

// base64url without padding, as JWKs and thumbprints write bytes.
const b64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

// The public members of an exported JWK, with the algorithm Keyward should verify with, and its RFC 7638
// thumbprint as kid (the same the server gives a pasted key without one).
async function publicJwk(exported, alg) {
  let jwk;
  if (exported.kty === "EC") jwk = { crv: exported.crv, kty: "EC", x: exported.x, y: exported.y };
  else if (exported.kty === "OKP") jwk = { crv: exported.crv, kty: "OKP", x: exported.x };
  else jwk = { e: exported.e, kty: "RSA", n: exported.n };
  // The required members in lexicographic order, no whitespace: RFC 7638 §3.
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(jwk)));
  return Object.assign(jwk, { kid: b64url(digest), alg, use: "sig" });
}

// A DER body as PEM text under `label`, 64 characters a line.
function pem(label, der) {
  const text = btoa(String.fromCharCode(...new Uint8Array(der)));
  const lines = text.match(/.{1,64}/g).join("\n");
  return `-----BEGIN ${label}-----\n${lines}\n-----END ${label}-----\n`;
}

// Reads a PEM `PUBLIC KEY` (SPKI) with WebCrypto: P-256, Ed25519 where the browser has it, else RSA with the
// chosen algorithm. Returns the public JWK.
async function fromPem(text, rsaAlg) {
  const match = text.match(/-----BEGIN PUBLIC KEY-----([\s\S]+?)-----END PUBLIC KEY-----/);
  if (!match) {
    if (/PRIVATE KEY/.test(text)) throw new Error("This is a private key: paste the PUBLIC KEY only, and keep the private key to yourself.");
    throw new Error("No -----BEGIN PUBLIC KEY----- block found (an SPKI public key).");
  }
  const der = Uint8Array.from(atob(match[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0));
  const tries = [
    [{ name: "ECDSA", namedCurve: "P-256" }, "ES256"],
    [{ name: "Ed25519" }, "EdDSA"],
    rsaAlg === "PS256"
      ? [{ name: "RSA-PSS", hash: "SHA-256" }, "PS256"]
      : [{ name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, "RS256"],
  ];
  for (const [algorithm, alg] of tries) {
    try {
      const key = await crypto.subtle.importKey("spki", der, algorithm, true, ["verify"]);
      return await publicJwk(await crypto.subtle.exportKey("jwk", key), alg);
    } catch (_) {
      // Not this kind of key (or not in this browser): try the next.
    }
  }
  throw new Error("This browser cannot read this key: it is not a P-256, Ed25519 or RSA public key.");
}

document.addEventListener("DOMContentLoaded", () => {
  const tools = document.querySelector(".jwk-tools");
  // WebCrypto exists in secure contexts only (HTTPS, or localhost): without it the textarea takes JWKs alone.
  if (!tools || !window.crypto || !crypto.subtle) return;
  const field = document.getElementById(tools.dataset.for);
  const status = document.getElementById("jwk-status");
  const say = (text, failed) => {
    status.textContent = text;
    status.classList.toggle("error", !!failed);
  };
  tools.hidden = false;
  const publicKind = document.getElementById("kind-public-key");
  const choosePublic = () => {
    if (publicKind && !publicKind.checked) {
      publicKind.checked = true;
      publicKind.dispatchEvent(new Event("change"));
    }
  };
  document.getElementById("convert-pem").addEventListener("click", async () => {
    try {
      const jwk = await fromPem(field.value, document.getElementById("rsa-alg").value);
      field.value = JSON.stringify(jwk, null, 2);
      choosePublic();
      say(`Converted: a ${jwk.alg} public key, kid ${jwk.kid}.`);
    } catch (e) {
      say(e.message, true);
    }
  });
  document.getElementById("generate-key").addEventListener("click", async () => {
    try {
      const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
      const jwk = await publicJwk(await crypto.subtle.exportKey("jwk", pair.publicKey), "ES256");
      const pkcs8 = await crypto.subtle.exportKey("pkcs8", pair.privateKey);
      // The private key goes into the download link only, never into a form field.
      const link = document.getElementById("private-key-download");
      link.href = "data:application/x-pem-file;base64," + btoa(pem("PRIVATE KEY", pkcs8));
      link.download = `keyward-${jwk.kid}.pem`;
      document.getElementById("generated").hidden = false;
      field.value = JSON.stringify(jwk, null, 2);
      choosePublic();
      say(`Made a P-256 key pair; its public key (kid ${jwk.kid}) is in the field above.`);
    } catch (e) {
      say(`This browser could not make a key pair: ${e.message}`, true);
    }
  });
});
