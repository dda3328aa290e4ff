//! `orders-api`: with `KEYWARD_ISSUER` and `ORDERS_API_AUDIENCE` set, checks tokens itself; without them, serves
//! plain, for `keyward gateway` to protect. `ORDERS_API_LISTEN` (default 127.0.0.1:3000).

use keyward_client::Verifier;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::var("ORDERS_API_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let app = match (
        std::env::var("KEYWARD_ISSUER"),
        std::env::var("ORDERS_API_AUDIENCE"),
    ) {
        (Ok(issuer), Ok(audience)) => {
            let verifier = Verifier::builder(issuer).audience(audience).build()?;
            orders_api::protected(&verifier)
        }
        _ => orders_api::plain(),
    };
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("orders-api listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
