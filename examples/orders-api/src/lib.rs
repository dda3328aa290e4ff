//! An example API: Walley's `GET /manage/orders/{id}` (seed 000), in two forms. [`protected`] checks tokens
//! itself with keyward-client, in a few lines; [`plain`] trusts the identity `keyward gateway` puts in
//! `X-Keyward-*` headers, for an API that sits behind the gateway.

use axum::Router;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use keyward_client::{Verified, Verifier};
use serde_json::{Value, json};

/// The API with its own token checks: any valid token for the audience reads an order; cancelling one needs the
/// `orders:write` scope.
pub fn protected(verifier: &Verifier) -> Router {
    Router::new()
        .route(
            "/manage/orders/{id}",
            get(
                |Verified(claims): Verified, Path(id): Path<String>| async move {
                    axum::Json(order(&id, &claims.client_id))
                },
            )
            .layer(verifier.layer()),
        )
        .route(
            "/manage/orders/{id}/cancel",
            post(
                |Verified(claims): Verified, Path(id): Path<String>| async move {
                    axum::Json(
                        json!({"orderId": id, "status": "Cancelled", "by": claims.client_id}),
                    )
                },
            )
            .layer(verifier.layer().require_scope("orders:write")),
        )
}

/// The same API behind `keyward gateway`: no token checks here; the caller's identity arrives in the gateway's
/// `X-Keyward-*` headers, which this answer echoes.
pub fn plain() -> Router {
    Router::new()
        .route(
            "/manage/orders/{id}",
            get(|headers: HeaderMap, Path(id): Path<String>| async move {
                let mut o = order(&id, header(&headers, "x-keyward-client-id"));
                o["seen"] = seen(&headers);
                axum::Json(o)
            }),
        )
        .route(
            "/manage/orders/{id}/cancel",
            post(|headers: HeaderMap, Path(id): Path<String>| async move {
                axum::Json(json!({"orderId": id, "status": "Cancelled", "seen": seen(&headers)}))
            }),
        )
        .route("/health", get(|| async { "ok" }))
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The identity and credentials headers as the API received them.
fn seen(headers: &HeaderMap) -> Value {
    let names = [
        "x-keyward-client-id",
        "x-keyward-subject",
        "x-keyward-scope",
        "authorization",
        "wm_sec.access_token",
        "dpop",
    ];
    names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                headers
                    .get(*n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .into(),
            )
        })
        .collect::<serde_json::Map<String, Value>>()
        .into()
}

fn order(id: &str, merchant: &str) -> Value {
    json!({"orderId": id, "merchant": merchant, "status": "Purchased", "totalAmount": 129.5, "currency": "SEK"})
}
