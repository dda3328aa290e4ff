//! The operator's pages: every account, client and resource, the signing keys (with rotation) and the audit log,
//! with search and paging. Only accounts with the operator role see them.

use std::sync::Arc;

use axum::Router;

use crate::app::App;

/// The operator routes.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
}
