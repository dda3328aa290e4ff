//! Keys without shared secrets in the benchmark (issue 22): `private_key_jwt` and DPoP issuance at the token
//! endpoint, each beside `client_secret_basic` on the same Keyward in alternating slices, on SQLite and on
//! PostgreSQL; and the gateway with a DPoP-bound token beside the same gateway with a Bearer token. Every request
//! carries its own assertion or proof (a new `jti`), signed with aws-lc-rs before the slice that sends it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, anyhow, bail};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use crate::load::{self, Measured, OneUse, Place, Shot};
use crate::procs::{self, Keyward, Procs};
use crate::scenarios::token_shot;
use crate::{Options, Row};

/// RFC 7523 §2.2's `client_assertion_type`, form-encoded.
const JWT_BEARER: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
/// The `kid` the key client registers its key under.
const KID: &str = "bench";

/// An ES256 key an integrator holds, and the `jti`s of what it signs.
struct Es256 {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    /// A random prefix, then a counter: unique across runs and databases, without a random draw per value.
    jti_prefix: String,
    next: AtomicU64,
}

impl Es256 {
    fn new() -> anyhow::Result<Arc<Self>> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| anyhow!("key generation"))?;
        let mut prefix = [0u8; 9];
        rng.fill(&mut prefix)
            .map_err(|_| anyhow!("random jti prefix"))?;
        Ok(Arc::new(Es256 {
            pair,
            rng,
            jti_prefix: B64.encode(prefix),
            next: AtomicU64::new(0),
        }))
    }

    /// The public JWK's required members (RFC 7638 §3.2), as a DPoP proof carries it.
    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])})
    }

    fn jti(&self) -> String {
        format!(
            "{}-{}",
            self.jti_prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A compact JWS of `header` (already base64url) and `claims`.
    fn sign(&self, header: &str, claims: &Value) -> String {
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        // The bench's own key, generated above: signing with it cannot fail short of a broken library.
        let sig = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .map(|s| B64.encode(s.as_ref()))
            .unwrap_or_default();
        format!("{input}.{sig}")
    }

    /// A maker of DPoP proofs (RFC 9449 §4.2) for `method` `url`, each with a new `jti` and the current `iat`; with
    /// `ath` for a call that presents a token.
    fn proofs(
        self: &Arc<Self>,
        method: &'static str,
        url: String,
        ath: Option<String>,
    ) -> impl Fn() -> String + Send + Sync + 'static {
        let header =
            B64.encode(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()}).to_string());
        let key = self.clone();
        move || {
            let mut claims =
                json!({"jti": key.jti(), "htm": method, "htu": url, "iat": crate::now()});
            if let Some(ath) = &ath {
                claims["ath"] = json!(ath);
            }
            key.sign(&header, &claims)
        }
    }

    /// A maker of client assertions (RFC 7523 §3) of `client` for `aud`, each with a new `jti`, living a minute.
    fn assertions(
        self: &Arc<Self>,
        client: String,
        aud: String,
    ) -> impl Fn() -> String + Send + Sync + 'static {
        let header = B64.encode(json!({"alg": "ES256", "kid": KID, "typ": "JWT"}).to_string());
        let key = self.clone();
        move || {
            let now = crate::now();
            key.sign(
                &header,
                &json!({"iss": client, "sub": client, "aud": aud, "iat": now, "exp": now + 60,
                        "jti": key.jti()}),
            )
        }
    }
}

/// What an alternating run with one-use values measured besides the two rows.
struct Extra {
    /// The database's write counter around the measured slices, where there is a database to count.
    writes: Option<i64>,
    /// Rows added to `spent_ids` during the measured slices.
    spent: Option<i64>,
    /// Values used in the measured slices, and how many of them were signed during a slice (the pool ran dry).
    used: u64,
    late: u64,
}

/// Measures `shot` (each request taking a value of `values`) and `beside` in alternating one-second slices, each
/// after a second of warm-up. Before each of `shot`'s slices the pool is filled with half again as many values as
/// the most one slice has used (signing outside the measured time), so each value is sent within about two seconds
/// of its `iat`.
async fn alternating_one_use(
    shot: Shot,
    values: &OneUse,
    beside: Shot,
    o: &Options,
    kw: Option<&Keyward>,
) -> anyhow::Result<(Measured, Measured, Extra)> {
    let beside = Arc::new(vec![beside]);
    load::run(beside.clone(), o.connections, 1.0).await;
    let shots = Arc::new(vec![shot]);
    values.refill(4_000);
    let (before_warm_up, _) = values.counts();
    load::run(shots.clone(), o.connections, 1.0).await;
    let mut most = values.counts().0 - before_warm_up;
    let mut counter = match kw {
        Some(kw) => Some(kw.write_counter().await?),
        None => None,
    };
    let writes_before = match &mut counter {
        Some(c) => Some(c.read().await?),
        None => None,
    };
    let spent_before = match kw {
        Some(kw) => Some(spent_rows(kw).await?),
        None => None,
    };
    let (mut ra, mut rb) = (load::Raw::default(), load::Raw::default());
    let (mut used, mut late) = (0, 0);
    for _ in 0..(o.seconds.ceil().max(1.0) as usize) {
        values.refill((most + most / 2).max(2_000) as usize);
        let (t0, l0) = values.counts();
        ra.add(load::run_raw(shots.clone(), o.connections, 1.0).await);
        let (t1, l1) = values.counts();
        most = most.max(t1 - t0);
        used += t1 - t0;
        late += l1 - l0;
        rb.add(load::run_raw(beside.clone(), o.connections, 1.0).await);
    }
    let writes = match (&mut counter, writes_before) {
        (Some(c), Some(b)) => Some(c.read().await? - b),
        _ => None,
    };
    let spent = match (kw, spent_before) {
        (Some(kw), Some(b)) => Some(spent_rows(kw).await? - b),
        _ => None,
    };
    let extra = Extra {
        writes,
        spent,
        used,
        late,
    };
    Ok((ra.summary(), rb.summary(), extra))
}

/// The rows of `spent_ids` (spent assertion and proof `jti`s), read through a connection of the bench's own.
async fn spent_rows(kw: &Keyward) -> anyhow::Result<i64> {
    use sqlx::Connection;
    const COUNT: &str = "SELECT COUNT(*) FROM spent_ids";
    let (n,): (i64,) = match &kw.database {
        None => {
            let url = format!("sqlite://{}?mode=ro", kw.data.join("keyward.db").display());
            let mut c = sqlx::SqliteConnection::connect(&url).await?;
            sqlx::query_as(COUNT).fetch_one(&mut c).await?
        }
        Some(url) => {
            let mut c = sqlx::PgConnection::connect(url).await?;
            sqlx::query_as(COUNT).fetch_one(&mut c).await?
        }
    };
    Ok(n)
}

/// A row measured beside its reference, with what the run counted in its note.
fn paired_row(
    rows: &mut Vec<Row>,
    target: String,
    (m, b, extra): (Measured, Measured, Extra),
    rss: f64,
    reference: String,
    reference_rss: f64,
) -> Row {
    let mut note = format!(
        "{target}: {} answered 200 in the measured slices; {} values sent, {} of them signed during a slice",
        m.ok, extra.used, extra.late
    );
    if let Some(s) = extra.spent {
        note.push_str(&format!("; spent_ids +{s}"));
    }
    let mut row = Row::new(target, m, rss).beside(rows, reference, b, reference_rss);
    row.writes = extra.writes;
    row.note = Some(note);
    row
}

/// Sends `shot` once and checks it answers 200 with `token_type` `expected`: (the body).
async fn check_token(shot: &Shot, expected: &str, what: &str) -> anyhow::Result<Value> {
    let (status, body) = load::fetch(shot)
        .await
        .with_context(|| format!("{what}: no answer"))?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status != 200 || body["token_type"] != expected {
        bail!("{what}: {status} {body}");
    }
    Ok(body)
}

/// The token endpoint's URL as Keyward names it (discovery): a DPoP proof's `htu`, an assertion's `aud`.
async fn token_endpoint(kw: &Keyward) -> anyhow::Result<String> {
    let (_, meta) = kw
        .call(
            "GET",
            "/.well-known/oauth-authorization-server",
            "",
            "",
            String::new(),
        )
        .await?;
    meta["token_endpoint"]
        .as_str()
        .map(str::to_owned)
        .context("discovery names no token_endpoint")
}

/// A client of `kw` that authenticates by `private_key_jwt` with `key` (ES256), allowed `https://bench.api`.
async fn key_client(kw: &Keyward, key: &Es256) -> anyhow::Result<String> {
    let mut jwk = key.jwk();
    jwk["kid"] = json!(KID);
    jwk["alg"] = json!("ES256");
    let body = json!({"name": "bench private_key_jwt", "resources": ["https://bench.api"],
                      "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}});
    let (s, b) = kw
        .call(
            "POST",
            "/admin/v1/clients",
            &kw.admin,
            "application/json",
            body.to_string(),
        )
        .await?;
    if s != 201 {
        bail!("private_key_jwt client: {s} {b}");
    }
    b["client_id"]
        .as_str()
        .map(str::to_owned)
        .context("no client_id")
}

/// `keyless` on one engine: `private_key_jwt`, then DPoP issuance, each beside `client_secret_basic` (the same
/// Keyward, an ES256 resource) in alternating slices, with the database's writes and `spent_ids` counted around
/// the measured slices.
pub(crate) async fn keyless(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
    database: Option<String>,
    engine: &str,
) -> anyhow::Result<()> {
    let kw = Keyward::start(procs, &o.bin_dir, database, None).await?;
    let url = token_endpoint(&kw).await?;
    // The reference: a secret client whose first use is written down before anything is counted.
    let (id, secret) = kw.client_for("ES256").await?;
    kw.token(&id, &secret).await?;
    kw.wait_last_used(&id).await?;
    let basic = token_shot(&kw.base, "/oauth2/token")
        .header("authorization", keyward_core::basic::encode(&id, &secret));
    let key = Es256::new()?;
    let key_id = key_client(&kw, &key).await?;
    let assertions = OneUse::new(Place::Body, key.assertions(key_id, url.clone()));
    let by_key = Shot::post_form(
        format!("{}/oauth2/token", kw.base),
        &format!(
            "grant_type=client_credentials&client_assertion_type={JWT_BEARER}&client_assertion="
        ),
    )
    .one_use(assertions.clone());
    check_token(&by_key, "Bearer", "private_key_jwt").await?;
    let proofs = OneUse::new(Place::Header("dpop"), key.proofs("POST", url, None));
    let dpop = basic.clone().one_use(proofs.clone());
    check_token(&dpop, "DPoP", "DPoP issuance").await?;
    let reference = format!("  keyward-cc-{engine} ES256, alternating");
    for (name, shot, values) in [("pkjwt", by_key, assertions), ("dpop", dpop, proofs)] {
        let measured = alternating_one_use(shot, &values, basic.clone(), o, Some(&kw)).await?;
        let rss = procs::peak_rss_mib(kw.pid);
        let target = format!("keyward-{name}-{engine} ES256");
        let row = paired_row(rows, target, measured, rss, reference.clone(), rss);
        rows.push(row);
    }
    procs.stop(kw.pid);
    Ok(())
}

/// `gateway-dpop`: one gateway in front of orders-api, a DPoP-bound token with a new proof on every request beside
/// a Bearer token, in alternating slices.
pub(crate) async fn gateway_dpop(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let kw = Keyward::start(procs, &o.bin_dir, None, None).await?;
    let (id, secret) = kw.client_for("ES256").await?;
    let bearer = kw.token(&id, &secret).await?;
    let key = Es256::new()?;
    let issue = token_shot(&kw.base, "/oauth2/token")
        .header("authorization", keyward_core::basic::encode(&id, &secret))
        .header(
            "dpop",
            key.proofs("POST", token_endpoint(&kw).await?, None)(),
        );
    let bound = check_token(&issue, "DPoP", "a DPoP-bound token").await?["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (up_pid, upstream) = procs.orders_api(&o.bin_dir).await?;
    let (gw_pid, gw) = procs
        .gateway(&o.bin_dir, &upstream, &kw.base, &o.gateway_log_level, true)
        .await?;
    let order = format!("{gw}/manage/orders/42");
    let ath = B64.encode(digest(&SHA256, bound.as_bytes()));
    let proofs = OneUse::new(
        Place::Header("dpop"),
        key.proofs("GET", order.clone(), Some(ath)),
    );
    let with_dpop = Shot::get(&order)
        .header("authorization", format!("DPoP {bound}"))
        .one_use(proofs.clone());
    let with_bearer = Shot::get(&order).header("authorization", format!("Bearer {bearer}"));
    for (shot, what) in [(&with_dpop, "DPoP"), (&with_bearer, "Bearer")] {
        if !load::once(shot).await {
            bail!(
                "the gateway refused the {what} request; its log:\n{}",
                procs.log("gateway.log")
            );
        }
    }
    let level = &o.gateway_log_level;
    let measured = alternating_one_use(with_dpop, &proofs, with_bearer, o, None).await?;
    let rss = procs::peak_rss_mib(gw_pid);
    let row = paired_row(
        rows,
        format!("gateway DPoP (log {level})"),
        measured,
        rss,
        format!("  gateway Bearer (log {level}), alternating"),
        rss,
    );
    rows.push(row);
    for pid in [gw_pid, up_pid, kw.pid] {
        procs.stop(pid);
    }
    Ok(())
}
