// The portal's cryptography, run in the browser: the key pair (WebCrypto),
// the CSR and the password-protected PKCS#12 file (PKI.js). The private
// key is exported only as PKCS#8 into the encrypted PKCS#12 bag, in
// memory; it is never sent anywhere.
//
// Bundled by web/build.mjs into enroll/portal/static/pkcs.bundle.js.
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";

const crypto = globalThis.crypto;
pkijs.setEngine("zbca", new pkijs.CryptoEngine({ name: "zbca", crypto }));

// PKCS#12 protection: PBES2 with AES-256-CBC, the key derived by
// PBKDF2-HMAC-SHA256; the MAC is HMAC-SHA256. The MAC iterations match
// the PBKDF2 ones: a cheaper MAC would be a cheaper password oracle.
export const ITERATIONS = 100000;

const OID_FRIENDLY_NAME = "1.2.840.113549.1.9.20";
const OID_LOCAL_KEY_ID = "1.2.840.113549.1.9.21";
const OID_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2";
const OID_CERT_BAG = "1.2.840.113549.1.12.10.1.3";
const OID_X509_CERT = "1.2.840.113549.1.9.22.1";
const OID_CN = "2.5.4.3";

// generateKey makes the key pair: "EC-P256" (default) or "RSA-2048".
export async function generateKey(type) {
  if (type === "RSA-2048") {
    return crypto.subtle.generateKey(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true, ["sign", "verify"]);
  }
  return crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
}

// buildCSR returns the DER of a PKCS#10 request for the key pair, with
// CN=commonName (the CA ignores the subject; it names the request).
export async function buildCSR(keys, commonName) {
  const csr = new pkijs.CertificationRequest();
  csr.version = 0;
  // PKCS#10 requires the attributes field, even empty (RFC 2986 §4.1);
  // PKI.js leaves it out unless set, and strict DER parsers refuse that.
  csr.attributes = [];
  csr.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({
    type: OID_CN, value: new asn1js.Utf8String({ value: commonName }),
  }));
  await csr.subjectPublicKeyInfo.importKey(keys.publicKey);
  await csr.sign(keys.privateKey, "SHA-256");
  return new Uint8Array(csr.toSchema().toBER(false));
}

// toPEM wraps DER in a PEM block.
export function toPEM(der, type) {
  let bin = "";
  const bytes = new Uint8Array(der);
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  const b64 = btoa(bin).replace(/(.{64})/g, "$1\n");
  return `-----BEGIN ${type}-----\n${b64}\n-----END ${type}-----\n`;
}

// fromPEM returns the DER of every block of the given type in text.
export function fromPEM(text, type) {
  const out = [];
  const re = new RegExp(`-----BEGIN ${type}-----([^-]+)-----END ${type}-----`, "g");
  for (const m of text.matchAll(re)) {
    const bin = atob(m[1].replace(/\s+/g, ""));
    const der = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) der[i] = bin.charCodeAt(i);
    out.push(der);
  }
  return out;
}

function attributes(localKeyID, friendlyName) {
  const attrs = [new pkijs.Attribute({ type: OID_LOCAL_KEY_ID, values: [new asn1js.OctetString({ valueHex: localKeyID })] })];
  if (friendlyName) {
    attrs.push(new pkijs.Attribute({ type: OID_FRIENDLY_NAME, values: [new asn1js.BmpString({ value: friendlyName })] }));
  }
  return attrs;
}

// buildPKCS12 returns the DER of a PKCS#12 file holding the private key
// and the certificates (the leaf first, then its chain), protected by
// password (a string, UTF-8 for PBES2 and BMPString for the MAC, as
// OpenSSL, NSS and Windows expect).
export async function buildPKCS12({ privateKey, certificates, password, friendlyName }) {
  const pw = new TextEncoder().encode(password).buffer;
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", privateKey);
  const leaf = pkijs.Certificate.fromBER(certificates[0]);
  const localKeyID = new Uint8Array(await crypto.subtle.digest("SHA-1", leaf.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView));

  const keyBag = new pkijs.PKCS8ShroudedKeyBag({ parsedValue: pkijs.PrivateKeyInfo.fromBER(pkcs8) });
  const pbes2 = { password: pw, contentEncryptionAlgorithm: { name: "AES-CBC", length: 256 }, hmacHashAlgorithm: "SHA-256", iterationCount: ITERATIONS };
  await keyBag.makeInternalValues(pbes2);

  const certBags = certificates.map((der, i) => new pkijs.SafeBag({
    bagId: OID_CERT_BAG,
    bagValue: new pkijs.CertBag({ certId: OID_X509_CERT, parsedValue: pkijs.Certificate.fromBER(der) }),
    bagAttributes: i === 0 ? attributes(localKeyID, friendlyName) : undefined,
  }));
  const pfx = new pkijs.PFX({
    parsedValue: {
      integrityMode: 0, // password-based MAC
      authenticatedSafe: new pkijs.AuthenticatedSafe({
        parsedValue: {
          safeContents: [
            { privacyMode: 0, value: new pkijs.SafeContents({ safeBags: [new pkijs.SafeBag({ bagId: OID_SHROUDED_KEY_BAG, bagValue: keyBag, bagAttributes: attributes(localKeyID, friendlyName) })] }) },
            { privacyMode: 1, value: new pkijs.SafeContents({ safeBags: certBags }) },
          ],
        },
      }),
    },
  });
  await pfx.parsedValue.authenticatedSafe.makeInternalValues({ safeContents: [{}, { ...pbes2 }] });
  await pfx.makeInternalValues({ password: pw, iterations: ITERATIONS, pbkdf2HashAlgorithm: "SHA-256", hmacHashAlgorithm: "SHA-256" });
  return new Uint8Array(pfx.toSchema().toBER(false));
}

// randomPassword returns n characters from an alphabet without look-alikes
// (no 0/O, 1/l/I), grouped by four for reading aloud and typing.
export function randomPassword(n = 16) {
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  const out = [];
  const buf = new Uint8Array(1);
  while (out.length < n) {
    crypto.getRandomValues(buf);
    if (buf[0] < 256 - (256 % alphabet.length)) out.push(alphabet[buf[0] % alphabet.length]);
  }
  return out.join("").replace(/(.{4})(?=.)/g, "$1-");
}
