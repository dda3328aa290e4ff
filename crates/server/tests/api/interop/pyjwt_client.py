"""An integrator written against PyJWT and cryptography alone, for the interoperability test (interop.rs).

  keygen ALG KID KEYFILE   makes a private key (ES256, PS256, RS256 or EdDSA), writes it to KEYFILE (PKCS#8 PEM)
                           and prints its public JWK with kid and alg
  token URL CLIENT_ID KEYFILE KID ALG [DPOP_ALG]
                           authenticates by private_key_jwt (an assertion PyJWT signs with KEYFILE), with a DPoP
                           proof by a fresh DPOP_ALG key when given; prints {"status", "body", "jkt"}, jkt being the
                           RFC 7638 thumbprint of the proof's key as computed here
"""

import base64
import hashlib
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def generate(alg):
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key):
    """The public JWK's required members (RFC 7638 §3.2), written here rather than by the library."""
    pub = key.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        n = pub.public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": b64(n.x.to_bytes(32, "big")), "y": b64(n.y.to_bytes(32, "big"))}
    if isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    n = pub.public_numbers()
    return {"kty": "RSA", "n": b64(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
            "e": b64(n.e.to_bytes((n.e.bit_length() + 7) // 8, "big"))}


def thumbprint(jwk):
    required = {"EC": ["crv", "kty", "x", "y"], "OKP": ["crv", "kty", "x"], "RSA": ["e", "kty", "n"]}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64(hashlib.sha256(canonical.encode()).digest())


def keygen(alg, kid, keyfile):
    key = generate(alg)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with open(keyfile, "wb") as f:
        f.write(pem)
    print(json.dumps(dict(public_jwk(key), kid=kid, alg=alg)))


def token(url, client_id, keyfile, kid, alg, dpop_alg=None):
    with open(keyfile, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    now = int(time.time())
    assertion = jwt.encode(
        {"iss": client_id, "sub": client_id, "aud": url, "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())},
        key, algorithm=alg, headers={"kid": kid})
    form = {"grant_type": "client_credentials", "client_id": client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    jkt = None
    if dpop_alg:
        dpop_key = generate(dpop_alg)
        jwk = public_jwk(dpop_key)
        jkt = thumbprint(jwk)
        headers["DPoP"] = jwt.encode({"jti": str(uuid.uuid4()), "htm": "POST", "htu": url, "iat": now},
                                     dpop_key, algorithm=dpop_alg, headers={"typ": "dpop+jwt", "jwk": jwk})
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    print(json.dumps({"status": status, "body": json.loads(body), "jkt": jkt}))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "keygen":
        keygen(*args)
    elif command == "token":
        token(*args)
    else:
        sys.exit(f"unknown command {command}")
