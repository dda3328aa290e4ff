//! `GET /console/guide`: how to use a key of this deployment without asking for a token per call. The rules every
//! seed service asks of its integrators (cache the token, refresh it ahead of expiry, back off on 429, stop on
//! `invalid_client`), and ready snippets for `keyward agent` (any language) and the Rust `TokenSource`, filled in
//! with this deployment's token URL and, when the link names it, the key's environment. The secret page, the cache
//! advice and the console's menu link here; docs/INTEGRATORS.md is the long form.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{Console, Frame};
use crate::app::App;
use crate::web::pages::render;

#[derive(Template)]
#[template(path = "console/guide.html")]
struct GuidePage {
    frame: Frame,
    token_url: String,
    /// The other token endpoints this deployment serves (paths), for clients written to those interfaces.
    aliases: Vec<String>,
    /// The API the snippets ask a token for.
    resource: String,
}

/// The page's query: the environment (resource) of the key the reader came from.
#[derive(Debug, Deserialize)]
pub(crate) struct GuideQuery {
    resource: Option<String>,
}

/// `GET /console/guide`.
pub(crate) async fn page(
    State(app): State<App>,
    c: Console,
    Query(q): Query<GuideQuery>,
) -> Response {
    // Only an API this deployment knows is echoed into the snippets; anything else reads as a placeholder.
    let resource = q
        .resource
        .filter(|r| app.memory.registry.resources().get(r).is_some())
        .unwrap_or_else(|| "YOUR_API".into());
    render(
        StatusCode::OK,
        &GuidePage {
            frame: c.frame(),
            token_url: format!("{}/oauth2/token", app.settings.issuer),
            aliases: app
                .settings
                .token_endpoints
                .iter()
                .map(|e| format!("{}{}", app.settings.issuer, e.path))
                .collect(),
            resource,
        },
    )
}
