//! An axum API behind Palisade's session layer.
//!
//! ```text
//! cargo run --example quickstart
//! curl -H 'Authorization: Bearer abc' localhost:3000/
//! curl --cookie 'session=xyz' localhost:3000/
//! ```
//!
//! The handler answers with the session digest and the identifier that
//! produced it; the raw credential is never echoed. `PORT` sets the port.

use axum::{Router, routing::get};
use palisade::{Identifier, Session, Shield};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Identifiers are tried in order: the Authorization header, then a cookie.
    let shield = Shield::builder()
        .identifier(Identifier::header("authorization")?)
        .identifier(Identifier::cookie("session")?)
        .build()?;

    // `Option<Session>` lets anonymous requests through to the handler.
    let app = Router::new().route("/", get(whoami)).layer(shield);

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn whoami(session: Option<Session>) -> String {
    match session {
        Some(session) => match (session.id(), session.source()) {
            (Some(id), Some(source)) => format!("session {id} from {source}\n"),
            _ => "anonymous\n".to_owned(),
        },
        None => "anonymous\n".to_owned(),
    }
}
