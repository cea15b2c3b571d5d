// Signed tokens for the auth tests: HS256/384/512 JWTs made with node:crypto,
// independently of the server's libjwt, so a test checks one against the
// other.

import { createHmac } from "node:crypto";

const b64url = (buf) => Buffer.from(buf).toString("base64url");

const HASH = { HS256: "sha256", HS384: "sha384", HS512: "sha512" };

/** A compact JWS of `claims` signed with `secret`. header fields (kid, or
 * alg "none" for an unsigned token) go into the JOSE header. */
export function signJwt(claims, secret, { alg = "HS256", kid, header = {} } = {}) {
  const h = { alg, typ: "JWT", ...(kid ? { kid } : {}), ...header };
  const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(claims))}`;
  if (alg === "none") return `${input}.`;
  const sig = createHmac(HASH[alg], secret).update(input).digest();
  return `${input}.${b64url(sig)}`;
}

/** Unix time in seconds, plus `offset` seconds. */
export const now = (offset = 0) => Math.floor(Date.now() / 1000) + offset;
